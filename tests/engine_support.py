"""The worker's engine in a test's hands: a World with its keys, policies and an Engine fed record
by record (no broker), and helpers that read its decisions."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

import schemas.auth
from runtime.admins import Admins
from runtime.clock import to_us
from runtime.kafka import partition_of
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent
from schemas.auth import public_key_hex, sign_outcome, sign_policy
from schemas.codes import Code
from schemas.emit import Emit, Source
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from sdk.client import new_intent
from streams.engine import Engine

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
ADMIN_ID = "test-admin"
AGENT = "agent-1"
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
WORKER_ID, SIGNER_ID = "streams-test", "signer-test"


class StaticKeys:
    """Pinned service keys as a test configures them."""

    def __init__(self, **by_role: dict[str, str]):
        self.by_role = by_role

    def key(self, role: str, key_id: str) -> str | None:
        return self.by_role.get(role, {}).get(key_id)


@dataclass
class World:
    admin_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    agent_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    worker_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    signer_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    offset: int = 0
    engine: Engine = None  # type: ignore[assignment]
    max_record_bytes: int = 65_536

    def __post_init__(self) -> None:
        self.engine = self.new_engine({}, {})

    def new_engine(self, policies: dict[str, Any], decisions: dict[str, Any], **wiring: Any) -> Engine:
        """An engine over these tables; ``wiring`` sets what the topology sets (home_partition, service_keys)."""
        arguments = dict(
            admins=Admins.with_threshold({ADMIN_ID: public_key_hex(self.admin_key)}, 1),
            node_for=lambda chain: None,
            policies=policies,
            decisions=decisions,
            idempotency={},
            service_key=(WORKER_ID, self.worker_key),
            service_keys=self.pinned(),
            max_record_bytes=self.max_record_bytes,
        )
        return Engine(**{**arguments, **wiring})

    def pinned(self) -> StaticKeys:
        return StaticKeys(
            worker={WORKER_ID: public_key_hex(self.worker_key)}, signer={SIGNER_ID: public_key_hex(self.signer_key)}
        )

    def refusal(
        self,
        intent: TransactionIntent,
        now: datetime = T0,
        code: Code = Code.SIGNER_ERROR,
        stage: Stage = Stage.SIGNING,
        key: Ed25519PrivateKey | None = None,
    ) -> bytes:
        """What a signer says when it refuses an approved intent, signed with ``key`` (the signer's)."""
        rejected = IntentRejected(
            intent_id=intent.intent_id,
            agent_id=AGENT,
            stage=stage,
            code=code,
            reason="the signer could not sign",
            decided_at=now,
            intent_digest=intent.digest(),
        )
        return sign_outcome(rejected, key or self.signer_key, SIGNER_ID).to_bytes()

    def policy(self, version: int = 1, agent_id: str = AGENT, **fields: Any) -> AgentPolicy:
        base = {
            "agent_id": agent_id,
            "version": version,
            "tx_allowed_chains": ("anvil",),
            "tx_to_allowlist": (DEST,),
            "tx_max_value_eth": "1",
            "tx_daily_limit_eth": "1.5",
            "agent_public_key": public_key_hex(self.agent_key),
            "issued_at": T0,
        }
        return sign_policy(AgentPolicy(**{**base, **fields}), self.admin_key, ADMIN_ID)

    def overdue(
        self, intent: TransactionIntent, key: Ed25519PrivateKey | None = None, key_id: str = WORKER_ID
    ) -> bytes:
        """What this world's worker's redelivery watch writes when ``intent`` is overdue."""
        from streams.redelivery import overdue_record

        return overdue_record(intent.to_bytes(), self.max_record_bytes, 3, T0, (key_id, key or self.worker_key))

    def source(self, topic: str = topics.INTENTS_SUBMITTED, key: str = AGENT) -> Source:
        self.offset += 1
        return Source(topic, partition_of(key), self.offset, key.encode())  # where a producer puts it

    def publish(self, policy: AgentPolicy, now: datetime = T0) -> list[Emit]:
        return self.engine.on_policy(policy.to_bytes(), self.source(topics.POLICIES), now)

    def intent(self, value: str = "0.5", now: datetime = T0, **fields: Any) -> TransactionIntent:
        fields.setdefault("agent_id", AGENT)
        fields.setdefault("to", DEST)
        fields.setdefault("chain", "anvil")
        if fields.get("tx_type", 2) == 2:
            fields.setdefault("max_fee_per_gas", 0)
            fields.setdefault("max_priority_fee_per_gas", 0)
        else:
            fields.setdefault("gas_price", 0)
        fields.setdefault("gas_limit", 21_000)
        return new_intent(fields.pop("key", self.agent_key), value=value, now=now, **fields)

    def submit(
        self, raw: bytes | TransactionIntent | None, now: datetime = T0, source: Source | None = None
    ) -> list[Emit]:
        if isinstance(raw, TransactionIntent):
            raw = raw.to_bytes()
        return asyncio.run(self.engine.on_intent(raw, source or self.source(), now))

    def spent(self, now: datetime = T0, agent_id: str = AGENT) -> int:
        return self.engine.windows.of(agent_id).spent(to_us(now))


def on(emits: list[Emit], topic: str) -> list[Emit]:
    return [e for e in emits if e.topic == topic]


def audits(emits: list[Emit]) -> list[AuditEvent]:
    return [AuditEvent.from_bytes(e.value) for e in on(emits, topics.AUDIT_EVENTS)]


def actions(emits: list[Emit]) -> list[str]:
    return [a.action for a in audits(emits)]


def rejected_of(emits: list[Emit]) -> IntentRejected:
    (emit,) = on(emits, topics.INTENTS_REJECTED)
    return IntentRejected.from_bytes(emit.value)


INTENTS = 5


def counting(patch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Counts, while ``patch`` holds: parses per model class, and Ed25519 verifications by message."""
    calls: collections.Counter[str] = collections.Counter()

    def counted_parse(entry: str) -> Any:
        parse = getattr(BaseModel, entry).__func__

        def counting_parse(cls: type[BaseModel], *args: Any, **kwargs: Any) -> Any:
            calls[f"parse {cls.__name__}"] += 1
            return parse(cls, *args, **kwargs)

        return classmethod(counting_parse)

    verify = schemas.auth._verify

    def counting_verify(public_key_hex_: str, signature_hex: str, message: bytes) -> bool:
        calls[f"verify {message!r}"] += 1
        return verify(public_key_hex_, signature_hex, message)

    for entry in ("model_validate", "model_validate_json"):
        patch.setattr(BaseModel, entry, counted_parse(entry))
    patch.setattr(schemas.auth, "_verify", counting_verify)
    return calls


DAY = timedelta(hours=24)
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
ETH = 10**18
PASSED_CODES = [
    Code.CHAIN_ALLOWED,
    Code.RECIPIENT_ALLOWED,
    Code.ASSETS_WITHIN_POLICY,
    Code.SIMULATION_NOT_REQUIRED,
    Code.FEE_WITHIN_CEILING,
    Code.VALUE_WITHIN_CAP,
    Code.WITHIN_DAILY_LIMIT,
    Code.NO_USD_LIMIT,
]


def approved_of(emits: list[Emit]) -> IntentApproved:
    (emit,) = on(emits, topics.INTENTS_APPROVED)
    return IntentApproved.from_bytes(emit.value)


def passed_codes(emits: list[Emit]) -> list[str]:
    """The codes of the stages an intent passed, from their audit events: where verdicts are kept."""
    return [e.details["code"] for e in audits(emits) if e.action == AuditAction.STAGE_PASSED]


def assert_approved(emits: list[Emit], intent: TransactionIntent) -> IntentApproved:
    approved = approved_of(emits)
    assert approved.intent == intent
    # The signer re-runs every check and never reads verdicts: the approval carries none, not
    # even as an empty list on the wire (the ledger's stage.passed events hold them).
    assert approved.verdicts == () and b'"verdicts"' not in on(emits, topics.INTENTS_APPROVED)[0].value
    assert on(emits, topics.INTENTS_REJECTED) == [] and on(emits, topics.DLQ) == []
    return approved
