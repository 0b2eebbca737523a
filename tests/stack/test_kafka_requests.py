"""Each process counts the Kafka requests its broker answered, by API
(`runtime.kafka_requests`), and `warden bench pipeline` reads them into its hop table
(`infra.bench.hops`): on the stack, an intent's rejection adds fetches and produces to the streams
worker's count, and every served process has a row."""

from __future__ import annotations

import asyncio
import math

from infra.bench.hops import CLIENT, per_intent, requests_now
from infra.stack.local import LocalStack
from runtime.kafka import end_offsets
from schemas import topics
from sdk.client import new_intent, wait_outcomes
from tests.support import fresh_agent, make_agent, submitted

ALLOWED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
STRANGER = "0x000000000000000000000000000000000000dEaD"


def test_each_process_counts_its_kafka_requests_and_an_intent_adds_to_the_workers(stack: LocalStack) -> None:
    settings = stack.settings
    agent = fresh_agent("agent-hops")
    key = asyncio.run(make_agent(settings, agent, tx_to_allowlist=(ALLOWED,)))[0]
    before = requests_now(settings.home)
    assert {"streams", "signer", "ledger"} <= set(before), sorted(before)
    for process in ("streams", "signer", "ledger"):
        assert before[process].get("Fetch", 0) > 0, before[process]
    start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED,)))
    intent = new_intent(key, agent_id=agent, chain="anvil", to=STRANGER, value="0.001")
    asyncio.run(submitted(settings, intent))
    assert intent.intent_id in asyncio.run(wait_outcomes(settings, [intent], 120, start))
    table = per_intent(before, requests_now(settings.home), 1)
    # The worker fetched the intent and produced its rejection and audit events (other tests on
    # this stack add theirs: at least, not exactly).
    assert table["streams"]["Fetch"] >= 1 and table["streams"]["Produce"] >= 1, table["streams"]
    # Each figure to three significant digits: ``all`` is their sum to that precision.
    parts = sum(v for api, v in table["streams"].items() if api != "all")
    assert math.isclose(table["streams"]["all"], parts, rel_tol=0.01), table["streams"]
    # This test's own client (the submit, the wait, the listing above) is counted in this process.
    assert table[CLIENT].get("Produce", 0) >= 1 and table[CLIENT].get("ListOffsets", 0) >= 1, table[CLIENT]
