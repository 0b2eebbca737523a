"""The streams worker's changelog (``warden.streams.changelog``) against a hostile topic writer.

The worker keeps each agent's policy, decisions and idempotency keys in tables it restores from
this topic (`streams.state`, `runtime.owner`), and a policy in those tables is used as it stands,
not checked again against the admins' signatures. So write access to the topic must not be a way
to put a policy there: a record counts only if a pinned worker key signed it for its partition and
it follows the last record that held. Here a writer with no worker key appends, at the head of the
agent's partition, a record putting a policy that allows the destination the admins' policy
forbids, and claims to be the worker; the worker is killed and restarted, so it restores from the
log. The intent to that destination must still be refused by the allowlist, the worker must name
the forged record as void, and an allowed intent still goes through."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets, partition_of
from schemas import topics
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedTransaction
from schemas.stages import Stage
from sdk.client import Client, Outcome, new_intent, wait_outcomes
from streams.state import WORKER_LOG
from tests.support import make_agent

AGENT = "agent-changelog-forger"
ALLOWED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
FORBIDDEN = "0x000000000000000000000000000000000000bad0"

pytestmark = pytest.mark.kafka  # a worker killed and restored: on the broker `warden up` runs (tests/stack/conftest.py)


def _intent(key: Ed25519PrivateKey, to: str) -> TransactionIntent:
    return new_intent(
        key,
        agent_id=AGENT,
        chain="anvil",
        to=to,
        value="0.0001",
        max_fee_per_gas=2 * 10**9,
        max_priority_fee_per_gas=10**9,
        gas_limit=21000,
    )


async def _last_offset(settings: Settings, tp: TopicPartition) -> int:
    """The offset of the partition's last record, read (not the end the broker lists)."""
    reader = AIOKafkaConsumer(bootstrap_servers=settings.broker, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        last, quiet = -1, 0
        while quiet < 5:
            got = (await reader.getmany(tp, timeout_ms=300)).get(tp, [])
            quiet = 0 if got else quiet + 1
            last = max([last] + [m.offset for m in got])
        return last
    finally:
        await reader.stop()


def test_a_record_no_worker_signed_puts_nothing_in_the_workers_tables(fresh_stack: Callable[..., LocalStack]) -> None:
    stack = fresh_stack()
    settings = stack.settings
    partition = partition_of(AGENT)

    async def scenario() -> tuple[Outcome, Outcome, Outcome, int]:
        key, _, policy = await make_agent(settings, AGENT, tx_to_allowlist=(ALLOWED,))
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        before = _intent(key, FORBIDDEN)
        async with Client(settings) as client:
            await client.submit(before)
        first = (await wait_outcomes(settings, [before], 60, start))[before.intent_id]
        # The forger reads the partition's head (the topic is readable to it) and follows it.
        head = await _last_offset(settings, TopicPartition(topics.STREAMS_CHANGELOG, partition))
        permissive = policy.model_copy(update={"tx_to_allowlist": [ALLOWED, FORBIDDEN]})
        forged = WORKER_LOG.seal(
            partition=partition,
            prev=head,
            writer=settings.worker_id,  # the worker's name, not its key
            writes=[("put", ("policies", AGENT, permissive.to_bytes().decode()))],
            key=Ed25519PrivateKey.generate(),
        )
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
        await producer.start()
        try:
            forged_at = (await producer.send_and_wait(topics.STREAMS_CHANGELOG, forged, partition=partition)).offset
        finally:
            await producer.stop()
        stack.kill("streams", signal.SIGKILL)
        await asyncio.to_thread(stack.start_service, "streams", "streams.topology")
        after, allowed = _intent(key, FORBIDDEN), _intent(key, ALLOWED)
        async with Client(settings) as client:
            await client.submit(after)
            await client.submit(allowed)
        outcomes = await wait_outcomes(settings, [after, allowed], 90, start, final=False)
        return first, outcomes[after.intent_id], outcomes[allowed.intent_id], forged_at

    first, after, allowed, forged_at = asyncio.run(scenario())
    assert isinstance(first, IntentRejected) and first.stage == Stage.ALLOWLIST, first
    assert isinstance(after, IntentRejected) and after.stage == Stage.ALLOWLIST, (
        f"the forged policy was taken from the changelog: {after!r}; see {settings.log_dir}"
    )
    assert isinstance(allowed, SignedTransaction), allowed
    log = (settings.log_dir / "streams.log").read_text(errors="replace")
    assert f"{topics.STREAMS_CHANGELOG} partition {partition} offset {forged_at} is void" in log, settings.log_dir
    assert "the signature is not streams-0's" in log
