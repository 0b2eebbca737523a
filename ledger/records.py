"""Raw audit records to ledger rows: what ``audit_events_of`` reads, without pydantic on the common path.

``AuditEvent`` (pydantic) defines which events are valid and what they mean; a record holds one,
or a JSON array of them (``schemas.audit.audit_events_of``). Validating every event with
pydantic took ~10 us of the sink's ~30 us per event, so a record in the exact shape producers
write (``AuditEvent.to_bytes``: a JSON object of the model's fields, strings where strings
belong, the timestamp as ``YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z``; or a non-empty array of such
objects) is read with orjson and checked field by field here. Anything else goes to
``audit_events_of``, which accepts or refuses the whole record, with pydantic's message naming
the element and the field: invalid JSON, a missing or unknown field, a number where a string
belongs, another timestamp form (an offset, a Unix time), an impossible date, an empty array, or
a float anywhere in ``details`` (orjson reads an integer beyond 64 bits as a float where pydantic
keeps the int, so any float goes the exact way).

The fast path accepts only records ``audit_events_of`` accepts, and yields the same rows for
them; tests/unit/test_ledger_records.py checks both on valid and malformed records.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple, cast

import orjson

from ledger.chain import canonical_details, format_ts
from runtime.clock import to_us
from schemas.audit import AuditEvent, audit_events_of
from schemas.record import SCHEMA_VERSION


class Row(NamedTuple):
    """One event as the ledger stores and hashes it."""

    event_id: str
    actor: str
    action: str
    resource: str
    ts: str  # the chain encoding's form, YYYY-MM-DDTHH:MM:SS.ffffffZ (chain.format_ts)
    ts_us: int  # the same instant in microseconds since the epoch: what the DateTime64(6) column holds
    intent_id: str  # "" when absent
    agent_id: str  # "" when absent
    details: str  # canonical JSON text (chain.canonical_details)


def row_of(event: AuditEvent) -> Row:
    return Row(
        event.event_id,
        event.actor,
        event.action,
        event.resource,
        format_ts(event.ts),
        to_us(event.ts),
        event.intent_id or "",
        event.agent_id or "",
        canonical_details(event.details),
    )


def parse(raw: bytes) -> list[Row]:
    """The rows of one record (one AuditEvent, or a JSON array of them: `audit_events_of`), in
    order. Raises ValueError (pydantic's, naming the element and the field) when the record is
    neither."""
    rows = _producer_shaped(raw)
    return rows if rows is not None else [row_of(event) for event in audit_events_of(raw)]


_REQUIRED = frozenset({"event_id", "actor", "action", "resource", "ts"})
_ALLOWED = _REQUIRED | {"schema_version", "intent_id", "agent_id", "details"}
_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")


def _producer_shaped(raw: bytes) -> list[Row] | None:
    """The rows when the record is in the shape producers write, else None (`audit_events_of`
    decides, for the whole record)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(body) is dict:
        row = _event_row(body)
        return None if row is None else [row]
    if type(body) is not list or not body:
        return None
    rows = [_event_row(item) if type(item) is dict else None for item in body]
    return None if any(row is None for row in rows) else cast(list[Row], rows)  # any() found no None


def _event_row(body: dict[str, Any]) -> Row | None:
    """The row of one producer-shaped event, else None."""
    if not _REQUIRED <= body.keys() <= _ALLOWED:
        return None
    event_id, actor, action, resource, ts = (
        body["event_id"],
        body["actor"],
        body["action"],
        body["resource"],
        body["ts"],
    )
    if not (type(event_id) is str and type(actor) is str and type(action) is str and type(resource) is str):
        return None
    version = body.get("schema_version", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:
        return None
    intent_id = body.get("intent_id")
    agent_id = body.get("agent_id")
    if intent_id is None:
        intent_id = ""
    elif type(intent_id) is not str:
        return None
    if agent_id is None:
        agent_id = ""
    elif type(agent_id) is not str:
        return None
    details = body.get("details", {})
    try:
        if type(details) is not dict or not _no_float(details):
            return None
    except RecursionError:  # nested deeper than Python recurses: AuditEvent decides
        return None
    if type(ts) is not str or not _TS.fullmatch(ts):
        return None
    try:
        # fromisoformat checks the calendar; what it refuses (month 13, 30 February, second 60)
        # goes to AuditEvent, which decides.
        moment = datetime.fromisoformat(ts)
        text = canonical_details(details)
    except (ValueError, TypeError):
        return None
    # The encoding's form: always six fractional digits ("...:00Z" -> "...:00.000000Z", ".25Z" -> ".250000Z").
    ts_text = ts if len(ts) == 27 else f"{ts[:19]}.{ts[20:-1].ljust(6, '0')}Z"
    return _new_row(Row, (event_id, actor, action, resource, ts_text, to_us(moment), intent_id, agent_id, text))


# Row(...) without NamedTuple's Python-level __new__: the same tuple, a third of the cost.
_new_row = tuple.__new__


def _no_float(value: dict[str, Any] | list[Any]) -> bool:
    """True when no float is nested anywhere in ``value``."""
    for item in value.values() if isinstance(value, dict) else value:
        kind = type(item)
        if kind is float:
            return False
        if (kind is dict or kind is list) and not _no_float(item):
            return False
    return True
