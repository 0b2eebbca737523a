"""One intent, one outcome when a streams worker is paused past its session and resumes.

Two workers and two signers (the scale-out shape), one agent on each of the four partitions. While
intents flow, one worker at a time is SIGSTOPped past its session timeout, so its partitions move
to the other, which decides the intents the stopped one held; then it is SIGCONTed: three times,
at different points of a burst, each in a settled group. The resumed worker still holds records
it fetched before the stop; it must not publish what the other worker decided otherwise (its
changelog record does not hold, `runtime.owner`): the other worker decides those intents now. Intents live a few seconds here, so
a decision taken after a stop differs from one taken before it (`INTENT_EXPIRED`), and a stale
worker's publish shows as a second, different outcome for the intent (with the check removed: an
approval the signer refused as expired beside the owner's rejection).

Every intent ends with exactly one outcome: no rejection beside a signed transaction, no two
rejections with different bytes; and no process is down at the end."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from collections.abc import Callable

import pytest

from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets, partition_of
from schemas import topics
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedTransaction
from sdk.client import Client, Outcome, new_intent, wait_outcomes
from tests.support import group_state, make_agent, read_topic

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
# The workers' session: each stop lasts it and the rebalance after it. Not much shorter: Kafka's
# floor is 6 s (group.min.session.timeout.ms), and a worker of a busy machine's suite must not be
# taken out of the group for a slow second.
SESSION_S = 9.0
MAX_AGE_S = 5  # what a stopped worker still held is expired when it resumes
BURST = 32  # intents submitted at once before each stop, spread over the agents
# Each stop: how long after a burst was written, and which worker. Right after, the worker is
# deciding the burst's lot; a little later, publishing it; the third stops the first worker again
# while the group may still be settling from the second's return.
STOPS = ((0.03, "streams"), (0.15, "streams-1"), (0.06, "streams"))
WORKERS = ("streams-0", "streams-1")  # their group instance ids (`WARDEN_WORKER_ID`)

pytestmark = pytest.mark.kafka  # a rebalance: on the broker `warden up` runs (tests/stack/conftest.py)


async def _group_settled(settings: Settings, deadline_s: float = 60.0) -> None:
    """Until the workers' group is stable with both workers in it: each stop is made in a settled
    group, as the issue's runs did (a stop while the group rebalances is not this test's case)."""
    group = topics.CONSUMER_GROUPS["streams"][0]
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline_s
    while True:
        state, members = await group_state(settings, group)
        if state == "Stable" and all(any(m.startswith(f"{w}-") for m in members) for w in WORKERS):
            return
        assert loop.time() < until, f"the workers' group did not settle: {state} {members}"
        await asyncio.sleep(0.5)


def _agents() -> list[str]:
    """One agent per partition, so each worker has agents to decide whichever partitions it holds."""
    by_partition: dict[int, str] = {}
    for n in range(100):
        by_partition.setdefault(partition_of(f"agent-paused-{n}"), f"agent-paused-{n}")
    return [by_partition[p] for p in range(topics.PARTITIONS)]


def test_a_worker_paused_past_its_session_publishes_nothing_another_owner_decides(
    fresh_stack: Callable[..., LocalStack],
) -> None:
    stack = fresh_stack(signers=2, workers=2, worker_session_timeout_s=SESSION_S, intent_max_age_s=MAX_AGE_S)
    settings = stack.settings
    agents = _agents()

    async def scenario() -> tuple[
        list[TransactionIntent], dict[str, Outcome], list[SignedTransaction], list[tuple[bytes, IntentRejected]]
    ]:
        keys = {agent: (await make_agent(settings, agent, tx_to_allowlist=(DEST,)))[0] for agent in agents}
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        sent: list[TransactionIntent] = []
        async with Client(settings) as client:
            for after, name in STOPS:
                await _group_settled(settings)
                burst = []
                for n in range(BURST):
                    agent = agents[n % len(agents)]
                    intent = new_intent(
                        keys[agent],
                        agent_id=agent,
                        chain="anvil",
                        to=DEST,
                        value="0.0001",
                        max_fee_per_gas=2 * 10**9,
                        max_priority_fee_per_gas=10**9,
                        gas_limit=21000,
                    )
                    await client.submit(intent)
                    burst.append(intent)
                await client.flush()
                await asyncio.sleep(after)
                group = stack.processes[name].pid  # its own process group (started in a new session)
                os.killpg(group, signal.SIGSTOP)
                # Stopped until the other worker has taken its partitions over and decided every
                # intent of the burst, those the stopped one holds too: then it resumes.
                await wait_outcomes(settings, burst, 90, start)
                os.killpg(group, signal.SIGCONT)
                sent += burst
        outcomes = await wait_outcomes(settings, sent, 120, start)
        # What a stale worker would publish comes right after it resumes: give it time to arrive.
        await asyncio.sleep(2)
        signed = [SignedTransaction.from_bytes(v) for v in await read_topic(settings, topics.TXS_SIGNED, start=start)]
        rejected = [
            (v, IntentRejected.from_bytes(v)) for v in await read_topic(settings, topics.INTENTS_REJECTED, start=start)
        ]
        return sent, outcomes, signed, rejected

    sent, outcomes, signed, rejected = asyncio.run(scenario())
    ids = {intent.intent_id for intent in sent}
    assert set(outcomes) == ids, f"{len(ids - set(outcomes))} of {len(ids)} intents without an outcome"

    # One outcome each: the same bytes may be published again (a redelivery), nothing else.
    said: dict[str, set[tuple[object, ...]]] = defaultdict(set)
    for record in signed:
        if record.intent_id in ids:
            said[record.intent_id].add(("signed", record.signed_tx))
    for raw, refusal in rejected:
        if refusal.intent_id in ids:
            said[refusal.intent_id].add(("rejected", refusal.signed_by, refusal.stage, refusal.code, raw))
    several = {i: sorted(str(x)[:120] for x in s) for i, s in said.items() if len(s) != 1}
    assert not several, (
        f"{len(several)} of {len(ids)} intents were told more than one thing, e.g. {next(iter(several.items()))}; see {settings.log_dir}"
    )
    # The stops did move partitions: intents the stopped worker held expired waiting for the other.
    codes = {record.code for _, record in rejected if record.intent_id in ids}
    assert Code.INTENT_EXPIRED in codes, codes

    down = {name: p.proc.returncode for name, p in stack.processes.items() if p.proc.poll() is not None}
    assert not down, f"processes down after the stops: {down}; see {settings.log_dir}"
