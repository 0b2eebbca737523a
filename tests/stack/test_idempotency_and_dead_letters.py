"""What Warden answers is about the request asked, on the real stack.

An idempotency key names one request: 0.001 ETH to alice under key K, then 0.5 ETH to bob under K,
must not get a `mined` outcome, bound to the new intent's id and digest, that describes the first
transaction. A dead letter is final: an intent produced to the wrong partition is dead-lettered
"Not decided: publish it keyed by its agent id", and the redelivery watch must not publish it
again itself, to be approved and mined, and a client that obeyed pay twice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition
from eth_utils import to_checksum_address

from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets, partition_of
from runtime.trust import PinnedServiceKeys
from schemas import topics
from schemas.audit import audit_events_of
from schemas.auth import outcome_forgery
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import DeadLetter, IntentRejected, SignedTransaction
from schemas.stages import Stage
from sdk.client import Client, new_intent, wait_outcomes
from tests.support import balance, direct_approvals, fresh_agent, make_agent, read_topic

ETH = 10**18
# Every topic a record about an intent can be published on, besides the dead letters.
ABOUT_AN_INTENT = (
    topics.INTENTS_SUBMITTED,
    topics.INTENTS_APPROVED,
    topics.INTENTS_REJECTED,
    topics.INTENTS_AWAITING_APPROVAL,
    topics.INTENTS_OVERDUE,
    topics.INTENTS_ABANDONED,
    topics.TXS_SIGNED,
    topics.AUDIT_EVENTS,
)


def new_address() -> str:
    return to_checksum_address("0x" + os.urandom(20).hex())


def test_a_key_reused_for_another_payment_is_refused_by_the_worker_and_by_the_signer(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    agent = fresh_agent("agent-idem")
    alice, bob = new_address(), new_address()
    key, _, policy = run(
        make_agent(settings, agent, tx_to_allowlist=(alice, bob), tx_max_value_eth="1", tx_daily_limit_eth="2")
    )

    def pay(to: str, value: str) -> TransactionIntent:
        return new_intent(key, agent_id=agent, chain="anvil", to=to, value=value, idempotency_key="K", broadcast=True)

    start = run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED)))
    first = pay(alice, "0.001")
    run(submit(settings, first))
    mined = run(wait_outcomes(settings, [first], 120, start))[first.intent_id]
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined

    to_bob = pay(bob, "0.5")
    run(submit(settings, to_bob))
    straight = pay(bob, "0.5")  # past the worker: the signer's own record of K is all that stands
    run(direct_approvals(settings, (straight, policy)))
    retry = pay(alice, "0.001")  # the same request, rebuilt: a new id and created_at
    run(submit(settings, retry))
    outcomes = run(wait_outcomes(settings, [to_bob, straight, retry], 120, start))

    for intent, stage in ((to_bob, Stage.INTAKE), (straight, Stage.SIGNING)):
        refused = outcomes[intent.intent_id]
        assert isinstance(refused, IntentRejected), refused
        assert (refused.stage, refused.code, refused.intent_digest) == (
            stage,
            Code.IDEMPOTENCY_KEY_REUSED,
            intent.digest(),
        )
        assert f"by intent {first.intent_id}, for a different request: to, value differ;" in refused.reason
    again = outcomes[retry.intent_id]
    assert isinstance(again, SignedTransaction) and (again.tx_hash, again.nonce) == (mined.tx_hash, mined.nonce)
    assert again.intent_digest == retry.digest()
    signed = [SignedTransaction.from_bytes(v) for v in run(read_topic(settings, topics.TXS_SIGNED, start=start))]
    assert not [s for s in signed if s.intent_id in (to_bob.intent_id, straight.intent_id)]
    assert {s.tx_hash for s in signed if s.agent_id == agent} == {mined.tx_hash}
    assert run(balance(settings, bob)) == 0 and run(balance(settings, alice)) == ETH // 1000


def test_a_dead_letter_is_final_and_the_client_that_obeys_it_pays_once(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    agent = fresh_agent("agent-dlq")
    alice = new_address()
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(alice,), tx_max_value_eth="1"))
    intent = new_intent(key, agent_id=agent, chain="anvil", to=alice, value="0.001", broadcast=True)
    home = partition_of(agent)
    elsewhere = (home + 1) % topics.PARTITIONS
    start = run(end_offsets(settings, (topics.DLQ, *ABOUT_AN_INTENT)))

    async def misplaced() -> DeadLetter:
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
        await producer.start()
        try:
            await (
                await producer.send(
                    topics.INTENTS_SUBMITTED, intent.to_bytes(), key=agent.encode(), partition=elsewhere
                )
            )
        finally:
            await producer.stop()
        for _ in range(60):
            letters = [
                DeadLetter.from_bytes(v) for v in await read_topic(settings, topics.DLQ, idle_polls=2, start=start)
            ]
            mine = [d for d in letters if d.source_topic == topics.INTENTS_SUBMITTED and d.key == agent]
            if mine:
                return mine[0]
            await asyncio.sleep(1)
        raise AssertionError("no dead letter for the intent produced to the wrong partition")

    letter = run(misplaced())
    assert letter.partition == elsewhere and outcome_forgery(letter, PinnedServiceKeys(settings)) is None, letter
    assert f"belong on partition {home}" in letter.reason and "never retried (a dead letter is final)" in letter.reason
    # Past the redelivery watch's grace (10 s) and two more of its attempts: nothing re-publishes it.
    run(asyncio.sleep(35))
    assert not run(wait_outcomes(settings, [intent], 2, start)), "the dead-lettered intent was decided"
    about = run(records_about(settings, intent.intent_id, start))
    assert about == {topics.INTENTS_SUBMITTED: 1}, about  # the one record produced, nothing else
    assert run(balance(settings, alice)) == 0

    # The client obeys the dead letter: published again keyed by its agent, it is decided, once.
    run(submit(settings, intent))
    mined = run(wait_outcomes(settings, [intent], 120, start))[intent.intent_id]
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined
    assert run(balance(settings, alice)) == ETH // 1000


async def submit(settings: Settings, intent: TransactionIntent) -> None:
    async with Client(settings) as client:
        await client.submit(intent)
        await client.flush()


async def records_about(settings: Settings, intent_id: str, start: dict[TopicPartition, int]) -> dict[str, int]:
    """How many records on each topic name ``intent_id`` (an approval under ``intent``, an audit
    record in any of its events), read from ``start``."""
    counts: dict[str, int] = {}
    for topic in ABOUT_AN_INTENT:
        for value in await read_topic(settings, topic, idle_polls=2, start=start):
            if topic == topics.AUDIT_EVENTS:
                named = any(event.intent_id == intent_id for event in audit_events_of(value))
            else:
                body = orjson.loads(value)
                named = intent_id in (body.get("intent_id"), (body.get("intent") or {}).get("intent_id"))
            counts[topic] = counts.get(topic, 0) + named
    return {topic: n for topic, n in counts.items() if n}
