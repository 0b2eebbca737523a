"""Three Kafka brokers lose one in the middle of a burst: `warden up --brokers 3` (replication
factor 3, min.insync.replicas 2, producers acks=all), one agent's 300 intents racing a tight
daily limit, and the broker that leads the agent's partition of warden.intents.submitted taken
away mid-burst: SIGKILLed (the supervisor starts it again), then, for a second agent, SIGSTOPped
past the consumers' session timeout and continued.

After each: every intent has exactly one outcome, the ones past the limit refused
DAILY_LIMIT_EXCEEDED; what the agent's address has mined on Anvil, read from the chain's blocks,
is within the limit to the wei and is what fits; the lost broker is back in the ISR of every
partition. At the end every audit event on the topic is in the ledger and `warden audit verify`
passes. The figures are printed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.stack import kafka
from runtime.config import Settings
from runtime.kafka import end_offsets, partition_of
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.outcomes import IntentRejected, SignedTransaction
from sdk.client import wait_outcomes
from tests.support import DEST, assert_one_outcome_each, make_agent, read_topic, transfers
from tests.up_support import (  # noqa: F401 - a fixture
    WardenUp,
    home_settings,
    ledger_holds_the_topic_and_verifies,
    submit_all,
)

INTENTS = 300
# Each intent can spend 0.001 ETH + 21,000 gas x 2 gwei = 0.001042 ETH: 19 fit in 0.02 ETH, 20 do not.
LIMIT_ETH, LIMIT_WEI, FITS = "0.02", 2 * 10**16, 19
# Longer than the signer's and the worker's consumer session (10 s) and Kafka's broker session
# (`broker.session.timeout.ms`, 9 s), after which the controller fences the stopped broker and
# moves its partitions' leadership to a follower in sync.
STOPPED_S = 15
REJOIN_S = 120


def test_three_brokers_lose_the_busy_leader_mid_burst(home_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - the fixture
    monkeypatch.setenv("WARDEN_HOME", str(home_settings.home))
    began = time.monotonic()
    up = WardenUp(home_settings, "--brokers", "3")
    print(f"\nwarden up --brokers 3 ready in {time.monotonic() - began:.1f} s")
    try:
        # Every client is given every broker, as `warden up` gives its services.
        cluster = kafka.load_cluster(home_settings.home)
        assert cluster is not None
        bootstrap = cluster.bootstrap
        settings = dataclasses.replace(home_settings, broker=bootstrap)
        up.env["WARDEN_BROKER"] = bootstrap
        killed = _lose_the_leader(up, settings, "agent-broker-killed", stop_s=None)
        _lose_the_leader(up, settings, "agent-broker-stopped", stop_s=STOPPED_S)
        # The supervisor started the killed node again, and no Warden process exited on the way.
        restarts = {name: c["restarts"] for name, c in up.components().items()}
        assert restarts == {name: int(name == killed) for name in restarts}, restarts
        began = time.monotonic()
        events = ledger_holds_the_topic_and_verifies(settings, up)
        print(
            f"\n{len(events)} audit events on the topic, every one in the ledger; verify ok in {time.monotonic() - began:.1f} s"
        )
        # The supervisor recorded the node's restart on the topic while that node was starting again.
        recorded = [e.details["component"] for e in events if e.action == AuditAction.COMPONENT_RESTARTED]
        assert recorded == [killed], recorded
    finally:
        assert up.stop() == 0


def _lose_the_leader(up: WardenUp, settings: Settings, agent: str, stop_s: float | None) -> str:
    """One agent's burst with the leader of its partition SIGKILLed after the first half
    (``stop_s`` None), or SIGSTOPped there and continued ``stop_s`` seconds later. Checks the
    outcomes, the chain and the ISR; returns the lost broker's process name."""
    key, address, _ = asyncio.run(make_agent(settings, agent, tx_daily_limit_eth=LIMIT_ETH, tx_to_allowlist=(DEST,)))
    first_block = asyncio.run(_rpc(settings, "eth_blockNumber"))
    start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED)))
    leader = asyncio.run(_leader(settings, topics.INTENTS_SUBMITTED, partition_of(agent)))
    name = f"kafka-{leader}"
    pid = up.components()[name]["pid"]
    intents = transfers(key, agent, "0.001", INTENTS, broadcast=True)
    began = time.monotonic()
    asyncio.run(submit_all(settings, intents[: INTENTS // 2]))
    if stop_s is None:
        os.kill(pid, signal.SIGKILL)
    else:
        os.kill(pid, signal.SIGSTOP)
        threading.Timer(stop_s, os.kill, (pid, signal.SIGCONT)).start()
    asyncio.run(submit_all(settings, intents[INTENTS // 2 :]))
    outcomes = asyncio.run(wait_outcomes(settings, intents, 300, start))
    seconds = time.monotonic() - began
    ids = {intent.intent_id for intent in intents}
    assert set(outcomes) == ids, f"{len(ids - set(outcomes))} of {INTENTS} intents without an outcome"
    signed = [
        SignedTransaction.from_bytes(v) for v in asyncio.run(read_topic(settings, topics.TXS_SIGNED, start=start))
    ]
    rejected = [
        IntentRejected.from_bytes(v) for v in asyncio.run(read_topic(settings, topics.INTENTS_REJECTED, start=start))
    ]
    assert_one_outcome_each(ids, signed, rejected)
    refused = [o for o in outcomes.values() if isinstance(o, IntentRejected)]
    assert {o.code for o in refused} == {Code.DAILY_LIMIT_EXCEEDED}, sorted({(o.stage, o.code) for o in refused})
    mined = [o for o in outcomes.values() if isinstance(o, SignedTransaction) and o.status == "mined"]
    assert len(mined) == FITS == INTENTS - len(refused), [getattr(o, "status", None) for o in outcomes.values()]

    count, value, spend = asyncio.run(_mined_from(settings, address, int(first_block, 16) + 1))
    figures = {
        "lost": f"{name} {'SIGKILL' if stop_s is None else f'SIGSTOP {stop_s} s'}",
        "seconds_to_all_outcomes": round(seconds, 1),
        "refused_daily_limit": len(refused),
        "mined_on_chain": count,
        "value_mined_wei": value,
        "max_spend_mined_wei": spend,
        "daily_limit_wei": LIMIT_WEI,
    }
    assert count == FITS and value <= spend <= LIMIT_WEI, figures

    deadline = time.monotonic() + REJOIN_S
    while lagging := asyncio.run(_out_of_isr(settings, leader)):
        assert time.monotonic() < deadline, f"{name} is not in the ISR of {lagging[:10]} after {REJOIN_S} s"
        time.sleep(1)
    figures["seconds_from_the_burst_to_every_isr"] = round(time.monotonic() - began, 1)
    print(f"\n{figures}")
    return name


async def _rpc(settings: Settings, method: str, *params: Any) -> Any:
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=60)
    try:
        return await node.call(method, *params)
    finally:
        await node.close()


async def _mined_from(settings: Settings, address: str, first: int) -> tuple[int, int, int]:
    """(transactions, their value, their value + gas x max fee per gas) from ``address`` in
    Anvil's blocks from ``first`` on, in wei."""
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=60)
    count = value = spend = 0
    try:
        last = int(await node.call("eth_blockNumber"), 16)
        for number in range(first, last + 1):
            block = await node.call("eth_getBlockByNumber", hex(number), True)
            for tx in block["transactions"]:
                if tx["from"].lower() == address.lower():
                    count += 1
                    value += int(tx["value"], 16)
                    spend += int(tx["value"], 16) + int(tx["gas"], 16) * int(tx["maxFeePerGas"], 16)
    finally:
        await node.close()
    return count, value, spend


async def _describe(settings: Settings) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker, request_timeout_ms=5000)
    await admin.start()
    try:
        described: list[dict[str, Any]] = await admin.describe_topics()
        return described
    finally:
        await admin.close()


async def _leader(settings: Settings, topic: str, partition: int) -> int:
    """The node id of the broker leading ``topic``'s ``partition``."""
    for described in await _describe(settings):
        if described["topic"] == topic:
            leader: int = next(p["leader"] for p in described["partitions"] if p["partition"] == partition)
            return leader
    raise AssertionError(f"{topic} is not on the cluster")


async def _out_of_isr(settings: Settings, node_id: int) -> list[str]:
    """The partitions (of every topic) whose in-sync replicas leave ``node_id`` out."""
    return [
        f"{described['topic']}/{p['partition']}"
        for described in await _describe(settings)
        for p in described["partitions"]
        if node_id not in p["isr"]
    ]
