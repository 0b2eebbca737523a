"""JSON Schemas of every Warden record, for producers and consumers in other languages."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.audit import AuditEvent
from schemas.intent import TransactionIntent
from schemas.outcomes import DeadLetter, IntentApproved, IntentRejected, SignedMessage, SignedTransaction, StageVerdict
from schemas.policy import AgentPolicy
from schemas.sealing_key import SealingKey

RECORDS = (
    TransactionIntent,
    AgentPolicy,
    StageVerdict,
    IntentRejected,
    IntentApproved,
    SignedTransaction,
    SignedMessage,
    AuditEvent,
    DeadLetter,
    SealingKey,
)


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in RECORDS:
        path = directory / f"{model.__name__}.schema.json"
        schema = model.model_json_schema(by_alias=True)
        schema["$id"] = f"https://warden.dev/schemas/v1/{model.__name__}.schema.json"
        path.write_text(json.dumps(schema, indent=2) + "\n")
        written.append(path)
    return written
