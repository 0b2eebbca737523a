"""One outcome through a node outage: the chain's node (Anvil) is stopped with
SIGSTOP in the middle of a burst and continued later, on a stack of the test's own.

While it is stopped, the worker judges the burst one intent at a time, and each judgement waits
for the node's fee quote (up to two reads of `runtime.rpc`'s 10 s timeout, then
FEE_QUOTE_UNAVAILABLE); the redelivery watch re-publishes the waiting intents and gives them up
after its fourth grace period (~40 s): the worker judges them no further, and the signer refuses
them NO_OUTCOME, "will not sign". One intent is always being judged at that moment, and were
that judgement to go on and publish a second decision, it would be an approval the signer signs
and Anvil mines when the node comes back at the give-up, or a second refusal
(FEE_QUOTE_UNAVAILABLE beside NO_OUTCOME) when the node stays away for 90 s. Whichever decides
first is the intent's one outcome; the judgement that comes second is discarded (`intent.judgement_discarded` on the ledger).
And a keyless topic writer who then copies a given-up intent into an approval gets the signer's
NO_OUTCOME again, never a signature (the signer has the last word on a given-up intent).

Every intent ends with exactly one outcome (a refusal, or a signed transaction), none that was
refused is on warden.txs.signed, and the agent's nonce on Anvil counts only what was signed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

from aiokafka.structs import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import audit_events_of
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected, SignedTransaction
from schemas.stages import Stage
from sdk.client import Client, Outcome, new_intent, wait_outcomes
from tests.support import direct_approvals, make_agent, read_topic
from tests.up_support import chain_nonce

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "agent-outage"
BEFORE, DURING = 2, 6  # intents of the burst submitted before the node stops, and while it is stopped
WATCHED = (topics.INTENTS_APPROVED, topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.AUDIT_EVENTS)


def _intent(key: Ed25519PrivateKey) -> TransactionIntent:
    # No fees named: the worker asks the node for them, so its judgement waits while the node is stopped.
    return new_intent(key, agent_id=AGENT, chain="anvil", to=DEST, value="0.0001", gas_limit=21000, broadcast=True)


async def _no_outcome_published(
    settings: Settings, start: dict[TopicPartition, int], ids: set[str], deadline_s: float = 150
) -> None:
    """Until the signer has refused one of ``ids`` NO_OUTCOME: the give-up."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        for raw in await read_topic(settings, topics.INTENTS_REJECTED, idle_polls=2, start=start):
            record = IntentRejected.from_bytes(raw)
            if record.intent_id in ids and record.code == Code.NO_OUTCOME:
                return
        await asyncio.sleep(1)
    raise AssertionError(f"no intent was given up NO_OUTCOME within {deadline_s} s")


async def _until(done: Callable[[], Awaitable[bool]], within_s: float) -> None:
    """Until ``done()`` is true, or ``within_s`` have passed: a wait for what may not come (the
    assertions after it say whether it did)."""
    until = time.monotonic() + within_s
    while time.monotonic() < until and not await done():
        await asyncio.sleep(0.5)


async def _discarded(settings: Settings, start: dict[TopicPartition, int], ids: set[str]) -> bool:
    """Whether a judgement of one of ``ids`` has been discarded (`intent.judgement_discarded`)."""
    return any(
        event.action == AuditAction.INTENT_JUDGEMENT_DISCARDED and event.intent_id in ids
        for raw in await read_topic(settings, topics.AUDIT_EVENTS, idle_polls=2, start=start)
        for event in audit_events_of(raw)
    )


async def _answers(settings: Settings, start: dict[TopicPartition, int], ids: set[str]) -> Counter[str]:
    """Records about each of ``ids`` on warden.intents.rejected and warden.txs.signed."""
    found: Counter[str] = Counter()
    for topic, parse in ((topics.INTENTS_REJECTED, IntentRejected), (topics.TXS_SIGNED, SignedTransaction)):
        for raw in await read_topic(settings, topic, idle_polls=2, start=start):
            if (intent_id := parse.from_bytes(raw).intent_id) in ids:
                found[intent_id] += 1
    return found


async def _answered_each(
    settings: Settings, start: dict[TopicPartition, int], ids: set[str], before: Counter[str]
) -> bool:
    now = await _answers(settings, start, ids)
    return all(now[i] > before[i] for i in ids)


def _outage(fresh_stack: Callable[..., LocalStack], stopped_s: float | None) -> None:
    """A burst with the node stopped in its middle: continued at the give-up (``stopped_s`` None)
    or after ``stopped_s`` seconds. Then every intent is checked for one outcome."""
    stack = fresh_stack()
    settings = stack.settings
    anvil = stack.processes["anvil"].pid  # its own process group (started in a new session)

    async def scenario() -> tuple[list[TransactionIntent], dict[str, Outcome], dict[str, list[bytes]], int, int]:
        key, address, policy = await make_agent(settings, AGENT, tx_to_allowlist=(DEST,))
        nonce_before = await chain_nonce(settings, address)
        start = await end_offsets(settings, WATCHED)
        burst = [_intent(key) for _ in range(BEFORE + DURING)]
        async with Client(settings) as client:
            for intent in burst[:BEFORE]:
                await client.submit(intent)
            await client.flush()
            os.killpg(anvil, signal.SIGSTOP)
            try:
                for intent in burst[BEFORE:]:
                    await client.submit(intent)
                await client.flush()
                if stopped_s is None:
                    await _no_outcome_published(settings, start, {i.intent_id for i in burst})
                else:
                    await asyncio.sleep(stopped_s)
            finally:
                os.killpg(anvil, signal.SIGCONT)
        outcomes = await wait_outcomes(settings, burst, 180, start)
        # A judgement that was in flight at the give-up finishes once the node answers, and a
        # second outcome would follow it within seconds (an approval, then its signature): waited
        # for until it ends discarded, or 15 s.
        ids = {intent.intent_id for intent in burst}
        await _until(lambda: _discarded(settings, start, ids), 15)
        # The attack: every intent given up, copied by a keyless topic writer into an approval.
        given_up = [i for i in burst if getattr(outcomes[i.intent_id], "code", None) == Code.NO_OUTCOME]
        copied = {intent.intent_id for intent in given_up}
        before = await _answers(settings, start, copied)
        await direct_approvals(settings, *[(intent, policy) for intent in given_up])
        # Waited for until the signer has answered each copy (a refusal more, or a signature), or 10 s.
        await _until(lambda: _answered_each(settings, start, copied, before), 10)
        read = {topic: await read_topic(settings, topic, start=start) for topic in WATCHED}
        return burst, outcomes, read, nonce_before, await chain_nonce(settings, address)

    burst, outcomes, read, nonce_before, nonce_after = asyncio.run(scenario())
    ids = {intent.intent_id for intent in burst}
    assert set(outcomes) == ids, f"{len(ids - set(outcomes))} of {len(ids)} intents without an outcome"

    # Each intent's refusals (a redelivery may publish the same bytes again: one outcome), what the
    # worker approved, and what the signer signed.
    said: dict[str, set[tuple[Stage, Code, bytes]]] = defaultdict(set)
    refused: dict[str, Code] = {}
    for raw in read[topics.INTENTS_REJECTED]:
        rejected = IntentRejected.from_bytes(raw)
        if rejected.intent_id in ids:
            said[rejected.intent_id].add((rejected.stage, rejected.code, raw))
            refused[rejected.intent_id] = rejected.code
    approved = {a.intent_id for a in map(IntentApproved.from_bytes, read[topics.INTENTS_APPROVED])} & ids
    signed = {
        record.intent_id: record
        for record in map(SignedTransaction.from_bytes, read[topics.TXS_SIGNED])
        if record.intent_id in ids
    }
    several = {i: sorted(str(s)[:100] for s in said[i]) for i in ids if len(said[i]) > 1}
    assert not several, f"{len(several)} of {len(ids)} intents were refused more than once: {several}"
    # The worker approves nothing it refused (a signer's refusal of an approval is its one outcome).
    judged_twice = approved & {i for i in said for stage, _, _ in said[i] if stage != Stage.SIGNING}
    assert not judged_twice, judged_twice
    assert Code.NO_OUTCOME in refused.values(), refused  # the watch gave intents up while the node was stopped
    given_up = {i for i, code in refused.items() if code == Code.NO_OUTCOME}
    assert all(stage == Stage.SIGNING for i in given_up for stage, _, _ in said[i])  # the signer's word
    assert not set(refused) & set(signed), {i: refused[i] for i in set(refused) & set(signed)}
    # Anvil holds what was signed and nothing else: the intents approved before the stop.
    mined = [i for i, record in signed.items() if record.status == "mined"]
    assert nonce_after - nonce_before == len(mined) == len(ids) - len(refused), (refused, signed)
    # The race the fix closes was run: a judgement in flight at the give-up finished after it and was discarded.
    discarded = [
        event
        for raw in read[topics.AUDIT_EVENTS]
        for event in audit_events_of(raw)
        if event.action == AuditAction.INTENT_JUDGEMENT_DISCARDED and event.intent_id in ids
    ]
    assert discarded, f"no judgement was in flight at the give-up; see {settings.log_dir}"
    assert all(event.details["decided"] == "abandoned" for event in discarded), discarded


def test_a_node_stopped_mid_burst_and_back_at_the_give_up_leaves_one_outcome_and_signs_no_refusal(
    fresh_stack: Callable[..., LocalStack],
) -> None:
    _outage(fresh_stack, None)


def test_a_node_stopped_for_90_s_leaves_one_refusal_per_intent(fresh_stack: Callable[..., LocalStack]) -> None:
    _outage(fresh_stack, 90)
