"""Helpers for integration tests: read topics to the end, provision agents on the live stack."""

from __future__ import annotations

from infra.client import follow
from infra.config import Settings
from infra.provision import balance, provision_agent

__all__ = ["balance", "make_agent", "read_topic"]


async def read_topic(settings: Settings, topic: str, idle_polls: int = 5, start=None) -> list[bytes]:
    """Every record on ``topic`` (from ``start`` offsets, default the beginning) until it has been
    quiet for a few polls."""
    records, idle = [], 0
    mine = None if start is None else {tp: offset for tp, offset in start.items() if tp.topic == topic}
    async for name, value in follow(settings, (topic,), mine):
        if name:
            records.append(value)
            idle = 0
        else:
            idle += 1
            if idle >= idle_polls:
                break
    return records


async def make_agent(settings: Settings, agent_id: str, fund_wei: int = 100 * 10**18, **policy_fields):
    agent = await provision_agent(settings, agent_id, fund_wei, **policy_fields)
    return agent.intent_key, agent.address, agent.policy
