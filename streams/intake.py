"""Intake: raw bytes from the submitted topic → a TransactionIntent, or the reason it is unreadable.

Nothing a producer sends can stop a worker: every failure here becomes a value
that the topology routes to the DLQ (and, when the record names its intent and
agent, a rejection the producer can see).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from schemas.errors import explain
from schemas.models import TransactionIntent


@dataclass(frozen=True)
class Unreadable:
    reason: str
    errors: tuple[str, ...] = ()
    intent_id: str | None = None
    agent_id: str | None = None


def read_intent(raw: bytes | None, max_bytes: int) -> TransactionIntent | Unreadable:
    if raw is None:
        return Unreadable("empty record: the value is null")
    if len(raw) > max_bytes:
        return Unreadable(f"record of {len(raw)} bytes exceeds the {max_bytes}-byte limit; it was not parsed")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Unreadable(f"not valid JSON: {exc}")
    if not isinstance(doc, dict):
        return Unreadable(f"a TransactionIntent must be a JSON object, got {type(doc).__name__}")
    try:
        return TransactionIntent.model_validate(doc)
    except ValidationError as exc:
        ids = {k: v for k in ("intent_id", "agent_id") if isinstance(v := doc.get(k), str) and 0 < len(v) <= 128}
        errors = explain(exc)
        return Unreadable(f"invalid TransactionIntent: {'; '.join(errors)}", errors, ids.get("intent_id"), ids.get("agent_id"))
