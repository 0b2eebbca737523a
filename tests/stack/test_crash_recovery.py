"""SIGKILL the streams worker and the signer in the middle of a burst, restart them, and
check the promise: every intent ends with exactly one outcome, none is signed twice, and
each agent's nonces run without gaps or repeats.

Each restarted process takes its own place back in its consumer group (static membership:
``group.instance.id`` is the worker's or signer's id), so the group is not rebalanced onto a
member that is gone and waited out for a whole session before the partitions move again."""

from __future__ import annotations

import asyncio
import signal
from collections import defaultdict
from collections.abc import Callable

import pytest

from infra.stack.local import LocalStack
from runtime.kafka import end_offsets
from schemas import topics
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected, SignedTransaction
from sdk.client import Client, new_intent, wait_outcomes
from sdk.outcomes import Outcome
from tests.support import group_instances, make_agent, read_topic

AGENTS = ("crash-a", "crash-b", "crash-c", "crash-d")
PER_AGENT = 60
DAVE = "0x000000000000000000000000000000000000da7e"


@pytest.mark.kafka  # on the broker `warden up` runs (tests/stack/conftest.py)
def test_sigkill_mid_burst_yields_one_outcome_per_intent_and_gapless_nonces(
    fresh_stack: Callable[..., LocalStack],
) -> None:
    stack = fresh_stack()
    settings = stack.settings

    async def scenario() -> tuple[
        list[TransactionIntent], dict[str, Outcome], list[SignedTransaction], list[IntentRejected], set[str]
    ]:
        keys = {a: (await make_agent(settings, a))[0] for a in AGENTS}
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        intents = [
            new_intent(
                keys[a],
                agent_id=a,
                chain="anvil",
                to=DAVE,
                value="0.000001",
                max_fee_per_gas=2 * 10**9,
                max_priority_fee_per_gas=10**9,
                gas_limit=21000,
            )
            for _ in range(PER_AGENT)
            for a in AGENTS
        ]
        third = len(intents) // 3
        groups = {name: group for name, (group, _) in topics.CONSUMER_GROUPS.items()}
        members = {name: await group_instances(settings, group) for name, group in groups.items()}
        assert members == {"streams": ["streams-0"], "signer": ["signer-0"]}, members
        async with Client(settings) as client:
            for intent in intents[:third]:
                await client.submit(intent)
            await client.flush()
            await asyncio.sleep(0.3)
            stack.kill("streams", signal.SIGKILL)
            for intent in intents[third : 2 * third]:
                await client.submit(intent)
            await client.flush()
            await asyncio.to_thread(stack.start_service, "streams", "streams.topology")
            await asyncio.sleep(0.5)
            stack.kill("signer", signal.SIGKILL)
            for intent in intents[2 * third :]:
                await client.submit(intent)
            await client.flush()
            await asyncio.to_thread(stack.start_service, "signer", "signer.main")
        outcomes = await wait_outcomes(settings, intents, 150, start)
        for name, group in groups.items():
            assert await group_instances(settings, group) == members[name], (
                f"{name}: the restarted process joined {group} as a new member, not in its own place"
            )
        approved = {IntentApproved.from_bytes(v).intent_id for v in await read_topic(settings, topics.INTENTS_APPROVED)}
        signed_records = [SignedTransaction.from_bytes(v) for v in await read_topic(settings, topics.TXS_SIGNED)]
        rejected_records = [IntentRejected.from_bytes(v) for v in await read_topic(settings, topics.INTENTS_REJECTED)]
        return intents, outcomes, signed_records, rejected_records, approved

    intents, outcomes, signed_records, rejected_records, approved = asyncio.run(scenario())
    ids = {i.intent_id for i in intents}
    missing = ids - set(outcomes)
    signed_ids = {r.intent_id for r in signed_records}
    rejected_codes = {r.intent_id: r.code for r in rejected_records}
    assert not missing, (
        f"{len(missing)} intents have no outcome; of those {len(missing & approved)} were approved, "
        f"{len(missing & signed_ids)} are on the signed topic and "
        f"{sorted({rejected_codes[m] for m in missing if m in rejected_codes})} rejected, read from "
        f"the beginning; agents {sorted({i.agent_id for i in intents if i.intent_id in missing})}"
    )
    rejected_ids = {r.intent_id for r in rejected_records if r.intent_id in ids}
    assert not rejected_ids, f"intents rejected: {[r.reason for r in rejected_records][:3]}"
    bytes_per_intent: dict[str, set[str]] = defaultdict(set)
    for record in signed_records:
        if record.intent_id in ids:
            bytes_per_intent[record.intent_id].add(record.signed_tx)
    assert set(bytes_per_intent) == ids
    twice = {i: b for i, b in bytes_per_intent.items() if len(b) != 1}
    assert not twice, f"{len(twice)} intents were signed more than once with different bytes"
    nonces: dict[str, list[int]] = defaultdict(list)
    for intent in intents:
        outcome = outcomes[intent.intent_id]
        assert isinstance(outcome, SignedTransaction), outcome
        nonces[intent.agent_id].append(outcome.nonce)
    for agent, used in nonces.items():
        assert sorted(used) == list(range(PER_AGENT)), f"{agent}: nonces with gaps or repeats"


def test_a_redelivered_rejection_is_the_same_bytes(stack: LocalStack) -> None:
    # A rejection is published again when its intent is read again (a producer sent the intent
    # twice, or the worker was killed before it committed it): always the first one's bytes, so a
    # consumer de-duplicates it by its bytes (docs/topics.md). The kill's half, that the decision
    # reaches the changelog before its outcome leaves, is tests/unit/test_worker_lots.py's.
    settings = stack.settings
    agents = ("again-a", "again-b")
    allowed = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # DAVE is not on the allowlist: rejected

    async def scenario() -> tuple[list[TransactionIntent], dict[str, list[bytes]]]:
        keys = {a: (await make_agent(settings, a, tx_to_allowlist=(allowed,)))[0] for a in agents}
        start = await end_offsets(settings, (topics.INTENTS_REJECTED,))
        intents = [
            new_intent(keys[a], agent_id=a, chain="anvil", to=DAVE, value="0.000001") for _ in range(30) for a in agents
        ]
        async with Client(settings) as client:
            for intent in intents:
                await client.submit(intent)
            await client.flush()
        outcomes = await wait_outcomes(settings, intents, 150, start)
        assert set(outcomes) == {i.intent_id for i in intents}
        again = intents[:: len(intents) // 8]
        async with Client(settings) as client:
            for intent in again:
                await client.submit(intent)  # the same intent bytes, written again
            await client.flush()
        records: dict[str, list[bytes]] = defaultdict(list)
        deadline = asyncio.get_running_loop().time() + 90
        while any(len(records[i.intent_id]) < 2 for i in again):
            assert asyncio.get_running_loop().time() < deadline, "the resubmitted intents were not answered again"
            records.clear()
            for value in await read_topic(settings, topics.INTENTS_REJECTED, start=start):
                records[IntentRejected.from_bytes(value).intent_id].append(value)
        return intents, records

    intents, records = asyncio.run(scenario())
    for intent in intents:
        answers = records[intent.intent_id]
        assert answers and IntentRejected.from_bytes(answers[0]).code == Code.RECIPIENT_NOT_ALLOWLISTED, answers[0]
        assert len(set(answers)) == 1, (
            f"{intent.intent_id}: {len(answers)} rejection records, {len(set(answers))} different: "
            f"{[IntentRejected.from_bytes(a).decided_at for a in answers]}"
        )
