"""The split topology (one topic per stage) on one running stack of its own: it reaches exactly
the demo's expected outcomes, and what a topic writer puts on a stage topic decides nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest

from infra.stack import demo, demo_script
from infra.stack.local import LocalStack, local_settings, running_stack
from runtime.kafka import end_offsets
from schemas import topics
from schemas.intent import TransactionIntent
from schemas.outcomes import DeadLetter, IntentRejected, SignedTransaction
from sdk.client import Client, Outcome, new_intent, wait_outcomes
from tests.support import make_agent, read_topic

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_stack(local_settings(tmp_path_factory.mktemp("warden-split"), topology="split")) as stack:
        yield stack


def test_the_demo_script_through_the_split_topology(split: LocalStack) -> None:
    report = asyncio.run(demo.run_script(split.settings, progress=lambda m: None))
    outcomes = [(r["intent"], r["code"] if r["outcome"] == "rejected" else r["outcome"]) for r in report["intents"]]
    assert outcomes == demo_script.expected_outcomes(split.settings)


def test_a_forged_stage_envelope_decides_nothing(split: LocalStack) -> None:
    """A topic writer (no agent, admin or worker key) copies an agent's real intent into an
    envelope on the first stage's topic, with the agent's policy edited to allow another chain only and a
    worker's key id. A worker that ran the stage under that policy would reject the intent
    CHAIN_NOT_ALLOWED under its own signature, bound to the real intent's digest, and answer the
    real intent with the same rejection. A stage envelope is believed only when a pinned worker
    signed it: the forgery is dead-lettered and the real intent is signed."""
    settings = split.settings
    agent = "agent-split-forged"

    async def scenario() -> tuple[TransactionIntent, dict[str, Outcome], list[DeadLetter], list[IntentRejected]]:
        key, _, policy = await make_agent(settings, agent, tx_to_allowlist=(DEST,))
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.DLQ))
        real = new_intent(
            key,
            agent_id=agent,
            chain="anvil",
            to=DEST,
            value="0.001",
            max_fee_per_gas=2 * 10**9,
            max_priority_fee_per_gas=10**9,
            gas_limit=21000,
        )
        forged = {
            "stage": "chain",
            "intent": real.model_dump(mode="json"),
            "policy": {**policy.model_dump(mode="json"), "tx_allowed_chains": ["ethereum"]},
            "verdicts": [],
            "intent_digest": real.digest(),
            "signed_by": settings.worker_id,
            "service_signature": "00" * 64,
        }
        async with Client(settings) as client:
            # First on the stage topic: the real intent reaches it only after intake.
            await client.send(topics.stage_topic("chain"), agent, orjson.dumps(forged))
            await client.submit(real)
            await client.flush()
        told = await wait_outcomes(settings, [real], 90, start)
        letters = [DeadLetter.from_bytes(v) for v in await read_topic(settings, topics.DLQ, start=start)]
        rejections = [
            IntentRejected.from_bytes(v) for v in await read_topic(settings, topics.INTENTS_REJECTED, start=start)
        ]
        return real, told, letters, rejections

    real, told, letters, rejections = asyncio.run(scenario())
    assert isinstance(told.get(real.intent_id), SignedTransaction), told
    assert not [r for r in rejections if r.intent_id == real.intent_id], [(r.code, r.reason) for r in rejections]
    forged = [letter for letter in letters if letter.source_topic == topics.stage_topic("chain")]
    assert len(forged) == 1, [letter.reason for letter in letters]
    assert "not signed by a pinned worker key" in forged[0].reason, forged[0].reason
