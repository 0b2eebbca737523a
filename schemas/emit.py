"""What a Kafka-free processor hands back: records to publish (`Emit`), and the
helpers every service uses to build the audit events and dead letters that go with them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Protocol

import orjson

from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_record, event_id
from schemas.outcomes import DeadLetter
from schemas.record import SCHEMA_VERSION


@dataclass(frozen=True)
class Emit:
    topic: str
    key: str
    value: bytes


@dataclass(frozen=True)
class Source:
    """Where an input record came from, for the DLQ and the audit trail."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None

    @property
    def resource(self) -> str:
        return f"record:{self.topic}/{self.partition}/{self.offset}"


def audit(
    actor: str,
    action: AuditAction,
    resource: str,
    now: datetime,
    *id_parts: str,
    intent_id: str | None = None,
    agent_id: str | None = None,
    intent_digest: str | None = None,
    **details: Any,
) -> Emit:
    """An audit event whose id is derived from what it records, so a redelivery yields the same id.

    An event about an intent names the digest of the record it judged (``intent_digest``, kept in
    its details and part of its id): a refusal of a forged copy that reuses an intent's id is then
    a different event from every decision about the real intent, and no view, receipt or proof can
    take one for the other."""
    name = str(action)  # the plain string: the fast path below takes only exact strs
    if intent_digest is not None:
        id_parts = (*id_parts, intent_digest)
        details = {"intent_digest": intent_digest, **details}
    # Any: the fields of an AuditEvent, which checks them when it builds the event.
    fields: dict[str, Any] = dict(
        event_id=event_id(name, *id_parts),
        actor=actor,
        action=name,
        resource=resource,
        ts=now,
        intent_id=intent_id,
        agent_id=agent_id,
        details=details,
    )
    return Emit(topics.AUDIT_EVENTS, agent_id or "", _plain_event_bytes(fields) or AuditEvent(**fields).to_bytes())


@dataclass(frozen=True)
class IntentRef:
    """An intent as an audit event names it: its agent, its id, and the digest of the record the
    event is about (the intent's, or a record's bytes for a refusal bound to them; None for a
    record that names none)."""

    agent_id: str
    intent_id: str
    digest: str | None


def intent_audit(
    actor: str, action: AuditAction, about: IntentRef, now: datetime, *id_parts: str, **details: Any
) -> Emit:
    """An audit event about an intent (`audit`): its resource ``intent:<id>``, its id made of the
    intent's id, ``id_parts`` and the digest, and the intent's agent, id and digest in its fields,
    all from the one `IntentRef`, so no event can name one intent and carry another's id or digest."""
    return audit(
        actor,
        action,
        f"intent:{about.intent_id}",
        now,
        about.intent_id,
        *id_parts,
        intent_id=about.intent_id,
        agent_id=about.agent_id,
        intent_digest=about.digest,
        **details,
    )


class IntentOutcome(Protocol):
    """An outcome record about one intent (`schemas.outcomes`): the intent and agent it answers."""

    @property
    def intent_id(self) -> str: ...

    @property
    def agent_id(self) -> str: ...


def outcome_with_audit(
    topic: str,
    outcome: IntentOutcome,
    record: bytes,
    actor: str,
    action: AuditAction,
    about: IntentRef,
    now: datetime,
    /,
    *id_parts: str,
    **details: Any,
) -> list[Emit]:
    """An intent's outcome (``record``: ``outcome``'s bytes, published on ``topic`` keyed by the
    intent's agent) and its audit event (`intent_audit`), both from the one `IntentRef`. Raises
    ValueError when ``outcome`` answers another intent or agent than ``about`` names: the ledger
    would record a decision about one intent beside a record that answers another."""
    if outcome.intent_id != about.intent_id or outcome.agent_id != about.agent_id:
        raise ValueError(
            f"the outcome answers intent {outcome.intent_id!r} of agent {outcome.agent_id!r}, but its audit "
            f"event is about intent {about.intent_id!r} of agent {about.agent_id!r}; build both from the same intent"
        )
    return [Emit(topic, about.agent_id, record), intent_audit(actor, action, about, now, *id_parts, **details)]


def _plain_event_bytes(fields: dict[str, Any]) -> bytes | None:
    """``AuditEvent(**fields).to_bytes()``, byte for byte, built without the model when every field
    is plain JSON (strings, ints, bools, None, lists and string-keyed dicts of them) and the time
    carries its zone; else None, and the model builds it (or says what is wrong). A worker writes
    ~10 events an intent, and the model's validation and dump were ~2.5 us of the ~7 each."""
    ts = fields["ts"]
    if not (
        isinstance(ts, datetime)
        and ts.tzinfo is not None
        and _plain(fields["details"])
        and all(type(fields[name]) is str for name in ("event_id", "actor", "action", "resource"))
        and all(fields[name] is None or type(fields[name]) is str for name in ("intent_id", "agent_id"))
    ):
        return None
    # Pydantic's form of a UTC time (`schemas.fields.UtcDatetime`): ISO 8601 with "Z" for the zone.
    at = (ts if ts.tzinfo is timezone.utc else ts.astimezone(timezone.utc)).isoformat()[: -len("+00:00")] + "Z"
    try:
        return orjson.dumps({"schema_version": SCHEMA_VERSION, **fields, "ts": at})
    except TypeError:  # an int past 64 bits: the model writes it as its decimal text (`schemas.record.JsonObject`)
        return None


def _plain(value: Any) -> bool:
    # Any, not object: the type is tested once, through ``kind``, and mypy narrows no value by that.
    kind = type(value)
    # A StrEnum member (a stage, a code) is its value to orjson, as to the model.
    if kind is str or kind is int or kind is bool or value is None or isinstance(value, StrEnum):
        return True
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    return False


def dead_letter(
    actor: str,
    raw: bytes | None,
    source: Source,
    now: datetime,
    reason: str,
    errors: tuple[str, ...] = (),
    max_bytes: int = 65_536,
    sign: Callable[[DeadLetter], DeadLetter] | None = None,
) -> list[Emit]:
    """The dead letter for a record (its first ``max_bytes``, the digest and size of the whole)
    and its audit event. ``sign`` is the writing service's outcome signature: readers believe
    only signed dead letters (`schemas.auth.outcome_forgery`)."""
    payload = raw or b""
    key = source.key.decode(errors="replace") if source.key else None
    letter = DeadLetter(
        source_topic=source.topic,
        partition=source.partition,
        offset=source.offset,
        key=key,
        reason=reason,
        errors=tuple(errors),
        payload_b64=base64.b64encode(payload[:max_bytes]).decode(),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        payload_bytes=len(payload),
        received_at=now,
    )
    if sign is not None:
        letter = sign(letter)
    return [
        Emit(topics.DLQ, key or "", letter.to_bytes()),
        audit(
            actor,
            AuditAction.DLQ_RECORDED,
            source.resource,
            now,
            source.resource,
            agent_id=key,
            reason=reason,
            payload_sha256=letter.payload_sha256,
            payload_bytes=letter.payload_bytes,
            errors=list(errors),
        ),
    ]


def join_audits(emits: list[Emit], max_bytes: int) -> list[Emit]:
    """``emits`` as they go on the bus: each agent's audit events joined into as few records as
    fit in ``max_bytes`` (`schemas.audit.audit_record`, read back by `audit_events_of`), so an
    intent costs the bus and the ledger one audit record, not one per event. The other records
    come first, in their order, then the audit records, each agent's events in their order: an
    outcome never waits behind the events that describe it."""
    joined: list[Emit] = []
    events_by_key: dict[str, list[bytes]] = {}
    for emit in emits:
        if emit.topic == topics.AUDIT_EVENTS:
            events_by_key.setdefault(emit.key, []).append(emit.value)
        else:
            joined.append(emit)
    for key, events in events_by_key.items():
        group: list[bytes] = []
        size = 2  # the array's brackets
        for event in events:
            if group and size + len(event) + 1 > max_bytes:
                joined.append(Emit(topics.AUDIT_EVENTS, key, audit_record(group)))
                group, size = [], 2
            group.append(event)
            size += len(event) + 1
        joined.append(Emit(topics.AUDIT_EVENTS, key, audit_record(group)))
    return joined
