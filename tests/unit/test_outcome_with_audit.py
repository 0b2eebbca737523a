"""`schemas.emit.outcome_with_audit`, the one way a worker or a signer publishes an intent's outcome
with its audit event: at the sites that use it, the event is byte for byte the one spelt out with
`audit` (so its id is too, and the ledger, which keeps the first of an id, records nothing new after
a restart), the outcome goes out keyed by the intent's agent, and an outcome about another intent
or agent than the event names is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas import topics
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.emit import Emit, IntentRef, audit, outcome_with_audit
from schemas.outcomes import IntentRejected, SignedSolanaTransaction
from signer.outcomes import SERVICE as SIGNER
from signer.outcomes import Outcomes, SigningRefused
from signer.state import SignerState
from streams.decide import SERVICE as WORKER
from tests.engine_support import T0, World, approved_of, on, rejected_of
from tests.schemas_support import sample_records

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _the_pair(emits: list[Emit], topic: str) -> tuple[Emit, Emit]:
    """The outcome on ``topic`` and the audit event published right after it."""
    (outcome,) = on(emits, topic)
    return outcome, emits[emits.index(outcome) + 1]


def test_a_worker_s_approval_and_rejection_carry_the_events_spelt_out_with_audit(world: World) -> None:
    good, bad = world.intent("0.5"), world.intent("2")
    emits = world.submit(good)
    approved = approved_of(emits)
    outcome, event = _the_pair(emits, topics.INTENTS_APPROVED)
    assert outcome.key == good.agent_id
    spend = str(approved.intent.value_wei)
    assert event == audit(
        WORKER,
        AuditAction.INTENT_APPROVED,
        f"intent:{good.intent_id}",
        T0,
        good.intent_id,
        intent_id=good.intent_id,
        agent_id=good.agent_id,
        intent_digest=good.digest(),
        policy_version=approved.policy.version,
        value_wei=str(good.value_wei),
        spend_wei=spend,
        chain=good.chain,
        asset_spend={},
    )
    emits = world.submit(bad)
    rejected = rejected_of(emits)
    outcome, event = _the_pair(emits, topics.INTENTS_REJECTED)
    assert outcome.key == bad.agent_id
    assert event == audit(
        WORKER,
        AuditAction.INTENT_REJECTED,
        f"intent:{bad.intent_id}",
        T0,
        bad.intent_id,
        intent_id=bad.intent_id,
        agent_id=bad.agent_id,
        intent_digest=bad.digest(),
        stage=rejected.stage,
        code=rejected.code,
        reason=rejected.reason,
    )


def _outcomes(tmp_path: Path) -> Outcomes:
    return Outcomes(
        SignerState(tmp_path / "signer.db", fsync=False), ("signer-test", Ed25519PrivateKey.generate()), "none"
    )


def test_a_signer_s_refusal_carries_the_event_spelt_out_with_audit(world: World, tmp_path: Path) -> None:
    intent = world.intent("0.5")
    emits = _outcomes(tmp_path).refuse(intent, SigningRefused(Code.SIGNER_ERROR, "the key is sealed"), AT, record=False)
    outcome, event = _the_pair(emits, topics.INTENTS_REJECTED)
    assert outcome.key == intent.agent_id and IntentRejected.from_bytes(outcome.value).intent_id == intent.intent_id
    assert event == audit(
        SIGNER,
        AuditAction.TX_SIGN_FAILED,
        f"intent:{intent.intent_id}",
        AT,
        intent.intent_id,
        intent_id=intent.intent_id,
        agent_id=intent.agent_id,
        intent_digest=intent.digest(),
        code=Code.SIGNER_ERROR,
        reason="the key is sealed",
        tee="none",
    )


def test_a_solana_status_carries_the_event_spelt_out_with_audit(tmp_path: Path) -> None:
    (signed,) = (record for record in sample_records() if isinstance(record, SignedSolanaTransaction))
    emits, result = _outcomes(tmp_path).solana_status(signed, {"status": "broadcast", "final": False}, AT)
    outcome, event = _the_pair(emits, topics.SOLANA_SIGNED)
    assert outcome.key == signed.agent_id and outcome.value == result.to_bytes()
    assert event == audit(
        SIGNER,
        AuditAction.SOLANA_BROADCAST,
        f"intent:{signed.intent_id}",
        AT,
        signed.intent_id,
        result.tx_signature or result.signature,
        "broadcast",
        "",
        intent_id=signed.intent_id,
        agent_id=signed.agent_id,
        intent_digest=signed.intent_digest,
        chain=result.chain,
        **{"from": result.from_},
        signature=result.signature,
        tx_signature=result.tx_signature,
        status="broadcast",
        final=False,
        slot=result.slot,
        spend=result.spend,
        error=None,
        tee="none",
    )


def _rejection(intent_id: str, agent_id: str) -> IntentRejected:
    return IntentRejected(
        intent_id=intent_id,
        agent_id=agent_id,
        stage="value_cap",
        code=Code.VALUE_OVER_CAP,
        reason="over the cap",
        decided_at=AT,
        intent_digest="ab" * 32,
    )


@pytest.mark.parametrize(
    ("intent_id", "agent_id", "named"),
    [
        ("intent-2", "treasury", "intent 'intent-2' of agent 'treasury'"),
        ("intent-1", "payroll", "intent 'intent-1' of agent 'payroll'"),
    ],
)
def test_an_outcome_about_another_intent_or_agent_is_refused(intent_id: str, agent_id: str, named: str) -> None:
    about = IntentRef("treasury", "intent-1", "ab" * 32)
    other = _rejection(intent_id, agent_id)
    with pytest.raises(ValueError, match=f"the outcome answers {named}.*about intent 'intent-1' of agent 'treasury'"):
        outcome_with_audit(
            topics.INTENTS_REJECTED, other, other.to_bytes(), WORKER, AuditAction.INTENT_REJECTED, about, AT
        )
    same = _rejection("intent-1", "treasury")
    outcome, event = outcome_with_audit(
        topics.INTENTS_REJECTED, same, same.to_bytes(), WORKER, AuditAction.INTENT_REJECTED, about, AT
    )
    assert outcome == Emit(topics.INTENTS_REJECTED, "treasury", same.to_bytes())
    assert event == audit(
        WORKER,
        AuditAction.INTENT_REJECTED,
        "intent:intent-1",
        AT,
        "intent-1",
        intent_id="intent-1",
        agent_id="treasury",
        intent_digest="ab" * 32,
    )
