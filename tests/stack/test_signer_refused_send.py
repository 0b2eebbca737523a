"""A broadcast is sent before the signer signs the agent's next intent (signer.main), so a send
the node refuses gives its nonce back before another intent takes one.

The attack on that rule is a send the node refuses after the worker approved: were the agent's
next intents signed first (a batch's sends grouped after its signatures, say), they would hold
the following nonces and wait behind a gap for good. Here the senders' balances drop (Anvil's
anvil_setBalance) between the worker's approval and the signer's send, with the signer stopped
so that every approval lands in its first batch: three intents per agent, four agents, one per
partition. Grouping every send of a batch after its signatures fails this test (tried: the
second intent ends "stuck" at nonce 1 behind the gap).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.outcomes import IntentApproved, SignedTransaction
from sdk.client import new_intent, wait_outcomes
from tests.support import make_agent, one_agent_per_partition, read_topic, submitted
from tests.up_support import chain_nonce

ETH = 10**18
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


async def set_balance(settings: Settings, address: str, wei: int) -> None:
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
    try:
        await node.call("anvil_setBalance", address, hex(wei))
    finally:
        await node.close()


def test_a_refused_send_gives_its_nonce_back_before_the_agent_signs_again(
    fresh_stack: Callable[..., Any], run: Callable[..., Any]
) -> None:
    stack = fresh_stack()
    settings = stack.settings
    agents = one_agent_per_partition("agent-rounds")
    made = {
        agent: run(
            make_agent(
                settings, agent, fund_wei=ETH, tx_to_allowlist=(DEST,), tx_max_value_eth="1", tx_daily_limit_eth="10"
            )
        )
        for agent in agents
    }
    # Per agent: 0.5 ETH (refused once the balance is 0.1 ETH), then two of 0.01 ETH.
    intents = {
        agent: [
            new_intent(key, agent_id=agent, chain="anvil", to=DEST, value=value, broadcast=True)
            for value in ("0.5", "0.01", "0.01")
        ]
        for agent, (key, _, _) in made.items()
    }
    stack.kill("signer", signal.SIGTERM)
    approved = run(end_offsets(settings, (topics.INTENTS_APPROVED,)))
    start = run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED)))
    run(submitted(settings, *[intent for agent in agents for intent in intents[agent]]))
    # Counted by reading the approvals, not by the topic's reported ends: Tansu reports a
    # partition's end as one past the first offset of its last batch, and the worker sends a lot's
    # approvals in one batch per partition.
    ids = {i.intent_id for agent in agents for i in intents[agent]}
    deadline = time.monotonic() + 60
    while (
        len(
            {
                IntentApproved.from_bytes(raw).intent_id
                for raw in run(read_topic(settings, topics.INTENTS_APPROVED, idle_polls=2, start=approved))
            }
            & ids
        )
        < 12
    ):
        assert time.monotonic() < deadline, "the worker did not approve the 12 intents within 60 s"
    for _, address, _ in made.values():
        run(set_balance(settings, address, ETH // 10))
    stack.start_signer(0)

    outcomes = run(wait_outcomes(settings, [i for agent in agents for i in intents[agent]], 90, start))
    for agent in agents:
        refused, first, second = (outcomes[i.intent_id] for i in intents[agent])
        assert all(isinstance(o, SignedTransaction) for o in (refused, first, second))
        assert refused.status == "failed" and "node refused" in (refused.error or ""), refused
        # The refused nonce went back: the next intent took it, and nothing waits behind a gap.
        assert (first.status, first.nonce) == ("mined", 0), first
        assert (second.status, second.nonce) == ("mined", 1), second
        assert run(chain_nonce(settings, made[agent][1])) == 2
