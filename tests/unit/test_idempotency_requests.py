"""An idempotency key names one request: what the request is, and the signer's
own refusal of another request under a used key, handed approvals straight as a topic writer
would (no worker in front of it). The worker's side is in test_engine_redelivery.py; the
pipeline on the real stack in tests/stack/test_idempotency_and_dead_letters.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.codes import Code
from schemas.intent import PER_SUBMISSION_FIELDS, TransactionIntent, idempotency_conflict
from schemas.outcomes import IntentRejected, SignedMessage, SignedTransaction
from schemas.stages import Stage
from sdk.client import new_intent, new_message_intent
from tests.engine_support import DEST, OTHER, T0, World
from tests.signer_support import LoneSigner


def test_a_request_is_every_field_but_those_each_submission_makes_anew() -> None:
    world = World()
    first = world.intent("0.001", idempotency_key="K")
    rebuilt = world.intent(
        "0.001", idempotency_key="K", now=T0 + timedelta(minutes=1), expires_at=T0 + timedelta(minutes=5)
    )
    assert rebuilt.intent_id != first.intent_id and rebuilt.digest() != first.digest()
    assert rebuilt.request_fields() == first.request_fields()
    assert idempotency_conflict(first.intent_id, first.request_fields(), rebuilt) is None
    assert not PER_SUBMISSION_FIELDS & set(first.request_fields())
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(value="0.5", to=OTHER), "to, value differ"),
        (dict(value="0.001", to=DEST, simulate_first=True), "simulate_first differs"),
        (dict(value="0.001", to=DEST, gas_limit=50_000), "gas_limit differs"),
        (dict(value="0.001", to=DEST, nonce=3), "nonce differs"),
        (dict(value="0.001", to=DEST, data="0xabcd"), "data differs"),
    ]
    for fields, named in cases:
        other = world.intent(fields.pop("value"), idempotency_key="K", **fields)
        reason = str(idempotency_conflict(first.intent_id, first.request_fields(), other))
        assert f"by intent {first.intent_id}, for a different request: {named};" in reason, reason
    # A message under the key is another request too: every field of either side is compared.
    message = new_message_intent(world.agent_key, agent_id="agent-1", chain="anvil", message="hi", idempotency_key="K")
    assert "intent_type" in str(idempotency_conflict(first.intent_id, first.request_fields(), message))


@pytest.fixture
def lone(tmp_path: Path) -> LoneSigner:
    # Messages are judged and signed without a node: no process is started.
    return LoneSigner(tmp_path, "http://127.0.0.1:9", message_signing_enabled=True)


def test_the_signer_alone_refuses_another_request_under_a_used_key(lone: LoneSigner) -> None:
    """Approvals written straight to warden.intents.approved skip the worker's check: the signer
    answered a different request under a used key with the first's signature, bound to the new
    intent's id and digest. It now refuses it, and remembers the refusal; the same request under
    the key still gets the first's signature, and a transaction under it is refused too."""

    def handle(intent: TransactionIntent) -> IntentRejected | SignedTransaction | SignedMessage:
        outcome: IntentRejected | SignedTransaction | SignedMessage = asyncio.run(lone.handle(intent))[0]
        return outcome

    first = lone.intent(new_message_intent, message="pay alice 0.001", idempotency_key="K")
    signed = handle(first)
    assert isinstance(signed, SignedMessage)
    other = lone.intent(new_message_intent, message="pay bob 0.5", idempotency_key="K")
    refused = handle(other)
    assert isinstance(refused, IntentRejected), refused
    assert (refused.stage, refused.code, refused.intent_digest) == (
        Stage.SIGNING,
        Code.IDEMPOTENCY_KEY_REUSED,
        other.digest(),
    )
    assert f"by intent {first.intent_id}, for a different request: message differs;" in refused.reason
    assert handle(other) == refused  # redelivered: the same refusal
    transfer = lone.intent(new_intent, to=DEST, value="0.5", idempotency_key="K")
    refused_transfer = handle(transfer)  # refused before any node is asked
    assert isinstance(refused_transfer, IntentRejected) and refused_transfer.code == Code.IDEMPOTENCY_KEY_REUSED
    retry = lone.intent(new_message_intent, message="pay alice 0.001", idempotency_key="K")
    copy = handle(retry)
    assert isinstance(copy, SignedMessage) and copy.signature == signed.signature
    assert (copy.intent_id, copy.intent_digest) == (retry.intent_id, retry.digest())


def test_a_slot_the_signer_kept_without_its_request_answers_no_other_intent(lone: LoneSigner) -> None:
    """A slot claimed before the signer kept requests cannot tell a retry from another request:
    fail closed."""
    first = lone.intent(new_message_intent, message="hello", idempotency_key="K")
    assert isinstance(asyncio.run(lone.handle(first))[0], SignedMessage)
    lone.state.db.execute("DELETE FROM idempotency_requests")
    retry = lone.intent(new_message_intent, message="hello", idempotency_key="K")
    refused = asyncio.run(lone.handle(retry))[0]
    assert refused.code == Code.IDEMPOTENCY_KEY_REUSED and "whose request was not kept" in refused.reason
