"""The audit ledger's events: ``AuditEvent``, the records that carry them, and their ids."""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import Field, TypeAdapter

from schemas.actions import AuditAction
from schemas.fields import UtcDatetime
from schemas.record import JsonObject, Record

Actor = str  # "agent:<id>", "admin:<key id>" or "service:<name>"


class AuditEvent(Record):
    """One fact for the ledger: who (actor) did what (action) to what (resource), when."""

    event_id: str
    actor: Actor
    # Every action Warden writes is an AuditAction, and the JSON Schema lists them (``examples``), but
    # the field is any string: the ledger records every event a pinned service signed, also one
    # with an action a newer service added that this reader does not know yet.
    action: str = Field(
        description="<subject>.<what happened>: one of AuditAction (schemas/actions.py), listed in examples",
        json_schema_extra={"examples": [action.value for action in AuditAction]},
    )
    resource: str
    ts: UtcDatetime
    intent_id: str | None = None
    agent_id: str | None = None
    details: JsonObject = Field(default_factory=dict)


# A record on warden.audit.events holds one AuditEvent (a JSON object) or several of one agent's
# (a JSON array of at least one, in the order they happened): a service joins one agent's events of
# what it decided together (a lot of intents, a batch) into one record, not one per event. The
# ledger chains each event on its own, so the chain, the hashes and the proofs are the same.
_AUDIT_EVENTS = TypeAdapter(Annotated[list[AuditEvent], Field(min_length=1)])


def audit_events_of(raw: bytes) -> list[AuditEvent]:
    """The events of one audit record, in order. Raises ValueError (pydantic's, naming the element
    and the field) when it is neither an AuditEvent nor a non-empty JSON array of them."""
    if raw.lstrip()[:1] == b"[":
        return _AUDIT_EVENTS.validate_json(raw)
    return [AuditEvent.from_bytes(raw)]


def readable_audit_events(raw: bytes) -> list[AuditEvent]:
    """`audit_events_of`, or none when the record is not audit events: anyone who can write to the
    topic can write junk there; the ledger records it, a reader waiting on a verdict skips it."""
    try:
        return audit_events_of(raw)
    except ValueError:
        return []


def audit_record(events: list[bytes]) -> bytes:
    """One audit record of the given events' bytes (each ``AuditEvent.to_bytes()``), no re-encoding."""
    return events[0] if len(events) == 1 else b"[" + b",".join(events) + b"]"


def event_id(*parts: str) -> str:
    """Deterministic audit event id: a redelivered record yields the same id, so
    the ledger can skip what it already holds."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
