"""Intake: raw bytes from the submitted topic → a TransactionIntent (or from the simulation requests' topic
→ a SimulationRequest), or the reason it is unreadable.

Nothing a producer sends can stop a worker: every failure here becomes a value
that the topology routes to the DLQ and, when the record can be addressed to an
agent, a rejection its producer can see (`unreadable_answer` names it, for the
worker and for the SDK alike).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.chains import ChainLookup, chains_context
from schemas.errors import explain
from schemas.fields import Identifier
from schemas.intent import TransactionIntent
from schemas.record import Record
from schemas.simulation import SimulationRequest

# What a rejection of an unreadable record adds to why it could not be read: what to do next.
NEXT_STEP = (
    "Nothing in this record was judged or signed: correct what is named above (an intent's JSON Schema: "
    "`warden schemas export`), sign the intent again and submit it; this rejection names the record by "
    "the SHA-256 of its bytes (intent_digest)"
)
UNREADABLE_ID_PREFIX = "unreadable-"

_IDENTIFIER = TypeAdapter(Identifier)
RecordT = TypeVar("RecordT", bound=Record)


@dataclass(frozen=True)
class Unreadable:
    reason: str
    errors: tuple[str, ...] = ()
    intent_id: str | None = None  # the body's, when it names a usable one (an identifier)
    agent_id: str | None = None

    @property
    def rejection_reason(self) -> str:
        """What the producer reads in its INVALID_INTENT rejection: which field was wrong and
        what is allowed (`schemas.errors.explain`), then what to do next."""
        return f"{self.reason}. {NEXT_STEP}"


def usable_id(value: object) -> str | None:
    """``value`` if it is an `Identifier` (1-128 letters, digits and _.:-), else None. Bytes
    (a Kafka record's key) are read as UTF-8."""
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            return None
    try:
        return _IDENTIFIER.validate_python(value)
    except ValidationError:
        return None


def unreadable_answer(bad: Unreadable, raw: bytes | None, key: bytes | str | None) -> tuple[str | None, str, str]:
    """(agent_id, intent_id, intent_digest) of the rejection of an unreadable record.

    ``intent_digest`` is the SHA-256 of the record's value bytes exactly as written (of no
    bytes for a null value): what its producer recomputes, and all it can be matched by. The
    agent is the one the body names, else the record's key (``key``, UTF-8) when that is an
    identifier, else None: then there is nobody to answer, and the record gets only its dead
    letter and audit event. The intent id is the body's, else "unreadable-" and the first 32 hex
    digits of the digest."""
    digest = hashlib.sha256(raw or b"").hexdigest()
    return (bad.agent_id or usable_id(key), bad.intent_id or UNREADABLE_ID_PREFIX + digest[:32], digest)


def read_intent(raw: bytes | None, max_bytes: int, chains: ChainLookup) -> TransactionIntent | Unreadable:
    """``raw`` read as an intent on one of ``chains``, the networks in force (the process's
    `runtime.registry.REGISTRY`): an intent naming any other is unreadable ("unknown chain")."""
    return read_record(TransactionIntent, "intent_id", raw, max_bytes, chains)


def read_simulation_request(raw: bytes | None, max_bytes: int, chains: ChainLookup) -> SimulationRequest | Unreadable:
    """A record of warden.simulations.requested, read as an intent is (its ``request_id`` names it)."""
    return read_record(SimulationRequest, "request_id", raw, max_bytes, chains)


def read_record(
    model: type[RecordT], id_field: str, raw: bytes | None, max_bytes: int, chains: ChainLookup
) -> RecordT | Unreadable:
    """``raw`` read as ``model``, its chain names checked against ``chains`` (the networks in
    force), or why it cannot be, with the id (``id_field``) and the agent it names when they are
    usable."""
    name = model.__name__
    if raw is None:
        return Unreadable("empty record: the value is null")
    if len(raw) > max_bytes:
        return Unreadable(f"record of {len(raw)} bytes exceeds the {max_bytes}-byte limit; it was not parsed")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Unreadable(f"not valid JSON: {exc}")
    if not isinstance(doc, dict):
        return Unreadable(f"a {name} must be a JSON object, got {type(doc).__name__}")
    try:
        return model.model_validate(doc, context=chains_context(chains))
    except ValidationError as exc:
        errors = explain(exc)
        return Unreadable(
            f"invalid {name}: {'; '.join(errors)}",
            errors,
            usable_id(doc.get(id_field)),
            usable_id(doc.get("agent_id")),
        )
