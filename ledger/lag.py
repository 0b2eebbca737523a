"""How far the ledger is behind the topic, in audit events: the events on warden.audit.events
that are not in the ledger.

Offsets alone cannot say it. The ledger stores, per row, the offset of the record it came from,
so the store proves the sink read each partition up to the last record it appended rows of. A
record read after that whose events the ledger already held (a redelivery: a service restarted
and sent its audit records again) leaves no row, and so no offset: the topic's end stays past
the last stored offset while the ledger holds every event. So the records past the last stored
offset are read and their event ids looked up; what is missing is counted.

The sink's own count (`AppendProgress`) follows the same rule: a record whose events the ledger
held already is done, not lag.

Pure: the caller reads the records and asks the ledger which ids it holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger.batch import unreadable_event_id
from ledger.records import parse


@dataclass(frozen=True)
class TailRecord:
    """One record past the ledger's last stored offset of its partition, and the event ids the sink
    would append for it: its events' (``parsed``, empty when it has none that parse), or the one
    event saying it is unreadable or not believed (``unreadable``), which the sink appends instead
    of them for a record it cannot read or believe."""

    partition: int
    offset: int
    parsed: tuple[str, ...]
    unreadable: str

    @classmethod
    def of(cls, partition: int, offset: int, raw: bytes | None) -> TailRecord:
        try:
            parsed = tuple(row.event_id for row in parse(raw)) if raw is not None else ()
        except (ValueError, TypeError):
            parsed = ()
        return cls(partition, offset, parsed, unreadable_event_id(partition, offset))

    @property
    def event_ids(self) -> tuple[str, ...]:
        return (*self.parsed, self.unreadable)

    def missing(self, held: set[str] | frozenset[str]) -> int:
        """Events of this record not in the ledger (``held``: which of `event_ids` it holds)."""
        if self.unreadable in held:
            return 0
        if not self.parsed:
            return 1
        return sum(1 for e in self.parsed if e not in held)


def missing_by_partition(records: Iterable[TailRecord], held: set[str] | frozenset[str]) -> dict[int, int]:
    """Per partition, the events of ``records`` the ledger does not hold."""
    missing: dict[int, int] = {}
    for record in records:
        missing[record.partition] = missing.get(record.partition, 0) + record.missing(held)
    return missing


class AppendProgress:
    """What the sink's `warden_ledger_append_lag` counts: per partition, the records on the topic past
    the last one whose events are all in the ledger. A record counts as done once its batch is
    appended, whether its events became rows or were held already: a redelivered record adds no
    row, and nothing of it is missing. A record read but not yet appended (the batch fetched while
    the one before it is inserted) is not done."""

    def __init__(self, reading_from: dict[int, int]) -> None:
        # Where the sink reads from: every record before it is done (appended, or read again from there).
        self.done = dict(reading_from)

    def appended(self, records: Iterable[tuple[int, int]]) -> None:
        """``(partition, offset)`` of a batch appended: each of its events stored now or held before."""
        for partition, offset in records:
            if offset >= self.done.get(partition, 0):
                self.done[partition] = offset + 1

    def lag(self, ends: dict[int, int | None]) -> int:
        """Records past the done ones, against each partition's end (None: not known yet, none counted)."""
        return sum(max(0, end - self.done.get(p, 0)) for p, end in ends.items() if end is not None)
