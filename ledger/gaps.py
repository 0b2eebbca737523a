"""Offsets the broker skipped, and the ones it never fills.

A consumer reads a partition from an offset and moves on past whatever the broker returns. Tansu's
object-store engine numbers a batch (it moves the partition's high watermark) before it stores the
batch's object, and a fetch lists the objects stored below the watermark: with two producers on
one partition, a fetch can return offset 506, stored, before 505, numbered first but still being
written. A consumer that took 506 would never read 505: for the ledger, every event of that record
(a worker's holds hundreds) would be missing, and nothing would say so.

So the sink takes a partition's records only while their offsets follow on from the last one it
took. At a gap it stops for that partition and reads again from the first missing offset; a gap
that is still there after ``grace`` (`runtime.holes.settle_s`) is a hole: a number nobody stored (a
producer given it died before writing its batch), or on Apache Kafka a transaction marker, and the
sink reads on past it, saying so in the ledger (`offsets_unread_event`) and counting it. Pure: the
caller passes the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, event_id


@dataclass(frozen=True)
class OffsetGap:
    """Offsets ``first``..``last`` (inclusive) of ``partition`` that held no record for ``waited``."""

    partition: int
    first: int
    last: int
    waited: timedelta


@dataclass
class OffsetGaps:
    grace: timedelta
    expected: dict[int, int] = field(default_factory=dict)  # partition → the offset to take next
    seen_at: dict[tuple[int, int], datetime] = field(default_factory=dict)  # (partition, offset) → gap first seen
    read_past: list[OffsetGap] = field(default_factory=list)  # gaps given up on, for the caller to record

    def reset(self, positions: dict[int, int]) -> None:
        """Start over from ``positions`` (the offsets the consumer reads each partition from next)."""
        self.expected = dict(positions)
        self.seen_at.clear()

    def take(self, partition: int, offsets: Sequence[int], now: datetime) -> int:
        """How many of ``offsets`` (one partition's records as fetched, in order) to take now.
        Fewer than all: read the partition again from ``expected[partition]``. A gap given up on
        is added to ``read_past``."""
        for count, offset in enumerate(offsets):
            expected = self.expected.get(partition, offset)
            if offset > expected:
                first_seen = self.seen_at.setdefault((partition, expected), now)
                if now - first_seen < self.grace:
                    return count
                self.read_past.append(OffsetGap(partition, expected, offset - 1, now - first_seen))
            self.seen_at.pop((partition, expected), None)  # filled, or read past: no longer waited for
            self.expected[partition] = max(expected, offset + 1)
        return len(offsets)


def offsets_unread_event(gap: OffsetGap, now: datetime) -> AuditEvent:
    """What the ledger says when it reads on past offsets the broker never filled."""
    return AuditEvent(
        event_id=event_id(AuditAction.LEDGER_OFFSETS_UNREAD, str(gap.partition), str(gap.first), str(gap.last)),
        actor="service:ledger",
        action=AuditAction.LEDGER_OFFSETS_UNREAD,
        resource=f"topic:{topics.AUDIT_EVENTS}/{gap.partition}",
        ts=now,
        details={
            "partition": gap.partition,
            "first_offset": gap.first,
            "last_offset": gap.last,
            "waited_ms": int(gap.waited.total_seconds() * 1000),
            "note": "the broker returned later records but none at these offsets for the whole wait; a producer "
            "given them most likely stopped before writing its batch. A record that appears there later "
            "is not in the ledger",
        },
    )
