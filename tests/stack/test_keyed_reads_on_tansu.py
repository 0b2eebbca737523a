"""Following an agent's keys on the session stack's Tansu reads its partitions and none of the
others."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from infra.stack.local import LocalStack
from runtime.kafka import end_offsets, follow, partition_of
from schemas import topics
from sdk.client import OUTCOME_TOPICS, Client
from tests.support import one_agent_per_partition


def test_following_an_agents_keys_reads_its_partitions_and_none_of_the_others(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    agents = one_agent_per_partition(f"keyed-read-{os.urandom(3).hex()}")
    mine = agents[0]
    start = run(end_offsets(settings, OUTCOME_TOPICS))
    sent: dict[str, set[bytes]] = {agent: set() for agent in agents}

    async def write() -> None:
        async with Client(settings) as client:
            for agent in agents:
                for topic in OUTCOME_TOPICS:
                    value = f"{agent} on {topic}".encode()
                    await client.send(topic, agent, value)
                    sent[agent].add(value)
            await client.flush()

    async def read() -> set[bytes]:
        seen: set[bytes] = set()
        quiet = 0
        async for topic, value in follow(settings, OUTCOME_TOPICS, start, keys={mine}):
            if topic:
                seen.add(value)
                quiet = 0
            else:
                quiet += 1
                if quiet >= 10 and seen >= sent[mine]:
                    return seen
        return seen

    run(write())
    # The shared stack's services may write to the same partitions meanwhile: only this test's
    # records are compared.
    ours = set().union(*sent.values())
    seen = run(asyncio.wait_for(read(), 60)) & ours
    assert len({partition_of(agent, topics.PARTITIONS) for agent in agents}) == topics.PARTITIONS
    assert seen == sent[mine], sorted(seen - sent[mine])
