"""Outcomes signed in Python, verified by the Node.js client written from docs/wire-formats.md alone
(tests/node/verify_outcome.mjs): what Python signs Node verifies, what Python refuses Node
refuses, and an outcome checked against a broken rule of the page fails. Node.js is required."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.auth import outcome_forgery, public_key_hex, sign_intent, sign_outcome, sign_policy
from schemas.codes import Code
from schemas.errors import Problem
from schemas.intent import TransactionIntent
from schemas.outcomes import (
    DeadLetter,
    IntentApproved,
    IntentParked,
    IntentRejected,
    Outcome,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
    StageVerdict,
)
from schemas.policy import AgentPolicy, ContractCallRule
from tests.wire_support import CHECKSUMMED, T0, TOKEN, run_node

WORKER, SIGNER, STRANGER = (Ed25519PrivateKey.generate() for _ in range(3))
KEYS = {"worker": {"worker-1": public_key_hex(WORKER)}, "signer": {"signer-1": public_key_hex(SIGNER)}}
ADMIN = Ed25519PrivateKey.generate()
SOLANA_PAYER = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"


class Pinned:
    """The keys a client pins (schemas.auth.ServiceKeys)."""

    def key(self, role: str, key_id: str) -> str | None:
        return KEYS.get(role, {}).get(key_id)


def _outcome_world() -> tuple[TransactionIntent, bytes, dict[str, tuple[str, Outcome]]]:
    """One signed intent and its policy, the bytes of an unreadable one, and every kind of outcome
    about them signed by the role that publishes it (name: (topic, signed record))."""
    intent, policy = _intent_and_policy()
    raw = b'{"agent_id": "agent-7", "intent_id": "bad-1", "value": 0.05}'
    records = {
        **_rejections(intent),
        **_signatures(intent),
        **_held_by_the_worker(intent, policy),
        **_refused_at_intake(intent, raw),
    }
    keys = {"worker": (WORKER, "worker-1"), "signer": (SIGNER, "signer-1")}
    signed = {name: (topic, sign_outcome(record, *keys[role])) for name, (topic, role, record) in records.items()}
    return intent, raw, signed


def _intent_and_policy() -> tuple[TransactionIntent, AgentPolicy]:
    """Agent-7's intent (a non-ASCII idempotency key) signed by its key, and its policy signed by
    the admin."""
    agent = Ed25519PrivateKey.generate()
    intent = sign_intent(
        TransactionIntent(
            intent_id="pay-1",
            agent_id="agent-7",
            chain="base",
            to=CHECKSUMMED,
            value="1.5",
            idempotency_key="facture-ü",
            created_at=T0,
        ),
        agent,
    )
    policy = sign_policy(
        AgentPolicy(
            agent_id="agent-7",
            version=3,
            agent_public_key=public_key_hex(agent),
            tx_to_allowlist=(CHECKSUMMED,),
            tx_max_value_eth="2",
            issued_at=T0,
            contract_calls=(ContractCallRule(contract=TOKEN, selectors="any"),),
        ),
        ADMIN,
        "admin-1",
    )
    return intent, policy


def _rejections(intent: TransactionIntent) -> dict[str, tuple[str, str, Outcome]]:
    """The intent rejected by a worker's stage (non-ASCII reason, nested facts, a number past
    2**53) and by the signer."""
    digest = intent.digest()
    common = dict(intent_id=intent.intent_id, agent_id=intent.agent_id)
    return {
        "rejected_by_a_worker": (
            "warden.intents.rejected",
            "worker",
            IntentRejected(
                **common,
                stage="value_cap",
                code=Code.VALUE_OVER_CAP,
                reason="über dem Limit: 1.5 > 1 ✗",
                verdicts=(
                    StageVerdict(
                        intent_id=intent.intent_id,
                        stage="value_cap",
                        passed=False,
                        code=Code.VALUE_OVER_CAP,
                        reason="über",
                        facts={"cap_wei": "1000", "nested": {"b": 1, "a": [2**60 + 3]}},
                    ),
                ),
                decided_at=T0,
                intent_digest=digest,
            ),
        ),
        "rejected_by_the_signer": (
            "warden.intents.rejected",
            "signer",
            IntentRejected(
                **common,
                stage="signing",
                code=Code.SIGNER_ERROR,
                reason="node unreachable",
                decided_at=T0,
                intent_digest=digest,
                tee="none",
            ),
        ),
    }


def _signatures(intent: TransactionIntent) -> dict[str, tuple[str, str, Outcome]]:
    """The signer's signatures: a transaction, a typed-data message, a Solana transaction and a
    Solana off-chain message, their numbers past 2**53."""
    digest = intent.digest()
    common = dict(intent_id=intent.intent_id, agent_id=intent.agent_id)
    return {
        "signed_transaction": (
            "warden.txs.signed",
            "signer",
            SignedTransaction(
                **common,
                chain="base",
                chain_id=8453,
                signed_tx="0x02f8" + "ab" * 40,
                tx_hash="0x" + "ab" * 32,
                from_=TOKEN,
                to=CHECKSUMMED,
                nonce=2**60 + 1,
                value_wei=10**30,
                tx_type=2,
                status="mined",
                tee="none",
                signed_at=T0,
                max_spend_wei=10**30 + 21000,
                block_number=123,
                gas_used=21000,
                fee_wei=21000,
                replaces=("0x" + "cd" * 32,),
                intent_digest=digest,
            ),
        ),
        "signed_message": (
            "warden.messages.signed",
            "signer",
            SignedMessage(
                **common,
                kind="typed_data",
                chain="base",
                chain_id=8453,
                from_=TOKEN,
                message_hash="0x" + "12" * 32,
                signature="0x" + "34" * 65,
                primary_type="Mail",
                verifying_contract=CHECKSUMMED,
                domain_separator="0x" + "56" * 32,
                tee="none",
                signed_at=T0,
                intent_digest=digest,
            ),
        ),
        "signed_solana_transaction": (
            "warden.solana.signed",
            "signer",
            SignedSolanaTransaction(
                **common,
                chain="solana-local",
                from_=SOLANA_PAYER,
                signature="5" * 87,
                tx_signature="5" * 87,
                signed_tx="AQ" + "A" * 86,
                recent_blockhash="4" * 43,
                spend={"SOL": str(2**63 + 5000)},
                status="finalized",
                final=True,
                slot=2**60,
                tee="none",
                signed_at=T0,
                intent_digest=digest,
            ),
        ),
        "signed_solana_message": (
            "warden.solana.messages.signed",
            "signer",
            SignedSolanaMessage(
                **common,
                chain="solana-local",
                from_=SOLANA_PAYER,
                signature="5" * 87,
                message="/3NvbGFuYSBvZmZjaGFpbg==",
                message_sha256="78" * 32,
                version=0,
                application_domain=SOLANA_PAYER,
                signatories=(SOLANA_PAYER,),
                tee="none",
                signed_at=T0,
                intent_digest=digest,
            ),
        ),
    }


def _held_by_the_worker(intent: TransactionIntent, policy: AgentPolicy) -> dict[str, tuple[str, str, Outcome]]:
    """What the worker publishes for the signer or the admins: the intent approved, or parked."""
    digest = intent.digest()
    common = dict(intent_id=intent.intent_id, agent_id=intent.agent_id)
    return {
        "approved": (
            "warden.intents.approved",
            "worker",
            IntentApproved(intent=intent, policy=policy, approved_at=T0, intent_digest=digest),
        ),
        "parked": (
            "warden.intents.awaiting_approval",
            "worker",
            IntentParked(
                **common,
                reason="above the approval threshold",
                intent=intent,
                parked_at=T0,
                expires_at=T0 + timedelta(hours=1),
                intent_digest=digest,
            ),
        ),
    }


def _refused_at_intake(intent: TransactionIntent, raw: bytes) -> dict[str, tuple[str, str, Outcome]]:
    """Records about bytes that were not a valid intent: the dead letter of unreadable bytes, an
    intent that does not validate, and one whose agent signature fails."""
    return {
        "dead_letter": (
            "warden.dlq",
            "signer",
            DeadLetter(
                source_topic="warden.intents.approved",
                partition=2,
                offset=41,
                key="agent-7",
                reason="unreadable",
                payload_b64=base64.b64encode(raw).decode(),
                payload_sha256=hashlib.sha256(raw).hexdigest(),
                payload_bytes=len(raw),
                received_at=T0,
            ),
        ),
        "invalid_intent": (
            "warden.intents.rejected",
            "worker",
            IntentRejected(
                intent_id="bad-1",
                agent_id="agent-7",
                stage="intake",
                code=Code.INVALID_INTENT,
                reason="value: must be a decimal string",
                decided_at=T0,
                intent_digest=hashlib.sha256(raw).hexdigest(),
            ),
        ),
        # A record whose agent signature fails: bound to the bytes it came in, as INVALID_INTENT is.
        "bad_signature": (
            "warden.intents.rejected",
            "worker",
            IntentRejected(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                stage="intake",
                code=Code.AGENT_SIGNATURE_INVALID,
                reason="the intent's Ed25519 signature does not verify",
                decided_at=T0,
                intent_digest=hashlib.sha256(intent.to_bytes()).hexdigest(),
            ),
        ),
    }


INTENT, RAW, OUTCOMES = _outcome_world()


def _case(name: str, record_bytes: bytes | None = None, **overrides: Any) -> dict[str, Any]:
    topic, record = OUTCOMES[name]
    case = {"record": (record_bytes or record.to_bytes()).decode(), "topic": topic, "keys": KEYS}
    if name == "invalid_intent":
        case["sent_b64"] = base64.b64encode(RAW).decode()
    elif name == "bad_signature":
        case["sent_b64"] = base64.b64encode(INTENT.to_bytes()).decode()
    elif name != "dead_letter":
        case["intent_digest"] = INTENT.digest()
    case.update(overrides)
    return {k: v for k, v in case.items() if v is not None}


MODELS: dict[str, Any] = {
    "warden.intents.rejected": IntentRejected,
    "warden.txs.signed": SignedTransaction,
    "warden.messages.signed": SignedMessage,
    "warden.solana.signed": SignedSolanaTransaction,
    "warden.solana.messages.signed": SignedSolanaMessage,
    "warden.intents.approved": IntentApproved,
    "warden.intents.awaiting_approval": IntentParked,
    "warden.dlq": DeadLetter,
}


def _python_verdict(case: dict[str, Any]) -> Problem | str | None:
    """What the Python reference says of the same case: `schemas.auth.outcome_forgery` with the
    digest the record must carry, as `sdk.client.outcome_problem` picks it."""
    from sdk.client import Awaited, outcome_problem

    try:
        record = MODELS[case["topic"]].model_validate_json(case["record"])
    except ValueError as exc:
        return f"unreadable: {exc}"
    if "sent_b64" in case:
        sent = base64.b64decode(case["sent_b64"])
        return outcome_problem(
            record, Awaited(record.intent_id, INTENT.agent_id, None, hashlib.sha256(sent).hexdigest()), Pinned()
        )
    if "intent_digest" in case:
        # A client that submitted INTENT with the SDK: its bytes were INTENT.to_bytes().
        awaited = Awaited(
            record.intent_id, INTENT.agent_id, case["intent_digest"], hashlib.sha256(INTENT.to_bytes()).hexdigest()
        )
        return outcome_problem(record, awaited, Pinned())
    return outcome_forgery(record, Pinned())


def test_outcomes_signed_in_python_verify_in_node() -> None:
    cases = [_case(name) for name in OUTCOMES]
    cases += [{k: v for k, v in case.items() if k != "topic"} for case in cases]  # the kind told by its members
    for case in cases[: len(OUTCOMES)]:
        assert _python_verdict(case) is None
    answers = run_node("verify_outcome.mjs", cases)
    for case, answer in zip(cases, answers, strict=False):
        assert answer.get("ok") is True, (case["record"][:200], answer)
    roles = [a["role"] for a in answers[: len(OUTCOMES)]]
    # A dead letter may be either's: this one is the signer's.
    assert roles == [
        "worker",
        "signer",
        "signer",
        "signer",
        "signer",
        "signer",
        "worker",
        "worker",
        "signer",
        "worker",
        "worker",
    ]


def _edited(name: str, edit: Callable[[dict[str, Any]], object]) -> bytes:
    body = json.loads(OUTCOMES[name][1].to_bytes())
    edit(body)
    return json.dumps(body, ensure_ascii=False).encode()


def _resigned(name: str, key: Ed25519PrivateKey, key_id: str, **update: Any) -> bytes:
    return sign_outcome(OUTCOMES[name][1].model_copy(update=update), key, key_id).to_bytes()


TAMPERED = {
    "reason edited": lambda: _case(
        "rejected_by_a_worker", _edited("rejected_by_a_worker", lambda b: b.update(reason="within the limit"))
    ),
    "a nested integer past 2**53 edited by one": lambda: _case(
        "rejected_by_a_worker",
        _edited("rejected_by_a_worker", lambda b: b["verdicts"][0]["facts"]["nested"].update(a=[2**60 + 4])),
    ),
    "the nested intent's value edited": lambda: _case(
        "approved", _edited("approved", lambda b: b["intent"].update(value="0.5"))
    ),
    "status edited": lambda: _case(
        "signed_transaction", _edited("signed_transaction", lambda b: b.update(status="failed"))
    ),
    "signature removed": lambda: _case(
        "signed_message", _edited("signed_message", lambda b: b.pop("service_signature"))
    ),
    "signed_by an unpinned key id": lambda: _case(
        "signed_transaction", _resigned("signed_transaction", SIGNER, "signer-2")
    ),
    "signed by a stranger under a pinned key id": lambda: _case(
        "signed_transaction", _resigned("signed_transaction", STRANGER, "signer-1")
    ),
    "a signed transaction signed by a worker": lambda: _case(
        "signed_transaction", _resigned("signed_transaction", WORKER, "worker-1")
    ),
    "a signing-stage refusal signed by a worker": lambda: _case(
        "rejected_by_the_signer", _resigned("rejected_by_the_signer", WORKER, "worker-1")
    ),
    "a guardrail refusal signed by the signer": lambda: _case(
        "rejected_by_a_worker", _resigned("rejected_by_a_worker", SIGNER, "signer-1")
    ),
    "about another intent": lambda: _case("signed_transaction", intent_digest="00" * 32),
    # A rejection of unreadable bytes that names the intent's digest answers no intent.
    "INVALID_INTENT checked against the intent's digest": lambda: _case(
        "invalid_intent",
        _resigned("invalid_intent", WORKER, "worker-1", intent_id=INTENT.intent_id, intent_digest=INTENT.digest()),
        sent_b64=None,
        intent_digest=INTENT.digest(),
    ),
    # Nor does a refusal of a bad signature: a copy of the intent's fields has the intent's digest.
    "AGENT_SIGNATURE_INVALID checked against the intent's digest": lambda: _case(
        "bad_signature",
        _resigned("bad_signature", WORKER, "worker-1", intent_digest=INTENT.digest()),
        sent_b64=None,
        intent_digest=INTENT.digest(),
    ),
    "INVALID_INTENT of other bytes": lambda: _case(
        "invalid_intent", sent_b64=base64.b64encode(RAW.replace(b": ", b":")).decode()
    ),
}


@pytest.mark.parametrize("what", list(TAMPERED))
def test_node_refuses_what_python_refuses(what: str) -> None:
    case = TAMPERED[what]()
    (answer,) = run_node("verify_outcome.mjs", [case])
    assert answer["ok"] is False, answer
    assert _python_verdict(case) is not None


# A genuine record checked against a rule of the page: the rule is what makes it verify.
BROKEN_OUTCOME_RULES = {
    "unsorted": "approved",
    "double_numbers": "signed_transaction",  # nonce 2**60 + 1 read as a double
    "ascii_escape": "rejected_by_a_worker",  # "über" written \u00fcber
}


@pytest.mark.parametrize("rule", list(BROKEN_OUTCOME_RULES))
def test_an_outcome_checked_against_a_rule_of_the_page_fails(rule: str) -> None:
    case = _case(BROKEN_OUTCOME_RULES[rule])
    ok, broken = run_node("verify_outcome.mjs", [case, {**case, "break": rule}])
    assert ok["ok"] is True and broken["ok"] is False, (ok, broken)
