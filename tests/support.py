"""Helpers for integration tests: read topics to the end, provision agents on the live stack."""

from __future__ import annotations

import time

import orjson

from infra.client import Client, follow, load_or_create_agent_key, signed_policy
from infra.config import Settings
from infra.rpc import JsonRpc
from schemas.auth import public_key_hex
from signer.custody_wiring import keystore_from_settings


async def read_topic(settings: Settings, topic: str, idle_polls: int = 5) -> list[bytes]:
    """Every record on ``topic`` until it has been quiet for a few polls."""
    records, idle = [], 0
    async for name, value in follow(settings, (topic,)):
        if name:
            records.append(value)
            idle = 0
        else:
            idle += 1
            if idle >= idle_polls:
                break
    return records


async def read_json(settings: Settings, topic: str) -> list[dict]:
    return [orjson.loads(v) for v in await read_topic(settings, topic)]


async def make_agent(settings: Settings, agent_id: str, fund_wei: int = 100 * 10**18, **policy_fields):
    """An agent with an intent key, a funded ethereum key and an applied admin-signed policy."""
    agent_key = load_or_create_agent_key(settings.home, agent_id)
    key = keystore_from_settings(settings).provision(agent_id, "ethereum", actor="admin:local-admin")
    node = JsonRpc(settings.rpc_url)
    try:
        await node.call("anvil_setBalance", key.address, hex(fund_wei))
    finally:
        await node.close()
    fields = dict(agent_id=agent_id, version=int(time.time() * 1000), tx_allowed_chains=("anvil",),
                  agent_public_key=public_key_hex(agent_key), sender_address=key.address)
    fields.update(policy_fields)
    policy = signed_policy(settings, **fields)
    async with Client(settings) as client:
        verdict = await client.publish_policy(policy)
    assert verdict == "policy.updated", verdict
    return agent_key, key.address, policy


async def balance(settings: Settings, address: str) -> int:
    node = JsonRpc(settings.rpc_url)
    try:
        return int(await node.call("eth_getBalance", address, "latest"), 16)
    finally:
        await node.close()
