"""The sink's record parser (ledger/records.py) against AuditEvent, the definition: on
every record it accepts what AuditEvent accepts, yields the same row, and refuses the rest with
AuditEvent's message. Producer-shaped records take the fast path (else the append rate is the
pydantic one)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.append import Ledger, SeenIds
from ledger.chain import genesis_hash, integrity_hash
from ledger.records import Row, _producer_shaped, parse, row_of
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_events_of, audit_record
from tests.ledger_support import T0, pipeline_events

BASE = {
    "schema_version": 1,
    "event_id": "e-1",
    "actor": "service:streams",
    "action": AuditAction.STAGE_PASSED,
    "resource": "intent:i-1",
    "ts": "2026-11-21T10:00:00.000250Z",
    "intent_id": "i-1",
    "agent_id": "agent-1",
    "details": {"stage": "chain", "code": "ok", "facts": {"limit_wei": "5000000000000000000", "n": 3}},
}


def _outcome(read: Callable[[bytes], list[Row]], raw: bytes) -> tuple[str, list[Row]] | tuple[type[Exception], str]:
    try:
        return ("row", read(raw))
    except Exception as exc:  # noqa: BLE001 - refusals (ValueError) and the rest must match alike
        return (type(exc), str(exc))


def _same_as_audit_event(raw: bytes) -> None:
    assert _outcome(parse, raw) == _outcome(lambda r: [row_of(e) for e in audit_events_of(r)], raw)


def _json(body: Any) -> bytes:
    # json, not orjson: it writes integers beyond 64 bits, which producers' orjson cannot.
    return json.dumps(body, ensure_ascii=False).encode()


def test_pipeline_events_take_the_fast_path_and_yield_audit_events_rows() -> None:
    for event in pipeline_events(300):
        raw = event.to_bytes()
        assert _producer_shaped(raw) is not None
        assert parse(raw) == [row_of(event)] == [row_of(AuditEvent.from_bytes(raw))]


VARIANTS = [
    {},
    {"ts": "2026-11-21T10:00:00Z"},
    {"ts": "2026-11-21T10:00:00.5Z"},
    {"ts": "2026-11-21T10:00:00.123456Z"},
    {"ts": "2026-11-21T10:00:00.1234567Z"},  # seven digits: pydantic truncates
    {"ts": "2026-11-21T10:00:00+05:30"},
    {"ts": "2026-11-21T10:00:00.25-01:00"},
    {"ts": "2026-11-21 10:00:00Z"},
    {"ts": "2026-11-21T10:00Z"},
    {"ts": "1700000000"},
    {"ts": 1700000000},
    {"ts": 1700000000.5},
    {"ts": "2026-02-29T10:00:00Z"},
    {"ts": "2028-02-29T10:00:00Z"},
    {"ts": "2026-13-01T10:00:00Z"},
    {"ts": "2026-11-21T24:00:00Z"},
    {"ts": "2026-11-21T23:59:60Z"},
    {"ts": "0000-01-01T00:00:00Z"},
    {"ts": "9999-12-31T23:59:59.999999Z"},
    {"ts": "2026-11-21t10:00:00z"},
    {"ts": "20261121T100000Z"},
    {"ts": None},
    {"intent_id": None, "agent_id": None},
    {"intent_id": 5},
    {"agent_id": ["a"]},
    {"schema_version": 2},
    {"schema_version": 1.0},
    {"schema_version": True},
    {"schema_version": "1"},
    {"event_id": 12},
    {"actor": None},
    {"details": None},
    {"details": []},
    {"details": {"value": 1.5}},
    {"details": {"nested": [{"x": [1, 2, {"y": 0.1}]}]}},
    {"details": {"big": 123456789012345678901234567890}},
    {"details": {"neg": -(2**63)}},
    {"details": {"max": 2**64 - 1}},
    {"details": {"b": True, "n": None, "s": "ü|%€\n\u0000", "z": {"k": []}}},
    {"unknown": 1},
    {"event_id": "e|1%7C", "actor": "agent:a|b", "action": "x%25|y", "resource": "key:m/44'/60'|0"},
    {"event_id": "\U0001f600 emoji", "agent_id": "ag\u00e9nt"},
]


@pytest.mark.parametrize("change", VARIANTS, ids=[str(i) for i in range(len(VARIANTS))])
def test_each_shape_is_read_as_audit_event_reads_it(change: dict[str, Any]) -> None:
    _same_as_audit_event(_json({**BASE, **change}))


@pytest.mark.parametrize(
    "missing", ["event_id", "actor", "action", "resource", "ts", "schema_version", "details", "intent_id"]
)
def test_missing_fields_are_read_as_audit_event_reads_them(missing: str) -> None:
    _same_as_audit_event(_json({k: v for k, v in BASE.items() if k != missing}))


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"[]",
        b"null",
        b'"text"',
        b'{"event_id":"\\ud800","actor":"x","action":"y","resource":"r","ts":"2026-01-01T00:00:00Z"}',
        b'{"event_id":"a","actor":"x","action":"y","resource":"r","ts":"2026-01-01T00:00:00Z","details":{"f":NaN}}',
        b'{"event_id":"a","actor":"x","action":"y","resource":"r","ts":"2026-01-01T00:00:00Z","details":{"f":1e400}}',
        b'{"event_id":"a","event_id":"b","actor":"x","action":"y","resource":"r","ts":"2026-01-01T00:00:00Z"}',
        b'{"event_id":"a","actor":"x","action":"y","resource":"r","ts":"2026-01-01T00:00:00Z","details":{"k":1,"k":2}}',
        b'  {"event_id":"a","actor":"x","action":"y","resource":"r","ts":"2026-01-01T00:00:00Z"}  ',
        b'\xef\xbb\xbf{"event_id":"a","actor":"x","action":"y","resource":"r","ts":"2026-01-01T00:00:00Z"}',
        b'{"event_id":"\xff","actor":"x","action":"y","resource":"r","ts":"2026-01-01T00:00:00Z"}',
        b'{"event_id":"a","actor":"x","action":"y","resource":"r","ts":"2026-01-01T00:00:00Z","details":'
        + b'{"d":' * 400
        + b"1"
        + b"}" * 400
        + b"}",
    ],
)
def test_malformed_and_odd_records_are_read_as_audit_event_reads_them(raw: bytes) -> None:
    _same_as_audit_event(raw)


def test_a_record_of_several_events_takes_the_fast_path_and_yields_their_rows_in_order() -> None:
    events = pipeline_events(40)
    raw = audit_record([e.to_bytes() for e in events])
    assert _producer_shaped(raw) is not None
    assert parse(raw) == [row_of(e) for e in events]
    assert parse(audit_record([events[0].to_bytes()])) == [row_of(events[0])]  # one event: a plain object


_ONE = _json(BASE)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" + _ONE + b"," + _ONE + b"]",  # the same event twice: both rows (the ledger skips the repeat)
        b"[" + _ONE + b"," + _json({**BASE, "ts": "2026-11-21T10:00:00+05:30"}) + b"]",  # one element the exact way
        b"[" + _ONE + b"," + _json({**BASE, "event_id": 7}) + b"]",  # one bad element: the whole record refused
        b"[" + _ONE + b",{}]",
        b"[" + _ONE + b",null]",
        b"[" + _ONE + b",[" + _ONE + b"]]",  # nested arrays are not audit records
        b"[[" + _ONE + b"]]",
        b"[1]",
        b'["text"]',
        b"  [" + _ONE + b"]  ",
        b"[" + _ONE + b",]",
        b"[" + _json({**BASE, "details": {"big": 123456789012345678901234567890}}) + b"]",
    ],
)
def test_records_of_several_events_are_read_as_audit_events_of_reads_them(raw: bytes) -> None:
    _same_as_audit_event(raw)


_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_ts = st.one_of(
    st.datetimes(timezones=st.just(__import__("datetime").timezone.utc)).map(
        lambda d: d.isoformat().replace("+00:00", "Z")
    ),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})?\Z"),
    _json_leaf,
)


@settings(max_examples=400, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "schema_version": st.sampled_from([1, 2, 1.0, True, None, "1"]),
            "event_id": st.one_of(st.text(max_size=20), _json_leaf),
            "actor": st.text(max_size=20),
            "action": st.text(max_size=20),
            "resource": st.one_of(st.text(max_size=20), st.integers()),
            "ts": _ts,
            "intent_id": st.one_of(st.none(), st.text(max_size=10), st.integers()),
            "agent_id": st.one_of(st.none(), st.text(max_size=10)),
            "details": st.one_of(st.dictionaries(st.text(max_size=6), _json_value, max_size=5), _json_value),
            "extra": st.integers(),
        },
    )
)
def test_random_records_are_read_as_audit_event_reads_them(fields: dict[str, Any]) -> None:
    _same_as_audit_event(_json(fields))


_text = st.text(max_size=16)


@settings(max_examples=600, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {"event_id": _text, "actor": _text, "action": _text, "resource": _text, "ts": _ts},
        optional={
            "schema_version": st.just(1),
            "intent_id": st.one_of(st.none(), _text),
            "agent_id": st.one_of(st.none(), _text),
            "details": st.dictionaries(st.text(max_size=6), _json_value, max_size=5),
        },
    )
)
def test_random_producer_shaped_records_are_read_as_audit_event_reads_them(fields: dict[str, Any]) -> None:
    """Mostly valid records, so the fast path is what is compared."""
    _same_as_audit_event(_json(fields))


def test_chained_rows_hash_as_the_spec_says() -> None:
    """append_rows' flat loop against chain.integrity_hash, field by field from the stored columns."""
    events = pipeline_events(200)
    ledger = Ledger({}, SeenIds(np.array([], dtype=np.uint64)))
    assert ledger.append_rows([(0, i, row) for i, e in enumerate(events) for row in parse(e.to_bytes())], T0) == 200
    cols = ledger.take_batch().columns
    prev = genesis_hash(0)
    for i, event in enumerate(events):
        expected = integrity_hash(
            prev,
            event.event_id,
            event.actor,
            event.action,
            event.resource,
            event.ts,
            cols["details"][i],
            event.intent_id or "",
            event.agent_id or "",
        )
        assert (cols["prev_hash"][i], cols["integrity_hash"][i]) == (prev, expected)
        assert cols["details"][i] == orjson.dumps(event.details, option=orjson.OPT_SORT_KEYS).decode()
        prev = expected
    assert ledger.due_checkpoints(T0 + timedelta(seconds=1), every=200, interval=timedelta(days=1))[0].head_hash == prev


def test_details_are_hashed_byte_for_byte() -> None:
    raw = orjson.dumps({**BASE, "details": {"z": 1, "a": "ü"}})
    (row,) = parse(raw)
    assert row.details == '{"a":"ü","z":1}'
    assert hashlib.sha256(row.details.encode()).hexdigest() == hashlib.sha256('{"a":"ü","z":1}'.encode()).hexdigest()


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.fixed_dictionaries(
            {"event_id": _text, "actor": _text, "action": _text, "resource": _text, "ts": _ts},
            optional={"intent_id": st.one_of(st.none(), _text, st.integers()), "details": _json_value},
        ),
        max_size=4,
    )
)
def test_random_records_of_several_events_are_read_as_audit_events_of_reads_them(events: list[dict[str, Any]]) -> None:
    _same_as_audit_event(_json(events))
