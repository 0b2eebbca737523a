"""A burst through the session stack: the worker works in lots, records every intent once and shares
the broker's batches."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import TopicPartition

from infra.stack.local import LocalStack
from runtime.kafka import PRODUCER_BATCH_BYTES, end_offsets, partition_of
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import audit_events_of
from schemas.intent import TransactionIntent
from schemas.outcomes import SignedTransaction
from sdk.client import OUTCOME_TOPICS, Client, new_intent, wait_outcomes
from tests.support import batch_sizes, make_agent, read_topic

DEST = "0x000000000000000000000000000000000000bE0c"
BURST = 120


@dataclasses.dataclass
class Burst:
    agent_id: str
    intents: list[TransactionIntent]
    start: dict[TopicPartition, int]  # where each topic partition ended before it


@pytest.fixture(scope="module")
def burst(stack: LocalStack) -> Burst:
    """BURST intents of one agent sent at once through the shared stack, every one signed."""
    settings = stack.settings
    agent_id = "agent-lots"
    key, _, _ = asyncio.run(make_agent(settings, agent_id))
    intents = [
        new_intent(
            key,
            agent_id=agent_id,
            chain="anvil",
            to=DEST,
            value="0.000000001",
            max_fee_per_gas=2 * 10**9,
            max_priority_fee_per_gas=10**9,
            gas_limit=21000,
        )
        for _ in range(BURST)
    ]
    start = asyncio.run(end_offsets(settings, (topics.AUDIT_EVENTS, topics.INTENTS_SUBMITTED, *OUTCOME_TOPICS)))

    async def send() -> None:
        async with Client(settings) as client:
            for intent in intents:
                await client.submit(intent)
            await client.flush()

    asyncio.run(send())
    outcomes = asyncio.run(wait_outcomes(settings, intents, timeout_s=120, start=start))
    assert all(isinstance(outcomes[i.intent_id], SignedTransaction) for i in intents)
    return Burst(agent_id, intents, start)


def test_a_burst_leaves_the_worker_in_lots_with_every_intent_recorded_once(
    stack: LocalStack, burst: Burst, run: Callable[..., Any]
) -> None:
    settings, intents, start = stack.settings, burst.intents, burst.start
    ids = {i.intent_id for i in intents}
    worker_records = 0
    event_ids: collections.Counter[str] = collections.Counter()
    actions: dict[str, list[str]] = collections.defaultdict(list)
    for raw in run(read_topic(settings, topics.AUDIT_EVENTS, start=start)):
        mine = [e for e in audit_events_of(raw) if e.actor == "service:streams" and e.intent_id in ids]
        if mine:
            worker_records += 1
            event_ids.update(e.event_id for e in mine)
            for e in mine:
                assert e.intent_id is not None
                actions[e.intent_id].append(e.action)
    # Every event once (a lot sent twice would repeat ids), and every intent's whole trail...
    assert set(event_ids.values()) == {1}
    trails = {tuple(sorted(trail)) for trail in actions.values()}
    assert len(actions) == BURST and len(trails) == 1, trails
    (trail,) = trails
    assert trail.count(AuditAction.INTENT_APPROVED) == 1 and trail.count(AuditAction.STAGE_PASSED) >= 5
    # ...in fewer records than intents: the lots joined intents' events. One record per intent is
    # what a worker that sends each intent's outputs on its own writes.
    assert worker_records < BURST, f"{worker_records} worker audit records for {BURST} intents"


def test_a_burst_shares_the_brokers_batches(stack: LocalStack, burst: Burst, run: Callable[..., Any]) -> None:
    # Whoever writes with the producer of `runtime.kafka` (the client its intents, the signer its
    # transactions) puts what piles up behind its request in flight into one batch a partition:
    # each batch the broker holds makes every later fetch of the partition dearer
    # (`runtime.kafka.PRODUCER_BATCH_BYTES`). At aiokafka's default no batch passed 16 KiB, ~24
    # of these intents or ~15 of these transactions.
    partition = partition_of(burst.agent_id)
    ends = run(end_offsets(stack.settings, (topics.INTENTS_SUBMITTED, topics.TXS_SIGNED)))
    largest: dict[str, int] = {}
    for topic in (topics.INTENTS_SUBMITTED, topics.TXS_SIGNED):
        tp = TopicPartition(topic, partition)
        sizes = run(batch_sizes(stack.settings, topic, partition, burst.start[tp], ends[tp]))
        assert sum(count for count, _ in sizes) >= BURST, (topic, sizes)
        assert max(count for count, _ in sizes) > 1, f"{topic}: no batch shared, (records, bytes) {sizes}"
        largest[topic] = max(size for _, size in sizes)
        assert largest[topic] <= PRODUCER_BATCH_BYTES, f"{topic}: (records, bytes) {sizes}"
    # The client hands the broker its whole burst at once, so its batches pass aiokafka's default
    # size. How much of the signer's output piles up behind a request depends on how busy the
    # machine is, so only its sharing of batches is asserted: the size would be a timed test.
    assert largest[topics.INTENTS_SUBMITTED] > 16_384, largest
