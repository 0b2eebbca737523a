"""`Client.submit_and_wait`: an agent that waits on each of its intents through one client is
answered through one reader of the outcome topics (`sdk.outcome_hub`), not a consumer an intent,
and believes only authentic outcomes, counting the forgeries a topic writer races ahead of them."""

from __future__ import annotations

import asyncio
from typing import Any

from infra.bench.hops import CLIENT, requests_now
from infra.stack.local import LocalStack
from runtime.kafka import end_offsets
from schemas import topics
from schemas.codes import Code
from schemas.outcomes import IntentRejected, SignedTransaction
from sdk.client import Client, new_intent
from tests.support import forge_rejections, fresh_agent, make_agent

ALLOWED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
STRANGER = "0x000000000000000000000000000000000000dEaD"


def test_an_agent_waits_on_each_intent_through_one_reader_and_believes_only_authentic_outcomes(
    stack: LocalStack,
) -> None:
    settings = stack.settings
    agent = fresh_agent("agent-sdk-wait")
    key = asyncio.run(make_agent(settings, agent, tx_to_allowlist=(ALLOWED,), tx_max_value_eth="1"))[0]

    async def session() -> tuple[list[tuple[Any, int]], dict[str, float], dict[str, float], list[str]]:
        forged: list[str] = []
        reading = asyncio.Event()
        start = await end_offsets(settings, (topics.INTENTS_SUBMITTED,))
        liar = asyncio.create_task(forge_rejections(settings, agent, start, forged, reading))
        await asyncio.wait_for(reading.wait(), 60)
        answers = []
        try:
            async with Client(settings) as client:
                answers.append(await client.submit_and_wait(_intent(key, agent, ALLOWED), 120))
                first = requests_now(settings.home)[CLIENT]
                for to in (STRANGER, ALLOWED):
                    answers.append(await client.submit_and_wait(_intent(key, agent, to), 120))
                later = requests_now(settings.home)[CLIENT]
        finally:
            liar.cancel()
            await asyncio.gather(liar, return_exceptions=True)
        return answers, first, later, forged

    answers, first, later, forged = asyncio.run(session())
    (signed, lies_1), (refused, lies_2), (again, lies_3) = answers
    assert isinstance(signed, SignedTransaction) and isinstance(again, SignedTransaction), answers
    assert isinstance(refused, IntentRejected) and refused.code == Code.RECIPIENT_NOT_ALLOWLISTED, refused
    assert refused.reason != "forged"
    # The liar answered each intent, with a rejection no pinned key signed: counted when it came
    # before the real outcome (one hop against the pipeline's several: nearly always), never believed.
    lies = (lies_1, lies_2, lies_3)
    assert len(forged) == 3 and set(lies) <= {0, 1} and sum(lies) >= 1, (forged, lies)
    # After the first wait, the next two listed no ends and fetched no metadata of their own: the
    # one reader, started by the first, answered both (the module's `submit_and_wait` lists the
    # outcome topics' ends and starts a consumer for every intent).
    assert later.get("ListOffsets", 0) == first.get("ListOffsets", 0), (first, later)


def _intent(key: Any, agent: str, to: str) -> Any:
    return new_intent(key, agent_id=agent, chain="anvil", to=to, value="0.001")
