"""The worker's intake of simulation requests (`streams.simulations`), without a broker: admitted
like an intent (signature, the intents API, freshness), dead-lettered when unreadable, and
answered by a signed `SimulationResult` bound to the request, never by anything a signer reads.
tests/stack/test_simulation.py runs admitted requests on Anvil."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import outcome_forgery, sign_simulation_request
from schemas.codes import Code
from schemas.emit import Emit
from schemas.intent import TransactionIntent
from schemas.simulation import SimulationRequest, SimulationResult
from tests.engine_support import AGENT, DEST, T0, World, actions, on


def _request(world: World, key: Ed25519PrivateKey | None = None, now: datetime = T0) -> SimulationRequest:
    step = TransactionIntent(intent_id="s-1", agent_id=AGENT, chain="anvil", to=DEST, value="0.1", created_at=now)
    request = SimulationRequest(request_id="r-1", agent_id=AGENT, chain="anvil", steps=(step,))
    return sign_simulation_request(request, key or world.agent_key)


def _send(world: World, raw: bytes, now: datetime = T0) -> list[Emit]:
    return asyncio.run(world.engine.on_simulation_request(raw, world.source(topics.SIMULATIONS_REQUESTED), now))


def _result(world: World, emits: list[Emit]) -> SimulationResult:
    (emit,) = on(emits, topics.SIMULATIONS_RESULTS)
    result = SimulationResult.from_bytes(emit.value)
    assert outcome_forgery(result, world.pinned()) is None  # signed by the worker
    return result


def _nothing_to_sign(emits: list[Emit]) -> None:
    assert not on(emits, topics.INTENTS_APPROVED) and not on(emits, topics.INTENTS_AWAITING_APPROVAL)


def test_a_request_under_another_key_is_refused_bound_to_its_bytes() -> None:
    world = World()
    world.publish(world.policy(sender_address=DEST))
    raw = _request(world, key=Ed25519PrivateKey.generate()).to_bytes()
    emits = _send(world, raw)
    result = _result(world, emits)
    assert result.deciding is not None
    assert (result.decision, result.deciding.code) == ("refused", Code.AGENT_SIGNATURE_INVALID)
    # A copy of a real request's fields under a bad signature must not answer for the real one.
    assert result.intent_digest == hashlib.sha256(raw).hexdigest() != _request(world).digest()
    assert AuditAction.SIMULATION_DECIDED in actions(emits)
    _nothing_to_sign(emits)


def test_a_stale_request_and_one_with_the_api_off_are_refused_as_intents_are() -> None:
    world = World()
    world.publish(world.policy(sender_address=DEST))
    stale = _result(world, _send(world, _request(world).to_bytes(), now=T0 + timedelta(hours=1)))
    assert stale.deciding is not None
    assert (stale.deciding.code, stale.intent_digest) == (Code.INTENT_EXPIRED, _request(world).digest())
    world.publish(world.policy(version=2, sender_address=DEST, intents_api_enabled=False))
    off = _result(world, _send(world, _request(world).to_bytes()))
    assert off.deciding is not None and off.deciding.code == Code.INTENTS_API_DISABLED


def test_a_request_without_a_policy_or_a_sender_address_is_refused_with_what_to_do() -> None:
    world = World()
    missing = _result(world, _send(world, _request(world).to_bytes()))
    assert missing.deciding is not None
    assert missing.deciding.code == Code.POLICY_MISSING and "warden agents create" in missing.deciding.reason
    world.publish(world.policy())
    unknown = _result(world, _send(world, _request(world).to_bytes()))
    assert unknown.deciding is not None
    assert unknown.deciding.code == Code.SIMULATION_SENDER_UNKNOWN and "sender_address" in unknown.deciding.reason


def test_an_unreadable_request_is_dead_lettered_and_its_agent_told_which_field() -> None:
    world = World()
    world.publish(world.policy(sender_address=DEST))
    raw = b'{"request_id": "r-9", "agent_id": "agent-1", "chain": "anvil", "steps": []}'
    emits = _send(world, raw)
    assert on(emits, topics.DLQ)
    result = _result(world, emits)
    assert result.deciding is not None
    assert (result.request_id, result.deciding.code) == ("r-9", Code.INVALID_REQUEST)
    assert "steps" in result.deciding.reason and result.intent_digest == hashlib.sha256(raw).hexdigest()
    _nothing_to_sign(emits)


def test_a_signed_intent_sent_as_a_step_is_refused_before_anything_runs() -> None:
    world = World()
    world.publish(world.policy(sender_address=DEST))
    signed = world.intent("0.1")
    body = _request(world).model_dump(mode="json")
    body["steps"] = [signed.model_dump(mode="json")]
    emits = _send(world, orjson.dumps(body))
    result = _result(world, emits)
    assert result.deciding is not None
    assert result.deciding.code == Code.INVALID_REQUEST and "carries a signature" in result.deciding.reason
