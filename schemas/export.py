"""JSON Schemas of every Warden record, for producers and consumers in other languages."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.admins import AdminProposal, AdminSet, VaultChange
from schemas.audit import AuditEvent
from schemas.chain_set import ChainSet
from schemas.intent import TransactionIntent
from schemas.outcomes import (
    DeadLetter,
    HumanApproval,
    IntentAbandoned,
    IntentApproved,
    IntentOverdue,
    IntentParked,
    IntentRejected,
    SignedBitcoinTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
    StageEnvelope,
    StageVerdict,
)
from schemas.policy import AgentPolicy
from schemas.record import WireJsonSchema
from schemas.sealing_key import SealingKey
from schemas.simulation import SimulationRequest, SimulationResult

# Every record a Warden topic carries (docs/topics.md), so a producer or consumer in another
# language validates each against the schema of the code that reads it.
RECORDS = (
    TransactionIntent,
    AgentPolicy,
    StageVerdict,
    IntentRejected,
    IntentApproved,
    IntentParked,
    IntentOverdue,
    IntentAbandoned,
    HumanApproval,
    SignedTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedBitcoinTransaction,
    SimulationRequest,
    SimulationResult,
    StageEnvelope,
    AuditEvent,
    DeadLetter,
    SealingKey,
    AdminSet,
    AdminProposal,
    ChainSet,
    VaultChange,
)


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in RECORDS:
        path = directory / f"{model.__name__}.schema.json"
        schema = model.model_json_schema(by_alias=True, schema_generator=WireJsonSchema)
        schema["$id"] = f"https://warden.dev/schemas/v1/{model.__name__}.schema.json"
        path.write_text(json.dumps(schema, indent=2) + "\n")
        written.append(path)
    return written
