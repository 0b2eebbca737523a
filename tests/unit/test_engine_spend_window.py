"""The engine's rolling spend windows: a daily limit two intents exceed together, releases only on a
signing rejection, a window that slides to the microsecond, rebuilt from decisions after a
restart, and kept per asset. Simulation is off, no node and no broker, as in test_engine.py."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.clock import to_us
from schemas import topics
from schemas.codes import Code
from schemas.emit import Emit
from schemas.intent import TransactionIntent
from schemas.stages import Stage
from streams.decision import Decisions
from streams.windows import Windows
from tests.engine_support import AGENT, DAY, DEST, ETH, T0, World, assert_approved, on, rejected_of


def test_two_intents_that_together_exceed_the_limit_and_a_release_after_signing_fails(world: World) -> None:
    first = world.intent("0.9")
    assert_approved(world.submit(first), first)
    later = T0 + timedelta(minutes=1)
    second = world.intent("0.600000000000000001", now=later)
    rejected = rejected_of(world.submit(second, now=later))
    assert (rejected.stage, rejected.code) == (Stage.DAILY_LIMIT, Code.DAILY_LIMIT_EXCEEDED)
    assert "0.9 already spent" in rejected.reason and "1.5" in rejected.reason
    assert world.spent(later) == 9 * ETH // 10

    assert world.engine.on_rejected(world.refusal(first, later), later) == []
    assert world.spent(later) == 0
    assert world.engine.decisions[first.intent_id].outcome == "released"

    third = world.intent("1", now=later)
    assert_approved(world.submit(third, now=later), third)
    assert world.spent(later) == ETH


def test_only_a_signing_rejection_of_an_approved_intent_releases(world: World) -> None:
    first = world.intent("0.9")
    world.submit(first)
    for stage in (Stage.VALUE_CAP, Stage.DAILY_LIMIT, Stage.INTAKE):
        world.engine.on_rejected(world.refusal(first, stage=stage), T0)
    world.engine.on_rejected(world.refusal(world.intent("0.9", intent_id="i-unknown")), T0)
    assert world.spent() == 9 * ETH // 10
    assert world.engine.decisions[first.intent_id].outcome == "approved"


def test_the_window_slides_to_the_microsecond(world: World) -> None:
    first = world.intent("1", broadcast=True)  # sign-only spend is held instead (test_sign_only_worker_window)
    assert_approved(world.submit(first), first)
    just_before = T0 + DAY - timedelta(microseconds=1)
    rejected = rejected_of(world.submit(world.intent("0.6", now=just_before), now=just_before))
    assert rejected.code == Code.DAILY_LIMIT_EXCEEDED
    at_24h = T0 + DAY
    fresh = world.intent("0.6", now=at_24h)
    assert_approved(world.submit(fresh, now=at_24h), fresh)
    assert world.spent(at_24h) == 6 * ETH // 10


def test_windows_rebuild_from_decisions_reproduces_the_spend(world: World) -> None:
    a = world.intent("0.2", idempotency_key="order-a")
    b = world.intent("0.3")
    c = world.intent("0.4")
    for intent in (a, b, c):
        world.submit(intent)
    world.submit(world.intent("1.2"))  # rejected: over the daily limit with 0.9 spent
    world.submit(world.intent("0.2", idempotency_key="order-a", intent_id="i-replay"))  # approved, counts nothing
    world.engine.on_rejected(world.refusal(b), T0)
    later = T0 + timedelta(hours=1)
    assert world.spent(later) == 6 * ETH // 10

    # As the worker's table hands them back after a restore: JSON, not the same objects.
    stored = orjson.loads(orjson.dumps(world.engine.decisions.stored))
    rebuilt = Windows()
    rebuilt.rebuild(Decisions(stored))
    assert rebuilt.of(AGENT).spent(to_us(later)) == 6 * ETH // 10
    assert rebuilt.of(AGENT).reservations == world.engine.windows.of(AGENT).reservations
    assert set(rebuilt.of(AGENT).reservations) == {a.intent_id, c.intent_id}


def test_a_restarted_engine_enforces_the_limit_from_rebuilt_state(world: World) -> None:
    first = world.intent("1")
    assert_approved(world.submit(first), first)
    restarted = world.new_engine(dict(world.engine.policies), dict(world.engine.decisions.stored))
    restarted.windows.rebuild(restarted.decisions)
    world.engine = restarted
    rejected = rejected_of(world.submit(world.intent("0.6")))
    assert rejected.code == Code.DAILY_LIMIT_EXCEEDED


def test_a_forged_record_cannot_decide_the_real_intent_with_the_same_id(world: World) -> None:
    world.publish(world.policy())
    forger = Ed25519PrivateKey.generate()
    forged = world.intent(key=forger, intent_id="i-predictable")
    assert rejected_of(world.submit(forged)).code == Code.AGENT_SIGNATURE_INVALID
    real = world.intent(intent_id="i-predictable")
    assert_approved(world.submit(real), real)


TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _token_transfer(world: World, units: int, now: datetime = T0) -> TransactionIntent:
    data = "0xa9059cbb" + DEST[2:].lower().rjust(64, "0") + f"{units:064x}"
    return world.intent(value="0", to=TOKEN, data=data, now=now, gas_limit=60_000)


def test_token_spend_is_reserved_per_asset_released_by_the_signer_and_rebuilt() -> None:
    w = World()
    asset = {"chain": "anvil", "token": TOKEN, "decimals": 6, "daily_limit": "100"}
    w.publish(w.policy(tx_to_allowlist=(DEST, TOKEN), asset_limits=(asset,)))
    first = _token_transfer(w, 60 * 10**6)
    assert_approved(w.submit(first), first)
    assert w.engine.windows.of(AGENT, f"anvil:{TOKEN}").spent(to_us(T0)) == 60 * 10**6
    # 60 + 60 > 100: the second waits for nothing, the reservation already counts.
    second = _token_transfer(w, 60 * 10**6, now=T0 + timedelta(seconds=1))
    rejected = rejected_of(w.submit(second, now=T0 + timedelta(seconds=1)))
    assert (rejected.stage, rejected.code) == (Stage.ASSETS, Code.ASSET_DAILY_LIMIT_EXCEEDED)
    # The signer refused the first: its tokens are released, and the same transfer now fits.
    w.engine.on_rejected(w.refusal(first), T0 + timedelta(seconds=2))
    assert w.engine.windows.of(AGENT, f"anvil:{TOKEN}").spent(to_us(T0)) == 0
    third = _token_transfer(w, 60 * 10**6, now=T0 + timedelta(seconds=3))
    assert_approved(w.submit(third, now=T0 + timedelta(seconds=3)), third)
    # A restarted worker rebuilds the same windows from its decisions alone.
    rebuilt = Windows()
    rebuilt.rebuild(w.engine.decisions)
    assert rebuilt.of(AGENT, f"anvil:{TOKEN}").reservations == w.engine.windows.of(AGENT, f"anvil:{TOKEN}").reservations
    assert list(rebuilt.of(AGENT, f"anvil:{TOKEN}").reservations) == [third.intent_id]


def test_split_topology_token_limit_holds_when_two_intents_interleave() -> None:
    """Both pass the assets stage before either is decided: the second is refused when it would
    be reserved, not approved over the limit."""
    w = World()
    asset = {"chain": "anvil", "token": TOKEN, "decimals": 6, "daily_limit": "100"}
    w.publish(w.policy(tx_to_allowlist=(DEST, TOKEN), asset_limits=(asset,)))
    first, second = _token_transfer(w, 60 * 10**6), _token_transfer(w, 60 * 10**6)

    def hop(emits: list[Emit]) -> tuple[Stage, bytes]:
        (envelope,) = [e for e in emits if e.topic.startswith(topics.STAGE_PREFIX)]
        return Stage(envelope.topic.removeprefix(topics.STAGE_PREFIX)), envelope.value

    at: dict[str, tuple[Stage, bytes]] = {}
    for intent in (first, second):  # each up to (and through) its assets stage
        stage, raw = hop(asyncio.run(w.engine.on_intake(intent.to_bytes(), w.source(), T0)))
        while stage != Stage.ASSETS:
            stage, raw = hop(asyncio.run(w.engine.on_stage(stage, raw, w.source(topics.stage_topic(stage)), T0)))
        at[intent.intent_id] = hop(asyncio.run(w.engine.on_stage(stage, raw, w.source(topics.stage_topic(stage)), T0)))
    results: dict[str, list[Emit]] = {}
    for intent in (first, second):  # then the rest of the stages, one after the other
        stage, raw = at[intent.intent_id]
        while True:
            emits = asyncio.run(w.engine.on_stage(stage, raw, w.source(topics.stage_topic(stage)), T0))
            if not [e for e in emits if e.topic.startswith(topics.STAGE_PREFIX)]:
                results[intent.intent_id] = emits
                break
            stage, raw = hop(emits)
    assert on(results[first.intent_id], topics.INTENTS_APPROVED)
    rejected = rejected_of(results[second.intent_id])
    assert (rejected.stage, rejected.code) == (Stage.ASSETS, Code.ASSET_DAILY_LIMIT_EXCEEDED)
    assert w.engine.windows.of(AGENT, f"anvil:{TOKEN}").spent(to_us(T0)) == 60 * 10**6
