"""The sink's guard against offsets the broker skipped (ledger/gaps.py): Tansu's object-store
engine numbers a batch before it stores it, so a fetch can return a later offset before an earlier
one is there. The guard takes a partition's records only while their offsets follow on; a gap
holds the partition until it fills, or for ``grace``, after which it is read past and said."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.gaps import OffsetGap, OffsetGaps, offsets_unread_event
from ledger.sink import SinkOptions
from runtime.config import Settings
from schemas.actions import AuditAction

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=10)


def test_records_that_follow_on_are_all_taken() -> None:
    gaps = OffsetGaps(GRACE)
    gaps.reset({0: 5, 1: 0})
    assert gaps.take(0, [5, 6, 7], T0) == 3
    assert gaps.take(0, [8], T0) == 1
    assert gaps.take(1, [0, 1], T0) == 2
    assert gaps.expected == {0: 9, 1: 2} and gaps.read_past == []


def test_a_record_after_a_missing_offset_waits_until_the_offset_fills() -> None:
    gaps = OffsetGaps(GRACE)
    gaps.reset({0: 504})
    # 504 is there, 505 is numbered but not stored yet, 506 and 507 are: take 504 only.
    assert gaps.take(0, [504, 506, 507], T0) == 1
    assert gaps.expected[0] == 505
    # Read again from 505 a moment later: still missing, still held.
    assert gaps.take(0, [506, 507], T0 + timedelta(seconds=9)) == 0
    # Then 505 is there: everything is taken, nothing read past.
    assert gaps.take(0, [505, 506, 507], T0 + timedelta(seconds=9.5)) == 3
    assert gaps.expected[0] == 508 and gaps.read_past == [] and gaps.seen_at == {}
    # The wait for 505 is over: a later gap at another offset starts its own.
    assert gaps.take(0, [509], T0 + timedelta(seconds=30)) == 0


def test_a_gap_still_there_after_the_grace_is_read_past_and_reported() -> None:
    gaps = OffsetGaps(GRACE)
    gaps.reset({0: 495, 1: 15})
    assert gaps.take(0, [497, 498], T0) == 0
    assert gaps.take(1, [16], T0 + timedelta(seconds=3)) == 0
    assert gaps.take(0, [497, 498], T0 + GRACE) == 2
    assert gaps.read_past == [OffsetGap(0, 495, 496, GRACE)] and list(gaps.seen_at) == [(1, 15)]
    assert gaps.take(1, [16], T0 + GRACE) == 0  # its own wait began 3 s later
    assert gaps.take(1, [16, 17], T0 + timedelta(seconds=13)) == 2
    assert gaps.read_past[1] == OffsetGap(1, 15, 15, GRACE)


def test_a_partition_the_guard_was_not_told_of_is_taken_as_it_comes() -> None:
    gaps = OffsetGaps(GRACE)
    assert gaps.take(3, [40, 41], T0) == 2 and gaps.expected == {3: 42}


def test_a_reset_forgets_the_waits() -> None:
    gaps = OffsetGaps(GRACE)
    gaps.reset({0: 10})
    assert gaps.take(0, [12], T0) == 0
    gaps.reset({0: 10})  # the sink resumed from the store
    assert gaps.take(0, [12], T0 + timedelta(seconds=9)) == 0  # a new wait, not one 9 s old
    assert gaps.take(0, [12], T0 + timedelta(seconds=18)) == 0
    assert gaps.take(0, [12], T0 + timedelta(seconds=19)) == 1


def test_the_ledger_says_which_offsets_it_read_past_and_says_it_once() -> None:
    gap = OffsetGap(0, 495, 496, timedelta(seconds=10, milliseconds=250))
    event = offsets_unread_event(gap, T0)
    assert event.action == AuditAction.LEDGER_OFFSETS_UNREAD and event.actor == "service:ledger"
    assert event.resource == "topic:warden.audit.events/0"
    assert (event.details["first_offset"], event.details["last_offset"], event.details["waited_ms"]) == (
        495,
        496,
        10250,
    )
    # A sink that restarts and reads past the same gap again says the same event: the ledger keeps one.
    assert offsets_unread_event(gap, T0 + timedelta(hours=1)).event_id == event.event_id
    assert offsets_unread_event(OffsetGap(0, 495, 497, gap.waited), T0).event_id != event.event_id


def test_a_gap_is_held_a_quiet_period_on_the_embedded_broker_and_not_at_all_on_apache_kafka() -> None:
    """Not 10 s: a transaction marker or a compacted record held the ledger that long each. Apache
    Kafka serves only what it stored, so a gap there is a hole at once."""
    assert SinkOptions.from_settings(Settings(broker_storage="memory")).gap_grace == timedelta(milliseconds=600)
    assert SinkOptions.from_settings(Settings(broker_storage="durable")).gap_grace == timedelta(0)
