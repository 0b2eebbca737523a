"""How far the ledger is behind the topic, in audit events: the events on warden.audit.events
that are not in the ledger.

Offsets alone cannot say it. The ledger stores, per row, the offset of the record it came from,
so the store proves the sink read each partition up to the last record it appended rows of. A
record read after that whose events the ledger already held (a redelivery: a service restarted
and sent its audit records again) leaves no row, and so no offset: the topic's end stays past
the last stored offset while the ledger holds every event. So the records past the last stored
offset are read and their event ids looked up; what is missing is counted.

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
