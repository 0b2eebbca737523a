"""One outcome through a node outage: the redelivery watch's give-up (`IntentOverdue`, which the
worker turns into an abandonment the signer answers NO_OUTCOME) and a judgement still waiting for the node
cannot both decide an intent. Whichever the worker records first stands; the other stands down
(were both to stand, NO_OUTCOME would be published, then the judgement approve the intent, and it
be signed and mined). The worker publishes no refusal of its own for the give-up: the signer has the last word
(tests/unit/test_signer_abandoned.py).

The engine is fed bytes as the topology feeds it. The node is a fake (`StalledNode`), which a unit
test may use: its calls wait on an asyncio event, as calls to an Anvil stopped with SIGSTOP wait,
so the give-up can be delivered while a judgement is in flight. tests/stack/test_node_outage.py
pauses the real Anvil of a real stack."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from rules.stage_table import ALL_GUARDRAIL_STAGES
from runtime.rpc import RpcUnavailable
from schemas import topics
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.emit import Emit
from schemas.intent import TransactionIntent
from schemas.stages import Stage
from tests.engine_support import T0, World, actions, audits, rejected_of

RESUMED = T0 + timedelta(seconds=50)


class StalledNode:
    """A fake node (this is a unit test): every call waits until the test resumes it, then answers
    a fee quote, or fails as an unreachable node does (``fail``)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.asked = asyncio.Event()
        self.resumed = asyncio.Event()

    async def call(self, method: str, *params: Any) -> Any:
        self.asked.set()
        await self.resumed.wait()
        if self.fail:
            raise RpcUnavailable(f"{method}: chain RPC at http://127.0.0.1:8545 unreachable (TimeoutError: )")
        return {"eth_maxPriorityFeePerGas": hex(10**9), "eth_getBlockByNumber": {"baseFeePerGas": hex(10**9)}}[method]


def _world(node: StalledNode) -> World:
    world = World()
    world.engine = world.new_engine({}, {}, node_for=lambda chain: node)
    world.publish(world.policy())
    return world


def _quoted_intent(world: World) -> TransactionIntent:
    """An intent that names no fees: the worker's fee stage asks the node for them."""
    return world.intent("0.5", max_fee_per_gas=None, max_priority_fee_per_gas=None)


async def _race(
    world: World, node: StalledNode, judging: Coroutine[Any, Any, list[Emit]], intent: TransactionIntent
) -> tuple[list[Emit], list[Emit]]:
    """(what the give-up emitted, delivered while ``judging`` waits for the node, what the
    judgement emitted once the node answered)."""
    judgement = asyncio.create_task(judging)
    await asyncio.wait_for(node.asked.wait(), 5)  # the judgement is in flight, waiting for the node
    given_up = world.engine.on_overdue(
        world.overdue(intent), world.source(topics.INTENTS_OVERDUE), T0 + timedelta(seconds=40)
    )
    node.resumed.set()
    return given_up, await asyncio.wait_for(judgement, 5)


def _outcomes(emits: list[Emit]) -> list[Emit]:
    """What decides or hands an intent on: outcomes, dead letters, stage envelopes."""
    decisive = (topics.INTENTS_APPROVED, topics.INTENTS_REJECTED, topics.INTENTS_AWAITING_APPROVAL, topics.DLQ)
    return [e for e in emits if e.topic in decisive or e.topic.startswith("warden.stage.")]


def _handed_to_the_signer(given_up: list[Emit], intent: TransactionIntent) -> None:
    """The give-up publishes no outcome here, only the abandonment the signer answers and the
    ledger's record."""
    assert _outcomes(given_up) == [], [e.topic for e in given_up]
    assert [e.topic for e in given_up if e.topic == topics.INTENTS_ABANDONED] == [topics.INTENTS_ABANDONED]
    (abandoned,) = audits(given_up)
    assert (abandoned.action, abandoned.details["intent_digest"]) == (AuditAction.INTENT_ABANDONED, intent.digest())


def test_a_give_up_during_the_judgement_is_the_one_outcome_and_nothing_is_approved() -> None:
    """Case 10 at 45-60 s: the node answers after the give-up, and the judgement would approve."""
    node = StalledNode()
    world = _world(node)
    intent = _quoted_intent(world)

    async def scenario() -> tuple[list[Emit], list[Emit]]:
        return await _race(world, node, world.engine.on_intent(intent.to_bytes(), world.source(), T0), intent)

    given_up, judged = asyncio.run(scenario())
    _handed_to_the_signer(given_up, intent)
    assert _outcomes(judged) == [], [e.topic for e in judged]
    # The ledger says what happened to the judgement, and nothing of its verdicts as if they decided.
    assert AuditAction.STAGE_PASSED not in actions(judged) and AuditAction.STAGE_FAILED not in actions(judged)
    (discarded,) = [a for a in audits(judged) if a.action == AuditAction.INTENT_JUDGEMENT_DISCARDED]
    assert discarded.details["intent_digest"] == intent.digest()
    assert discarded.details["decided"] == "abandoned"
    (handed,) = [e for e in given_up if e.topic == topics.INTENTS_ABANDONED]
    assert world.engine.decisions[intent.intent_id].record == handed.value
    assert world.spent(RESUMED) == 0
    # A redelivered copy, read after the node answered, asks the signer again: its answer stands.
    again = world.submit(intent, now=RESUMED)
    assert again == [handed]


def test_another_intent_under_a_given_up_intents_idempotency_key_is_refused_not_judged() -> None:
    """The given-up intent's answer is the signer's, which the worker does not hold: another
    intent under its key is refused NO_OUTCOME, naming it, and reserves nothing."""
    node = StalledNode()
    world = _world(node)
    intent = world.intent("0.5", max_fee_per_gas=None, max_priority_fee_per_gas=None, idempotency_key="k-1")

    async def scenario() -> tuple[list[Emit], list[Emit]]:
        return await _race(world, node, world.engine.on_intent(intent.to_bytes(), world.source(), T0), intent)

    asyncio.run(scenario())
    again = world.intent("0.5", max_fee_per_gas=None, max_priority_fee_per_gas=None, idempotency_key="k-1")
    refusal = rejected_of(world.submit(again, now=RESUMED))
    assert refusal.code == Code.NO_OUTCOME and intent.intent_id in refusal.reason, refusal.reason
    assert world.spent(RESUMED) == 0


def test_a_give_up_during_a_judgement_the_node_then_fails_is_one_refusal_not_two() -> None:
    """Case 10 at 90 s: the node fails the judgement after the give-up; one refusal, NO_OUTCOME."""
    node = StalledNode(fail=True)
    world = _world(node)
    intent = _quoted_intent(world)

    async def scenario() -> tuple[list[Emit], list[Emit]]:
        return await _race(world, node, world.engine.on_intent(intent.to_bytes(), world.source(), T0), intent)

    given_up, judged = asyncio.run(scenario())
    _handed_to_the_signer(given_up, intent)
    assert _outcomes(judged) == []
    (discarded,) = [a for a in audits(judged) if a.action == AuditAction.INTENT_JUDGEMENT_DISCARDED]
    assert discarded.details["judged"] == "rejected FEE_QUOTE_UNAVAILABLE"


def test_a_judgement_that_decides_first_is_the_one_outcome_and_the_give_up_stands_down() -> None:
    node = StalledNode(fail=True)
    world = _world(node)
    intent = _quoted_intent(world)

    async def scenario() -> tuple[list[Emit], list[Emit]]:
        judgement = asyncio.create_task(world.engine.on_intent(intent.to_bytes(), world.source(), T0))
        await asyncio.wait_for(node.asked.wait(), 5)
        node.resumed.set()
        judged = await asyncio.wait_for(judgement, 5)
        given_up = world.engine.on_overdue(world.overdue(intent), world.source(topics.INTENTS_OVERDUE), RESUMED)
        return judged, given_up

    judged, given_up = asyncio.run(scenario())
    refusal = rejected_of(judged)
    assert refusal.code == Code.FEE_QUOTE_UNAVAILABLE and "chain RPC at http://127.0.0.1:8545" in refusal.reason
    assert given_up == []


def test_in_the_split_topology_a_stage_in_flight_at_the_give_up_hands_nothing_on() -> None:
    node = StalledNode()
    world = _world(node)
    intent = _quoted_intent(world)
    (envelope,) = asyncio.run(world.engine.on_intake(intent.to_bytes(), world.source(), T0))[-1:]
    stages = list(ALL_GUARDRAIL_STAGES)

    async def scenario() -> tuple[list[Emit], list[Emit]]:
        hop = envelope
        # Every stage before the fee stage asks no node: hand the envelope on to the fee stage.
        while hop.topic != topics.stage_topic("fee"):
            stage = stages[[topics.stage_topic(s) for s in stages].index(hop.topic)]
            emits = await world.engine.on_stage(stage, hop.value, world.source(hop.topic), T0)
            (hop,) = [e for e in emits if e.topic.startswith("warden.stage.")]
        fee = world.engine.on_stage(Stage.FEE, hop.value, world.source(hop.topic), T0)
        return await _race(world, node, fee, intent)

    given_up, judged = asyncio.run(scenario())
    _handed_to_the_signer(given_up, intent)
    assert _outcomes(judged) == []
    assert [a.action for a in audits(judged)] == [AuditAction.INTENT_JUDGEMENT_DISCARDED]
