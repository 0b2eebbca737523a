"""The signer has the last word on an intent a worker gave up (`Signer.abandoned`).

The worker's redelivery task gives up on an intent with no outcome (`IntentAbandoned`, signed by
the worker). The signer judges every approval on its own, so a refusal by the worker alone would
not hold: a topic writer who copied the given-up intent into an approval would have it signed, and
a client that had submitted a new intent would pay twice. So the signer answers the abandonment,
and whichever of the abandonment and an approval it reads first decides; the other gets the same
answer. The stack test is tests/stack/test_signer_last_word.py.

A `LoneSigner` is handed records as anyone who can write to the topics could; no node is asked
(the approval-first case that signs is on the stack)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas import topics
from schemas.auth import sign_outcome
from schemas.codes import Code
from schemas.emit import Emit, Source
from schemas.intent import TransactionIntent
from schemas.outcomes import DeadLetter, IntentAbandoned, IntentApproved, IntentRejected
from schemas.stages import Stage
from sdk.client import Awaited, new_intent, outcome_problem
from streams.redelivery import overdue_record
from tests.signer_support import DEST, LoneSigner

STRANGER = "0x000000000000000000000000000000000000dEaD"
T = TypeVar("T")


def _abandoned(
    lone: LoneSigner, intent: TransactionIntent, key: Ed25519PrivateKey | None = None, key_id: str = "worker-test"
) -> bytes:
    """What the worker that owns ``intent``'s partition writes when it gives ``intent`` up
    (`Decider.abandon`)."""
    record = IntentAbandoned(
        intent=intent, attempts=3, abandoned_at=datetime.now(timezone.utc), intent_digest=intent.digest()
    )
    return sign_outcome(record, key or lone.worker_key, key_id).to_bytes()


def _give_up(lone: LoneSigner, raw: bytes) -> list[Emit]:
    emits, to_send = _run(
        lone.signer.abandoned(raw, Source(topics.INTENTS_ABANDONED, 0, 1, lone.agent.encode()), _now())
    )
    assert to_send is None
    lone.state.commit()
    return emits


def _approve(lone: LoneSigner, intent: TransactionIntent) -> list[Emit]:
    """A topic writer's approval of ``intent``, as the signer reads it."""
    approved = IntentApproved(intent=intent, policy=lone.policy, verdicts=(), approved_at=_now())
    emits, to_send = _run(
        lone.signer.handle(approved.to_bytes(), Source(topics.INTENTS_APPROVED, 0, 2, lone.agent.encode()), _now())
    )
    assert to_send is None
    return emits


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _outcomes(emits: list[Emit]) -> list[Emit]:
    return [e for e in emits if e.topic in (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.MESSAGES_SIGNED)]


def test_a_given_up_intent_is_refused_by_the_signer_and_a_later_approval_gets_that_refusal(tmp_path: Path) -> None:
    lone = LoneSigner(tmp_path, "http://127.0.0.1:9")  # no node is asked: nothing here is signed
    intent = lone.intent(to=DEST, value="0.001")
    (refusal,) = _outcomes(_give_up(lone, _abandoned(lone, intent)))
    rejected = IntentRejected.from_bytes(refusal.value)
    assert (rejected.stage, rejected.code, rejected.intent_digest) == (Stage.SIGNING, Code.NO_OUTCOME, intent.digest())
    assert "will not sign" in rejected.reason and "submit a new intent" in rejected.reason
    # The client believes it: a signer's refusal at stage "signing", bound to the intent's digest.
    assert outcome_problem(rejected, Awaited.of(intent), lone) is None
    # The approval a topic writer makes of the given-up intent gets that refusal again, byte for byte.
    assert _outcomes(_approve(lone, intent)) == [refusal]
    # And so does the abandonment read again (a late copy of the intent at the worker sends it again).
    assert _outcomes(_give_up(lone, _abandoned(lone, intent))) == [refusal]


def test_an_intent_the_signer_decided_first_keeps_its_outcome_and_the_abandonment_repeats_it(tmp_path: Path) -> None:
    lone = LoneSigner(tmp_path, "http://127.0.0.1:9")
    intent = lone.intent(to=STRANGER, value="0.001")  # refused before any node is asked
    (first,) = _outcomes(_approve(lone, intent))
    assert IntentRejected.from_bytes(first.value).code == Code.RECIPIENT_NOT_ALLOWLISTED
    lone.state.commit()
    assert _give_up(lone, _abandoned(lone, intent)) == [first]


def test_another_intent_under_a_given_up_id_gets_its_own_refusal_not_recorded(tmp_path: Path) -> None:
    lone = LoneSigner(tmp_path, "http://127.0.0.1:9")
    intent = lone.intent(to=DEST, value="0.001", intent_id="i-given-up")
    (refusal,) = _outcomes(_give_up(lone, _abandoned(lone, intent)))
    other = lone.intent(to=DEST, value="0.002", intent_id="i-given-up")
    (reused,) = _outcomes(_give_up(lone, _abandoned(lone, other)))
    assert IntentRejected.from_bytes(reused.value).code == Code.INTENT_ID_REUSED
    recorded = lone.state.agent(lone.agent).outcome("i-given-up")
    assert recorded is not None and recorded[1] == refusal.value


def _forgeries(lone: LoneSigner, intent: TransactionIntent) -> dict[str, tuple[str, bytes]]:
    """What a topic writer can put on warden.intents.abandoned, with what its dead letter says."""
    record = IntentAbandoned.from_bytes(_abandoned(lone, intent))
    unsigned = record.model_copy(update={"service_signature": "00" * 64})
    return {
        "a copy of the intent": ("invalid IntentAbandoned", intent.to_bytes()),
        # The watch's request, which only the worker owning the partition acts on: it knows what
        # it rejected, and the signer does not.
        "a worker's redelivery watch finding it overdue": (
            "invalid IntentAbandoned",
            overdue_record(intent.to_bytes(), 65_536, 3, datetime.now(timezone.utc), ("worker-test", lone.worker_key)),
        ),
        "unsigned, under the worker's key id": ("the service signature does not verify", unsigned.to_bytes()),
        "signed by another key under the worker's id": (
            "the service signature does not verify",
            sign_outcome(unsigned, Ed25519PrivateKey.generate(), "worker-test").to_bytes(),
        ),
        "signed by the signer": (
            "'signer-test' is not a pinned worker key",
            sign_outcome(unsigned, lone.service_key, "signer-test").to_bytes(),
        ),
    }


def test_only_a_workers_abandonment_of_an_intent_its_agent_signed_decides(tmp_path: Path) -> None:
    lone = LoneSigner(tmp_path, "http://127.0.0.1:9")
    lone.signer.judging.policies.offer(lone.policy)
    intent = lone.intent(to=DEST, value="0.001")
    forged_intent = lone.intent(make=_foreign, to=DEST, value="0.001")
    cases = _forgeries(lone, intent) | {
        "a worker's abandonment of a copy the agent did not sign": (
            "signature does not verify against the agent's public key",
            _abandoned(lone, forged_intent),
        )
    }
    for name, (reason, raw) in cases.items():
        emits = _give_up(lone, raw)
        assert [e.topic for e in emits] == [topics.DLQ, topics.AUDIT_EVENTS], (name, emits)
        letter = DeadLetter.from_bytes(emits[0].value)
        assert reason in letter.reason and "not decided" in letter.reason, (name, letter.reason)
        assert lone.state.agent(lone.agent).outcome(intent.intent_id) is None, name


def _foreign(key: Ed25519PrivateKey, **fields: Any) -> TransactionIntent:
    """The agent's intent, signed by another key (a copy a topic writer made of its fields)."""
    return new_intent(Ed25519PrivateKey.generate(), **fields)
