"""The streams worker's window for EVM sign-only spend (streams/decide.py `on_signed`): an approved
sign-only intent is held whatever its age until a signer's record says its nonce was taken at a
final block; then what the chain took counts from then, or nothing (another transaction took it).
A record not signed by a pinned signer changes nothing. Rebuilt from decisions alone."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.clock import to_us
from schemas.actions import AuditAction
from schemas.auth import sign_outcome
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import SignedTransaction
from schemas.stages import Stage
from streams.decision import Decisions
from streams.windows import Windows
from tests.engine_support import AGENT, DAY, DEST, ETH, SIGNER_ID, T0, World, assert_approved, audits, rejected_of

FEE = 21_000 * 10**9


def signer_record(world: World, intent: TransactionIntent, status: str, key: Ed25519PrivateKey | None = None) -> bytes:
    """What the signer publishes once a sign-only transaction's nonce is taken at a final block."""
    record = SignedTransaction(
        intent_id=intent.intent_id,
        agent_id=AGENT,
        chain="anvil",
        chain_id=31337,
        signed_tx="0x02",
        tx_hash="0x" + "ab" * 32,
        **{"from": DEST},
        to=DEST,
        nonce=0,
        value_wei=intent.value_wei,
        tx_type=2,
        status=status,
        final=True,
        tee="none",
        signed_at=T0,
        max_spend_wei=intent.value_wei + FEE,
        fee_wei=FEE,
        intent_digest=intent.digest(),
    )
    return sign_outcome(record, key or world.signer_key, SIGNER_ID).to_bytes()


def refused_code(world: World, value: str, now: datetime) -> Code:
    rejected = rejected_of(world.submit(world.intent(value, now=now), now=now))
    assert rejected.stage == Stage.DAILY_LIMIT
    return rejected.code


def test_a_sign_only_approval_is_held_until_it_lands_then_counts_from_its_landing(world: World) -> None:
    first = world.intent("1")
    assert_approved(world.submit(first), first)
    day1 = T0 + DAY + timedelta(hours=1)
    assert refused_code(world, "0.6", day1) == Code.DAILY_LIMIT_EXCEEDED
    # A record a pinned signer did not sign changes nothing.
    forged = signer_record(world, first, "mined", key=Ed25519PrivateKey.generate())
    assert [e.action for e in audits(world.engine.on_signed(forged, day1))] == [AuditAction.OUTCOME_FORGED]
    assert refused_code(world, "0.6", day1) == Code.DAILY_LIMIT_EXCEEDED
    assert world.engine.on_signed(signer_record(world, first, "mined"), day1) == []
    assert world.spent(day1) == ETH + FEE
    assert refused_code(world, "0.6", day1 + DAY - timedelta(microseconds=1)) == Code.DAILY_LIMIT_EXCEEDED
    fresh = world.intent("0.6", now=day1 + DAY)
    assert_approved(world.submit(fresh, now=day1 + DAY), fresh)
    # A restarted worker rebuilds the landed spend at its landing, and the new one held.
    stored = orjson.loads(orjson.dumps(world.engine.decisions.stored))
    rebuilt = Windows()
    rebuilt.rebuild(Decisions(stored))
    assert rebuilt.of(AGENT).reservations == world.engine.windows.of(AGENT).reservations
    assert set(rebuilt.of(AGENT).held) == {fresh.intent_id}


def test_a_nonce_another_transaction_took_releases_and_a_cancellation_counts_its_fee(world: World) -> None:
    taken, cancelled = world.intent("0.7"), world.intent("0.7")
    for intent in (taken, cancelled):
        assert_approved(world.submit(intent), intent)
    later = T0 + 3 * DAY
    world.engine.on_signed(signer_record(world, taken, "dropped"), later)
    world.engine.on_signed(signer_record(world, cancelled, "cancelled"), later)
    assert world.spent(later) == FEE  # the cancellation's fee, counted from its landing
    assert world.engine.windows.spent(AGENT, "sign_only_outstanding", to_us(later)) == 0


def test_the_outstanding_bound_is_judged_by_the_worker(world: World) -> None:
    world.publish(world.policy(version=2, max_sign_only_outstanding=ETH))
    first = world.intent("0.6")
    assert_approved(world.submit(first), first)
    assert refused_code(world, "0.6", T0 + 30 * DAY) == Code.SIGN_ONLY_OUTSTANDING_EXCEEDED
    broadcast = world.intent("0.6", broadcast=True, now=T0 + 30 * DAY)
    assert_approved(world.submit(broadcast, now=T0 + 30 * DAY), broadcast)


def test_an_idempotent_copys_record_moves_nothing(world: World) -> None:
    original = world.intent("0.4", idempotency_key="order-1")
    assert_approved(world.submit(original), original)
    copy = world.intent("0.4", idempotency_key="order-1", intent_id="i-retry")
    assert_approved(world.submit(copy), copy)
    world.engine.on_signed(signer_record(world, copy, "mined"), T0 + DAY)
    assert world.spent(T0 + DAY + timedelta(hours=1)) == 4 * ETH // 10  # the original's, still held
