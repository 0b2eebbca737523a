"""Scale-out: two signers and two streams workers, each pair one consumer group, and the signer
that owns an agent's partition SIGKILLed while 100 of that agent's intents race its daily limit.

Half the intents go through the workers; the other half are written straight to
``warden.intents.approved`` (a compromised worker), so only the signers' own record of the
agent's spend stands between them and the limit. The partition moves to the surviving signer,
which restores it from ``warden.signer.changelog`` before it signs: the limit holds across the
two signers, no nonce is used twice, and every intent ends with one outcome."""

from __future__ import annotations

import asyncio
import base64
import signal
from collections.abc import Callable

import orjson
import pytest
from aiokafka.structs import TopicPartition

from infra.stack.local import LocalStack
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets, follow, partition_of
from schemas import topics
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import DeadLetter, IntentApproved, IntentRejected, SignedTransaction
from sdk.client import Client, Outcome, wait_outcomes
from tests.support import DEST, assert_one_outcome_each, make_agent, read_topic, transfers

AGENT = "agent-scale-out"
INTENTS = 100
# Each intent can spend 0.01 ETH + 21,000 gas x 2 gwei = 0.010042 ETH: 49 fit in 0.5 ETH, 50 do not.
LIMIT_WEI = 5 * 10**17
FITS = 49
KILL_AFTER_SIGNED = 15
# The rest wait for the kill: on a busy machine the first signer could otherwise sign all 49 that
# fit before the killer, reading the topic, saw 15 of them, and no partition would move.
SUBMITTED_BEFORE_THE_KILL = 30

pytestmark = pytest.mark.kafka  # a partition moved by a kill: on the broker `warden up` runs (tests/stack/conftest.py)


def test_a_signer_killed_mid_stream_hands_its_partition_over_with_the_spend(
    fresh_stack: Callable[..., LocalStack],
) -> None:
    stack = fresh_stack(signers=2, workers=2)
    settings = stack.settings
    intents, outcomes, signed, rejected, killed = asyncio.run(_race_the_limit_through_a_kill(stack))
    ids = {intent.intent_id for intent in intents}
    assert set(outcomes) == ids, f"{len(ids - set(outcomes))} intents without an outcome"
    assert_one_outcome_each(ids, signed, rejected)

    mine = {r.intent_id: r for r in signed if r.intent_id in ids}
    by = {r.signed_by for r in mine.values()}
    assert by == {"signer-0", "signer-1"}, f"signed by {by}: the partition did not move to the other signer"
    survivor = ({"signer-0", "signer-1"} - {killed}).pop()
    assert any(r.signed_by == survivor for r in mine.values())

    # The limit held across the two signers, to the wei, and it was what stopped them.
    total = sum(r.max_spend_wei for r in mine.values())
    assert total <= LIMIT_WEI, f"{len(mine)} signed for {total} wei against a daily limit of {LIMIT_WEI}"
    assert len(mine) == FITS
    over = [o for o in outcomes.values() if isinstance(o, IntentRejected)]
    assert len(over) == INTENTS - FITS and {o.code for o in over} == {Code.DAILY_LIMIT_EXCEEDED}, sorted(
        {(o.stage, o.code) for o in over}
    )

    # No nonce twice: the survivor continued the line the killed signer left.
    assert sorted(r.nonce for r in mine.values()) == list(range(FITS))

    _copies_off_the_agents_partition_decide_nothing(settings)


async def _race_the_limit_through_a_kill(
    stack: LocalStack,
) -> tuple[list[TransactionIntent], dict[str, Outcome], list[SignedTransaction], list[IntentRejected], str]:
    """INTENTS intents of one agent, half through the workers and half straight onto the approved
    topic, with the signer that owns the agent's partition killed mid-stream: the intents, their
    outcomes, the signed and rejected records, and the killed signer's name."""
    settings = stack.settings
    key, _, policy = await make_agent(settings, AGENT, tx_daily_limit_eth="0.5", tx_to_allowlist=(DEST,))
    start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
    intents = transfers(key, AGENT, "0.01", INTENTS)
    killed: list[str] = []
    async with Client(settings) as client:
        # The first through the workers, waited for: both groups have settled before the race.
        await client.submit(intents[0])
        await client.flush()
        await wait_outcomes(settings, intents[:1], 60, start)
        killer = asyncio.create_task(_kill_the_owner(stack, start, killed))
        for number, intent in enumerate(intents[1:], 1):
            if number == SUBMITTED_BEFORE_THE_KILL:
                await client.flush()
                await asyncio.wait_for(asyncio.shield(killer), 120)
            if number % 2:
                approved = IntentApproved(
                    intent=intent, policy=policy, verdicts=(), approved_at=utcnow(), intent_digest=intent.digest()
                )
                await client.send(topics.INTENTS_APPROVED, AGENT, approved.to_bytes())
            else:
                await client.submit(intent)
            await client.flush()
            await asyncio.sleep(0.04)
    await asyncio.wait_for(killer, 60)
    outcomes = await wait_outcomes(settings, intents, 150, start)
    signed = [SignedTransaction.from_bytes(v) for v in await read_topic(settings, topics.TXS_SIGNED, start=start)]
    rejected = [IntentRejected.from_bytes(v) for v in await read_topic(settings, topics.INTENTS_REJECTED, start=start)]
    return intents, outcomes, signed, rejected, killed[0]


async def _kill_the_owner(stack: LocalStack, start: dict[TopicPartition, int], killed: list[str]) -> None:
    """The signer that signs this agent's first intents owns its partition: killed without
    warning once it has signed KILL_AFTER_SIGNED of them; its name is appended to ``killed``."""
    seen: list[str] = []
    async for topic, value in follow(stack.settings, (topics.TXS_SIGNED,), start, fetch_max_wait_ms=20):
        if topic:
            record = SignedTransaction.from_bytes(value)
            if record.agent_id == AGENT:
                seen.append(record.signed_by)
        if len(seen) >= KILL_AFTER_SIGNED:
            break
    owner = seen[-1]
    killed.append(owner)
    await asyncio.to_thread(stack.kill, "signer" if owner == "signer-0" else owner, signal.SIGKILL)


def _copies_off_the_agents_partition_decide_nothing(settings: Settings) -> None:
    """On the same two workers: copies of an agent's intents re-keyed into other partitions (a
    topic writer's). The worker there may not hold the agent's policy or decisions: judging the
    copy, it would reject it POLICY_MISSING, signed and bound to the real intent's digest, while
    the real one is signed. A copy off its agent's partition is dead-lettered and decides nothing."""
    other = "agent-rekeyed"
    home = partition_of(other)
    elsewhere = {partition_of(k): k for k in (f"not-{other}-{n}" for n in range(200)) if partition_of(k) != home}

    async def rekeyed() -> tuple[list[TransactionIntent], dict[str, Outcome], list[DeadLetter], list[IntentRejected]]:
        key, _, _ = await make_agent(settings, other, tx_to_allowlist=(DEST,))
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.DLQ))
        real = transfers(key, other, "0.001", 3)
        async with Client(settings) as client:
            for intent in real:
                for k in elsewhere.values():  # the copies first: read first, they would be decided first
                    await client.send(topics.INTENTS_SUBMITTED, k, intent.to_bytes())
                await client.submit(intent)
            await client.flush()
        told = await wait_outcomes(settings, real, 90, start)
        letters = [DeadLetter.from_bytes(v) for v in await read_topic(settings, topics.DLQ, start=start)]
        rejections = [
            IntentRejected.from_bytes(v) for v in await read_topic(settings, topics.INTENTS_REJECTED, start=start)
        ]
        return real, told, letters, rejections

    real, told, letters, rejections = asyncio.run(rekeyed())
    assert all(isinstance(told.get(i.intent_id), SignedTransaction) for i in real), told
    ids = {i.intent_id for i in real}
    assert not [r for r in rejections if r.intent_id in ids], [(r.code, r.signed_by) for r in rejections]
    off = {
        (letter.partition, orjson.loads(base64.b64decode(letter.payload_b64))["intent_id"])
        for letter in letters
        if f"belong on partition {home}" in letter.reason
    }
    assert off == {(p, i) for p in elsewhere for i in ids}, sorted(off)
