"""Terminal outcomes on the real stack: a dead letter ends an intent, redelivery never
re-publishes what the worker cannot read, and nothing one record does stops the worker.

What each test guards against: a 1 MB record dead-lettered and then re-published by the
redelivery task, whose send raises MessageSizeTooLargeError and must not take the worker (and
with it the whole stack) down; a record with an intent_id but an unusable agent_id re-published
every grace period forever, a dead letter each time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from runtime.clock import utcnow
from runtime.kafka import end_offsets
from runtime.trust import service_key
from schemas import topics
from schemas.codes import Code
from schemas.outcomes import DeadLetter, IntentRejected, SignedTransaction
from schemas.stages import Stage
from sdk.client import Client, Outcome, new_intent, wait_outcomes
from streams.redelivery import overdue_record
from tests.support import make_agent, read_topic

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
GRACE_S = 10  # streams.redelivery's grace period on the shared stack


def test_oversize_and_unusable_records_are_dead_lettered_once_and_the_worker_keeps_going(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    agent = f"agent-poison-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    template = orjson.loads(new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.1").to_bytes())
    huge = orjson.dumps(
        {
            **template,
            "intent_id": f"i-huge-{os.urandom(4).hex()}",
            "data": "0x" + "ab" * (settings.max_record_bytes // 2 + 1_000),
        }
    )
    listed = orjson.dumps({**template, "intent_id": f"i-listed-{os.urandom(4).hex()}", "agent_id": ["a", "b"]})
    missing = orjson.dumps(
        {k: v for k, v in template.items() if k != "agent_id"} | {"intent_id": f"i-noagent-{os.urandom(4).hex()}"}
    )
    poison = {"huge": huge, "listed": listed, "missing": missing}
    assert settings.max_record_bytes < len(huge) < settings.max_record_bytes + 4_096
    start = run(end_offsets(settings, (topics.DLQ, topics.INTENTS_REJECTED, topics.TXS_SIGNED)))

    async def attack() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.broker, acks="all", max_request_size=settings.max_message_bytes
        )
        await producer.start()
        try:
            for raw in poison.values():
                await (await producer.send(topics.INTENTS_SUBMITTED, raw, key=agent.encode()))
        finally:
            await producer.stop()
        # Two and a half grace periods: long enough for two rounds of redelivery, had there been any.
        await asyncio.sleep(GRACE_S * 2.5)

    run(attack())
    assert stack.processes["streams"].proc.poll() is None, "the streams worker died"
    letters = [DeadLetter.from_bytes(v) for v in run(read_topic(settings, topics.DLQ, start=start))]
    digests = {name: hashlib.sha256(raw).hexdigest() for name, raw in poison.items()}
    per_payload = {name: [d for d in letters if d.payload_sha256 == digest] for name, digest in digests.items()}
    assert {name: len(found) for name, found in per_payload.items()} == {"huge": 1, "listed": 1, "missing": 1}
    (big,) = per_payload["huge"]
    # By reference: its digest, its size and its first bytes, never the whole record.
    assert big.payload_bytes == len(huge) and len(base64.b64decode(big.payload_b64)) == settings.max_record_bytes
    assert f"exceeds the {settings.max_record_bytes}-byte limit" in big.reason

    # The worker still decides, and the signer still signs.
    after = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.1")

    async def honest() -> dict[str, Outcome]:
        begin = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        async with Client(settings) as client:
            await client.submit(after)
        return await wait_outcomes(settings, [after], 120, begin)

    assert isinstance(run(honest())[after.intent_id], SignedTransaction)


def test_only_the_worker_gives_an_intent_up_and_a_late_copy_gets_the_same_answer(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """A topic writer's records on warden.intents.overdue (the worker reads it) and
    warden.intents.abandoned (the signer does) decide nothing: a copy of an agent's intent written
    there before the intent (were it believed, the intent would be decided NO_OUTCOME, and the
    real one answered the same) and an intent of its own under an id the agent will use (computed
    from an idempotency key: the agent's intent was refused INTENT_ID_REUSED) are dead-lettered,
    and both real intents are signed. What the worker's redelivery watch writes after its last
    attempt (`overdue_record`, signed with the worker's key, done here by hand) has the worker give
    the intent up and the signer refuse it NO_OUTCOME, and the lost intent turning up after all
    gets the same answer."""
    settings = stack.settings
    agent = f"agent-abandoned-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    fields: dict[str, Any] = dict(agent_id=agent, chain="anvil", to=DEST, value="0.1")
    copied = new_intent(key, **fields)
    order = f"order-{os.urandom(3).hex()}"
    ordered = new_intent(key, **fields, idempotency_key=order)
    taken = new_intent(Ed25519PrivateKey.generate(), **fields, idempotency_key=order, intent_id=ordered.intent_id)
    lost = new_intent(key, **fields)

    async def scenario() -> tuple[dict[str, Outcome], list[DeadLetter], dict[str, Outcome], list[bytes]]:
        begin = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.DLQ))
        async with Client(settings) as client:
            for forged in (copied, taken):
                for topic in (topics.INTENTS_OVERDUE, topics.INTENTS_ABANDONED):
                    await (await client.send(topic, agent, forged.to_bytes()))
            await client.submit(copied)
            await client.submit(ordered)
        real = await wait_outcomes(settings, [copied, ordered], 60, begin)
        letters = [DeadLetter.from_bytes(v) for v in await read_topic(settings, topics.DLQ, start=begin)]
        begin = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        overdue = overdue_record(
            lost.to_bytes(), settings.max_record_bytes, 3, utcnow(), service_key(settings, "worker")
        )
        async with Client(settings) as client:
            await (await client.send(topics.INTENTS_OVERDUE, agent, overdue))
        first = await wait_outcomes(settings, [lost], 120, begin)
        async with Client(settings) as client:
            await client.submit(lost)  # the lost record turns up after all
        await asyncio.sleep(2)
        return real, letters, first, await read_topic(settings, topics.TXS_SIGNED, start=begin)

    real, letters, first, signed = run(scenario())
    assert {i: type(o).__name__ for i, o in real.items()} == {
        copied.intent_id: "SignedTransaction",
        ordered.intent_id: "SignedTransaction",
    }
    # Each forgery is dead-lettered by the reader of its topic: the worker, and the signer.
    refused = sorted(
        (orjson.loads(base64.b64decode(d.payload_b64))["intent_id"], d.source_topic, d.signed_by)
        for d in letters
        if f"invalid {'IntentOverdue' if d.source_topic == topics.INTENTS_OVERDUE else 'IntentAbandoned'}" in d.reason
    )
    readers = [
        (topics.INTENTS_ABANDONED, service_key(settings, "signer")[0]),
        (topics.INTENTS_OVERDUE, service_key(settings, "worker")[0]),
    ]
    assert refused == sorted((i, t, w) for i in (copied.intent_id, taken.intent_id) for t, w in readers), refused
    rejected = first[lost.intent_id]
    assert isinstance(rejected, IntentRejected) and (rejected.stage, rejected.code) == (Stage.SIGNING, Code.NO_OUTCOME)
    assert not [s for s in signed if orjson.loads(s)["intent_id"] == lost.intent_id]


def test_an_intent_the_worker_rejected_keeps_its_one_outcome_when_the_watch_finds_it_overdue(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """A Kafka node that stopped held the worker's rejections back from the redelivery watch past
    its 40 s: the watch gave 57 rejected intents up, and the signer, which never reads a worker's
    rejections, refused each NO_OUTCOME, two outcomes an intent. The watch's word is now a request
    to the worker that owns the partition, which knows what it rejected: an intent rejected, then
    found overdue (`overdue_record`, signed with the worker's key, as the watch signs it), keeps its
    one rejection, and the signer hears nothing of it."""
    settings = stack.settings
    agent = f"agent-overdue-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    over = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="2")

    async def scenario() -> tuple[Outcome, list[IntentRejected], list[DeadLetter]]:
        begin = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.INTENTS_ABANDONED, topics.DLQ))
        async with Client(settings) as client:
            await client.submit(over)
        told = (await wait_outcomes(settings, [over], 60, begin))[over.intent_id]
        overdue = overdue_record(
            over.to_bytes(), settings.max_record_bytes, 3, utcnow(), service_key(settings, "worker")
        )
        async with Client(settings) as client:
            await (await client.send(topics.INTENTS_OVERDUE, agent, overdue))
            await client.submit(over)  # and a late copy: the same rejection again, nothing else
        await asyncio.sleep(8)
        refusals = [
            IntentRejected.from_bytes(v) for v in await read_topic(settings, topics.INTENTS_REJECTED, start=begin)
        ]
        abandoned = await read_topic(settings, topics.INTENTS_ABANDONED, start=begin)
        assert not [a for a in abandoned if orjson.loads(a)["intent"]["intent_id"] == over.intent_id]
        letters = [DeadLetter.from_bytes(v) for v in await read_topic(settings, topics.DLQ, start=begin)]
        return told, [r for r in refusals if r.intent_id == over.intent_id], letters

    told, refusals, letters = run(scenario())
    assert isinstance(told, IntentRejected) and told.code == Code.VALUE_OVER_CAP, told
    assert {r.to_bytes() for r in refusals} == {told.to_bytes()}, [(r.stage, r.code) for r in refusals]
    mine = [d for d in letters if over.intent_id.encode() in base64.b64decode(d.payload_b64)]
    assert mine == [], [d.reason for d in mine]
