"""Holes: offsets a reader's position passed with no record there.

A partition's offsets need not all hold a record. On Apache Kafka compaction removes records
(their batch keeps its offsets), and transaction markers and aborted batches take offsets no
consumer is given. On the embedded broker a batch is numbered before it is stored (`ledger.gaps`):
a producer, or the broker itself, that stops in between (a power loss) leaves a number that no
record will ever fill. A reader that waits for a record at such an offset waits forever.

So a reader that needs "everything up to offset N" waits for its consumer's position (the next
offset a fetch gives: past every batch it returned, records or not) to pass N, not for a record at
each offset; an offset the position passed with no record is a hole, logged once and counted in
``warden_offset_holes_total``, never an outage. Pure: the caller reads the consumer.

One thing a position cannot tell: on the embedded broker an offset passed may be a batch numbered
and still being stored (`ledger.gaps`), so a reader reads an offset it passed again for a while
(`settle_s`) before it takes it for a hole.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from runtime import metrics
from runtime.config import Settings
from runtime.kafka import quiet_ms


def settle_s(settings: Settings, fetch_wait_ms: int) -> float:
    """How long an offset the position passed stays unfilled before a reader that fetches with
    ``fetch_wait_ms`` takes it for a hole. None on Apache Kafka (`warden up`'s durable storage): a
    fetch serves only offsets below the high watermark, every one stored, so an offset passed holds
    no record and never will. Elsewhere a quiet period (longer than two fetches the broker may hold,
    as a restore waits for "nothing more"): the embedded broker numbers a batch before it stores
    it, and on its S3 storage a later batch was served first, its record lost to a reader that did
    not wait (docs/known-limits.md); an unknown broker gets the same wait."""
    if settings.on_kafka:
        return 0.0
    return quiet_ms(fetch_wait_ms) / 1000


def missing(start: int, passed: int, offsets: Collection[int]) -> list[int]:
    """The offsets from ``start`` below ``passed`` (the position reached) that hold none of
    ``offsets``."""
    return [offset for offset in range(start, passed) if offset not in offsets]


def runs(offsets: Iterable[int]) -> list[tuple[int, int]]:
    """``offsets`` as (first, last) runs of consecutive offsets, in order."""
    out: list[tuple[int, int]] = []
    for offset in sorted(offsets):
        if out and offset == out[-1][1] + 1:
            out[-1] = (out[-1][0], offset)
        else:
            out.append((offset, offset))
    return out


def spans(offsets: Iterable[int]) -> str:
    """``offsets`` as a reader names them: "159", "159-161, 170"."""
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in runs(offsets))


class Holes:
    """The holes one reader of ``topic`` found: each logged once (partition and offsets) and
    counted once, however often the reader passes it again."""

    def __init__(self, topic: str, log: logging.Logger):
        self.topic = topic
        self.log = log
        self.known: dict[int, set[int]] = {}

    def unknown(self, partition: int, offsets: Iterable[int]) -> list[int]:
        """Of ``offsets``, those not already taken for holes."""
        known = self.known.get(partition, set())
        return [offset for offset in offsets if offset not in known]

    def note(self, partition: int, offsets: Collection[int]) -> None:
        """``offsets`` of ``partition`` are holes: said and counted, once each."""
        new = self.unknown(partition, offsets)
        if not new:
            return
        self.known.setdefault(partition, set()).update(new)
        metrics.OFFSET_HOLES.labels(self.topic).inc(len(new))
        self.log.warning(
            "%s partition %d: no record at offset(s) %s, which the position passed: holes (a record compacted "
            "away, a transaction marker, or a batch numbered and never stored when a producer or the broker "
            "stopped); read past",
            self.topic,
            partition,
            spans(new),
        )

    def forget_below(self, partition: int, offset: int) -> None:
        """Holes below ``offset`` are never read again here: not kept."""
        known = self.known.get(partition)
        if known:
            known.difference_update([o for o in known if o < offset])
