"""What the schema tests share: an intent document to vary field by field, the addresses it uses,
and one record of each kind."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.hash import Hash
from solders.pubkey import Pubkey

from schemas.actions import AuditAction
from schemas.audit import AuditEvent
from schemas.auth import public_key_hex, sign_policy
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import (
    DeadLetter,
    HumanApproval,
    IntentAbandoned,
    IntentApproved,
    IntentOverdue,
    IntentParked,
    IntentRejected,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
    StageVerdict,
)
from schemas.policy import AgentPolicy, SolanaPolicy, SolanaTokenLimit
from sdk import solana as build
from sdk.client import new_intent, new_solana_intent, new_solana_message_intent

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
_PAYER, _PAYEE = (Pubkey.from_bytes(bytes([n]) * 32) for n in (7, 9))

# The EIP-55 specification's own example address, in its three spellings.
CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
LOWER = CHECKSUMMED.lower()
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"


def intent_doc(**overrides: Any) -> dict[str, Any]:
    doc = {
        "intent_id": "i-1",
        "agent_id": "agent-1",
        "chain": "anvil",
        "to": CHECKSUMMED,
        "value": "0.5",
        "created_at": "2026-11-21T10:00:00Z",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not DROP}


DROP = object()


def sample_records() -> list[Any]:
    """One record of each kind, its numbers past 2**53 and its text past ASCII where it has them:
    an EVM intent, its policy and a stage's verdict with their outcomes, a Solana transaction and
    off-chain message with theirs, and the records of what waits for or went wrong in the pipeline."""
    agent_key = Ed25519PrivateKey.generate()
    intent, policy = _evm_intent_and_policy(agent_key)
    solana_intent, solana_message_intent, solana_policy = _solana_intents_and_policy(agent_key)
    verdict = StageVerdict(
        intent_id=intent.intent_id,
        stage="value_cap",
        passed=False,
        code=Code.VALUE_OVER_CAP,
        reason="too much",
        facts={"value_wei": str(2**80), "cap_wei": "1"},
    )
    return [
        intent,
        policy,
        verdict,
        *_evm_outcomes(intent, policy, verdict),
        solana_intent,
        solana_policy,
        *_solana_outcomes(solana_intent, solana_message_intent),
        solana_message_intent,
        *_pipeline_records(intent, verdict),
    ]


def _evm_intent_and_policy(agent_key: Ed25519PrivateKey) -> tuple[TransactionIntent, AgentPolicy]:
    """An access-list (type 1) intent with a lower-case recipient, and an admin-signed policy."""
    intent = new_intent(
        agent_key,
        agent_id="agent-1",
        chain="anvil",
        to=LOWER,
        value="1.25",
        now=T0,
        tx_type=1,
        gas_price=str(2**100),
        gas_limit=50_000,
        nonce=7,
        data="0xA9059CBB",
        access_list=[{"address": OTHER, "storage_keys": ["0x" + "ab" * 32]}],
        idempotency_key="order-1",
    )
    policy = sign_policy(
        AgentPolicy(
            agent_id="agent-1",
            version=3,
            tx_allowed_chains=("anvil", "base"),
            tx_to_allowlist=(CHECKSUMMED,),
            tx_max_value_eth="1.5",
            tx_daily_limit_eth="10",
            tx_max_fee_per_gas=str(2**90),
            sender_address=OTHER,
            agent_public_key=public_key_hex(agent_key),
            issued_at=T0,
        ),
        Ed25519PrivateKey.generate(),
        "test-admin",
    )
    return intent, policy


def _solana_intents_and_policy(
    agent_key: Ed25519PrivateKey,
) -> tuple[TransactionIntent, TransactionIntent, AgentPolicy]:
    """A Solana transfer's intent, an off-chain message's intent, and a Solana policy."""
    raw = build.unsigned(_PAYER, [build.sol_transfer(_PAYER, _PAYEE, 1_000_000)], Hash(bytes([3]) * 32))
    solana_intent = new_solana_intent(agent_key, agent_id="agent-1", chain="solana-local", transaction=raw, now=T0)
    solana_message_intent = new_solana_message_intent(
        agent_key,
        agent_id="agent-1",
        chain="solana-local",
        text="ünïcode, signed off-chain",
        signatories=[str(_PAYER)],
        application_domain=str(_PAYEE),
        now=T0,
    )
    solana_policy = sign_policy(
        AgentPolicy(
            agent_id="agent-1",
            version=4,
            tx_allowed_chains=("solana-local",),
            solana=SolanaPolicy(
                address=str(_PAYER),
                allowlist=(str(_PAYEE),),
                max_lamports_per_tx=2**63,
                tokens=(SolanaTokenLimit(mint=str(_PAYEE), decimals=6, max_per_tx=2**60, approval_threshold=5),),
            ),
            agent_public_key=public_key_hex(agent_key),
            issued_at=T0,
        ),
        Ed25519PrivateKey.generate(),
        "test-admin",
    )
    return solana_intent, solana_message_intent, solana_policy


def _evm_outcomes(intent: TransactionIntent, policy: AgentPolicy, verdict: StageVerdict) -> list[Any]:
    """The EVM intent rejected, approved, and signed."""
    return [
        IntentRejected(
            intent_id=intent.intent_id,
            agent_id="agent-1",
            stage="value_cap",
            code=Code.VALUE_OVER_CAP,
            reason="too much",
            verdicts=(verdict,),
            decided_at=T0,
            intent_digest=intent.digest(),
        ),
        IntentApproved(
            intent=intent, policy=policy, verdicts=(verdict,), approved_at=T0, intent_digest=intent.digest()
        ),
        SignedTransaction(
            intent_id=intent.intent_id,
            agent_id="agent-1",
            chain="anvil",
            chain_id=31337,
            signed_tx="0x01f8",
            tx_hash="0x" + "cd" * 32,
            **{"from": OTHER},
            to=CHECKSUMMED,
            nonce=7,
            value_wei=2**200 + 1,
            tx_type=1,
            status="mined",
            tee="none",
            signed_at=T0,
            max_spend_wei=2**200 + 2**101,
            fee_wei=2**99,
            intent_digest=intent.digest(),
        ),
    ]


def _solana_outcomes(solana_intent: TransactionIntent, solana_message_intent: TransactionIntent) -> list[Any]:
    """The Solana transaction signed and finalized, and the off-chain message signed."""
    return [
        SignedSolanaTransaction(
            intent_id=solana_intent.intent_id,
            agent_id="agent-1",
            chain="solana-local",
            **{"from": str(_PAYER)},
            signature="1" * 64,
            tx_signature="1" * 64,
            signed_tx=solana_intent.solana_transaction,
            recent_blockhash=str(Hash(bytes([3]) * 32)),
            spend={"SOL": str(2**63)},
            status="finalized",
            final=True,
            slot=2**40,
            tee="none",
            signed_at=T0,
            intent_digest=solana_intent.digest(),
        ),
        SignedSolanaMessage(
            intent_id=solana_message_intent.intent_id,
            agent_id="agent-1",
            chain="solana-local",
            **{"from": str(_PAYER)},
            signature="1" * 64,
            message=solana_message_intent.solana_message,
            message_sha256="ab" * 32,
            version=0,
            application_domain=str(_PAYEE),
            signatories=(str(_PAYER),),
            tee="none",
            signed_at=T0,
            intent_digest=solana_message_intent.digest(),
        ),
    ]


def _pipeline_records(intent: TransactionIntent, verdict: StageVerdict) -> list[Any]:
    """What the pipeline records beside outcomes: an audit event, a dead letter, the intent parked
    and abandoned, and an admin's decision."""
    return [
        AuditEvent(
            event_id="e1",
            actor="service:streams",
            action=AuditAction.STAGE_FAILED,
            resource="intent:i-1",
            ts=T0,
            intent_id="i-1",
            agent_id="agent-1",
            details={"facts": {"n": "1"}},
        ),
        DeadLetter(
            source_topic="warden.intents.submitted",
            partition=1,
            offset=9,
            key="agent-1",
            reason="bad",
            errors=("to: is required",),
            payload_b64="e30=",
            payload_sha256="00" * 32,
            received_at=T0,
        ),
        IntentParked(
            intent_id=intent.intent_id,
            agent_id="agent-1",
            reason="above the approval threshold",
            intent=intent,
            verdicts=(verdict,),
            parked_at=T0,
            expires_at=T0,
            intent_digest=intent.digest(),
        ),
        IntentOverdue(intent=intent, attempts=3, overdue_at=T0, intent_digest=intent.digest()),
        IntentAbandoned(intent=intent, attempts=3, abandoned_at=T0, intent_digest=intent.digest()),
        HumanApproval(
            intent_id=intent.intent_id,
            agent_id="agent-1",
            intent_digest=intent.digest(),
            decision="deny",
            reason="unknown vendor",
            decided_at=T0,
            admin_key_id="test-admin",
        ),
    ]
