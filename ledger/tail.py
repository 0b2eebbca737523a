"""The ledger's lag in audit events, read: the records of warden.audit.events past the ledger's
last stored offset of each partition, and which of their events the ledger holds (`ledger.lag`
counts what is missing and says why offsets cannot). `warden status` reports it; the demo waits
for it to reach 0 before it verifies the ledger."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from ledger.lag import TailRecord, missing_by_partition
from ledger.schema import AUDIT_LOG
from ledger.store import Store, sql_string
from runtime.config import Settings
from runtime.kafka import fetched_ends, partitions
from schemas import topics

# At most this many records past the ledger's last stored offsets are read to count the events
# they hold: a ledger far behind is reported as at least that far, without reading the whole topic.
TAIL_MAX_RECORDS = 20_000


@dataclass(frozen=True)
class EventLag:
    """Audit events on the topic not in the ledger, per partition (``missing``), and what was read to
    count them: the topic's end per partition (``ends``), the records past the ledger's last stored
    offsets (``records_past``) and how many of those were left unread (``unread``, past the limit)."""

    ends: dict[int, int]
    missing: dict[int, int]
    records_past: int
    unread: int

    @property
    def lag(self) -> int:
        # Each record left unread holds at least one event: then the lag is a lower bound.
        return sum(self.missing.values()) + self.unread

    @property
    def exact(self) -> bool:
        return self.unread == 0


async def audit_tail(
    settings: Settings, stored: dict[int, int], limit: int = TAIL_MAX_RECORDS
) -> tuple[dict[int, int], list[TailRecord], int]:
    """(the topic's end per partition, the records from each partition's ``stored`` next offset to
    its end, how many records past ``limit`` were left unread)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=5000,
        max_partition_fetch_bytes=settings.max_message_bytes,
    )
    try:
        await consumer.start()
        parts = await partitions(consumer, (topics.AUDIT_EVENTS,))
        ends = await fetched_ends(consumer, parts)
        records: list[TailRecord] = []
        unread = 0
        for tp in parts:
            # A stored offset past the end: nothing to read.
            offset = min(stored.get(tp.partition, 0), ends[tp])
            consumer.seek(tp, offset)
            while offset < ends[tp] and len(records) < limit:
                fetched = (await consumer.getmany(tp, timeout_ms=2000, max_records=limit - len(records))).get(tp, [])
                for m in fetched:
                    if m.offset < ends[tp]:
                        records.append(TailRecord.of(tp.partition, m.offset, m.value))
                # The position passes every batch a fetch returned, records or none (a hole: a
                # transaction marker, an offset never stored), so a hole is not counted unread.
                position = await consumer.position(tp)
                if position <= offset:
                    break  # the broker reports records it does not serve: counted unread below
                offset = position
            unread += max(0, ends[tp] - offset)
        return {tp.partition: end for tp, end in ends.items()}, records, unread
    finally:
        await consumer.stop()


def stored_next_offsets(store: Store) -> dict[int, int]:
    """Per partition, the offset after the last record the ledger appended rows of. The ledger's own
    notice that its broker changed is left out: its offsets are the old broker's."""
    rows = store.arrow(
        f"SELECT source_partition AS p, max(source_offset) + 1 AS o FROM {AUDIT_LOG} "
        "WHERE action != 'ledger.source_changed' GROUP BY source_partition"
    ).to_pylist()
    return {int(row["p"]): int(row["o"]) for row in rows}


def held_event_ids(store: Store, ids: list[str]) -> set[str]:
    """Which of ``ids`` the ledger holds."""
    held: set[str] = set()
    for at in range(0, len(ids), 1000):
        listed = ", ".join(sql_string(e) for e in ids[at : at + 1000])
        table = store.arrow(f"SELECT DISTINCT event_id AS e FROM {AUDIT_LOG} WHERE event_id IN ({listed})")
        held.update(table.column("e").to_pylist())
    return held


def event_lag(settings: Settings, store: Store, limit: int = TAIL_MAX_RECORDS) -> EventLag:
    """The audit events on the topic that ``store`` does not hold, read now."""
    ends, tail, unread = asyncio.run(audit_tail(settings, stored_next_offsets(store), limit))
    held = held_event_ids(store, sorted({e for record in tail for e in record.event_ids}))
    missing = missing_by_partition(tail, held)
    return EventLag(ends, {p: missing.get(p, 0) for p in sorted(ends)}, len(tail) + unread, unread)
