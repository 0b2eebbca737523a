"""`ledger.lag`: the ledger's lag in audit events, not offsets. A redelivered record whose events
the ledger holds is nothing missing; an unreadable record is one event, held as its own."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from ledger.batch import unreadable_event_id
from ledger.lag import AppendProgress, TailRecord, missing_by_partition
from ledger.tail import EventLag
from schemas.actions import AuditAction
from schemas.emit import audit

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _event(n: int) -> bytes:
    return audit("service:streams", AuditAction.INTENT_REJECTED, f"intent:i{n}", NOW, f"i{n}", intent_id=f"i{n}").value


def _ids(raw: bytes) -> list[str]:
    body = orjson.loads(raw)
    return [e["event_id"] for e in (body if isinstance(body, list) else [body])]


def test_a_redelivered_record_whose_events_are_held_is_not_lag() -> None:
    first = _event(1)
    tail = [TailRecord.of(0, 7, first)]  # the same bytes again, past the last stored offset
    assert missing_by_partition(tail, set(_ids(first))) == {0: 0}
    assert missing_by_partition(tail, set()) == {0: 1}


def test_a_record_of_several_events_counts_each_missing_one() -> None:
    joined = orjson.dumps([orjson.loads(_event(n)) for n in range(3)])
    ids = _ids(joined)
    record = TailRecord.of(2, 0, joined)
    assert record.parsed == tuple(ids)
    assert missing_by_partition([record], {ids[0]}) == {2: 2}


def test_an_unreadable_record_is_one_event_held_under_its_own_id() -> None:
    for raw in (None, b"not json"):
        record = TailRecord.of(1, 5, raw)
        assert record.parsed == ()
        assert missing_by_partition([record], set()) == {1: 1}
        assert missing_by_partition([record], {unreadable_event_id(1, 5)}) == {1: 0}


def test_a_record_held_as_not_believed_is_not_lag() -> None:
    # The sink appends one event saying a record is not believed instead of the events it claims.
    raw = _event(4)
    assert missing_by_partition([TailRecord.of(0, 9, raw)], {unreadable_event_id(0, 9)}) == {0: 0}


def test_the_sinks_lag_counts_a_held_redelivery_as_done_and_a_fetched_batch_as_lag() -> None:
    progress = AppendProgress({0: 5, 1: 0})
    assert progress.lag({0: 7, 1: 0}) == 2  # records 5 and 6: read, perhaps, but not yet appended
    # Their batch appended: record 5 added rows, record 6 was a redelivery whose events were held.
    progress.appended([(0, 5), (0, 6)])
    assert progress.lag({0: 7, 1: 0}) == 0
    progress.appended([(0, 3)])  # an older offset read again does not move it back
    assert progress.lag({0: 9, 1: None}) == 2  # a partition whose end is not known yet counts nothing


def test_an_event_lag_left_partly_unread_is_a_lower_bound() -> None:
    lag = EventLag(ends={0: 10, 1: 4}, missing={0: 2, 1: 0}, records_past=5, unread=3)
    assert (lag.lag, lag.exact) == (5, False)
    assert EventLag(ends={0: 10}, missing={0: 0}, records_past=1, unread=0).exact
