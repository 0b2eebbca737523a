"""The engine's outcomes are authenticated: every decision is signed by the worker and bound to its
intent, stale and future intents are refused at intake, and a forged signing rejection releases
nothing. Simulation is off, no node and no broker, as in test_engine.py."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.actions import AuditAction
from schemas.auth import outcome_forgery
from schemas.codes import Code
from schemas.outcomes import IntentRejected
from tests.engine_support import AGENT, ETH, T0, WORKER_ID, World, actions, approved_of, assert_approved, rejected_of


def test_every_decision_is_signed_by_the_worker_and_bound_to_the_intent(world: World) -> None:

    good = world.intent("0.5")
    bad = world.intent("2")
    approved = approved_of(world.submit(good))
    rejected = rejected_of(world.submit(bad))
    pinned = world.pinned()
    assert approved.intent_digest == good.digest() and approved.signed_by == WORKER_ID
    assert outcome_forgery(approved, pinned, good.digest()) is None
    assert outcome_forgery(rejected, pinned, bad.digest()) is None
    # About another intent, tampered with, or claimed by a worker where only a signer may speak:
    assert "intent_digest differs" in str(outcome_forgery(rejected, pinned, good.digest()))
    tampered = rejected.model_copy(update={"code": Code.VALUE_WITHIN_CAP})
    assert "does not verify" in str(outcome_forgery(tampered, pinned, bad.digest()))
    as_signer = rejected.model_copy(update={"stage": "signing"})
    assert "not a pinned signer key" in str(outcome_forgery(as_signer, pinned, bad.digest()))


def test_stale_and_future_intents_are_refused_at_intake_and_not_remembered_as_spend(world: World) -> None:
    stale = world.intent("0.5", now=T0 - timedelta(minutes=10))
    future = world.intent("0.5", now=T0 + timedelta(minutes=3), intent_id="i-future")
    assert rejected_of(world.submit(stale)).code == Code.INTENT_EXPIRED
    assert rejected_of(world.submit(future)).code == Code.INTENT_FROM_THE_FUTURE
    assert world.spent() == 0
    just_in_time = world.intent("0.5", now=T0 - timedelta(minutes=10) + timedelta(microseconds=1))
    assert_approved(world.submit(just_in_time), just_in_time)


def test_a_different_intent_under_a_decided_id_gets_its_own_refusal(world: World) -> None:
    first = world.intent("0.5", intent_id="i-same")
    approved = approved_of(world.submit(first))
    variant = world.intent("0.9", intent_id="i-same")
    rejected = rejected_of(world.submit(variant))
    assert (rejected.code, rejected.intent_digest) == (Code.INTENT_ID_REUSED, variant.digest())
    # The first keeps its decision and its replay; the variant reserved nothing.
    assert approved_of(world.submit(first)) == approved
    assert world.spent() == 5 * ETH // 10


def test_a_forged_signing_rejection_does_not_release_the_reservation(world: World) -> None:
    """Anyone can write to warden.intents.rejected. Unsigned, signed by another key, signed by
    the worker, or a real signer refusal of a different intent with the same id: none releases."""
    first = world.intent("1")
    world.submit(first)
    other_intent = world.intent("1", intent_id=first.intent_id, now=T0 + timedelta(seconds=1))
    forgeries = [
        world.refusal(first, key=Ed25519PrivateKey.generate()),
        world.refusal(first, key=world.worker_key),
        world.refusal(other_intent),
        IntentRejected(
            intent_id=first.intent_id,
            agent_id=AGENT,
            stage="signing",
            code=Code.SIGNER_ERROR,
            reason="x",
            decided_at=T0,
            intent_digest=first.digest(),
        ).to_bytes(),
    ]
    for raw in forgeries:
        emits = world.engine.on_rejected(raw, T0)
        assert actions(emits) == [AuditAction.OUTCOME_FORGED]
    assert world.spent() == ETH
    assert rejected_of(world.submit(world.intent("0.6"))).code == Code.DAILY_LIMIT_EXCEEDED
    world.engine.on_rejected(world.refusal(first), T0)  # the signer's own refusal does
    assert world.spent() == 0
