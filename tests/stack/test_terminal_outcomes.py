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
from streams.redelivery import abandoned_record
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
    """A topic writer's records on warden.intents.abandoned decide nothing: a copy of an agent's
    intent written there before the intent (were it believed, the intent would be decided
    NO_OUTCOME, and the real one answered the same) and an intent of its own under an id the agent will use (computed from an
    idempotency key: the agent's intent was refused INTENT_ID_REUSED) are dead-lettered, and both
    real intents are signed. What the worker's redelivery task writes after its last attempt
    (`abandoned_record`, signed with the worker's key, done here by hand) is refused NO_OUTCOME by
    the signer, and the lost intent turning up after all gets the same answer."""
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
                await (await client.send(topics.INTENTS_ABANDONED, agent, forged.to_bytes()))
            await client.submit(copied)
            await client.submit(ordered)
        real = await wait_outcomes(settings, [copied, ordered], 60, begin)
        letters = [DeadLetter.from_bytes(v) for v in await read_topic(settings, topics.DLQ, start=begin)]
        begin = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        given_up = abandoned_record(
            lost.to_bytes(), settings.max_record_bytes, 3, utcnow(), service_key(settings, "worker")
        )
        async with Client(settings) as client:
            await (await client.send(topics.INTENTS_ABANDONED, agent, given_up))
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
    # Each forgery is dead-lettered by both readers of the topic: the worker and the signer.
    refused = sorted(
        (orjson.loads(base64.b64decode(d.payload_b64))["intent_id"], d.signed_by)
        for d in letters
        if d.source_topic == topics.INTENTS_ABANDONED and "invalid IntentAbandoned" in d.reason
    )
    writers = sorted(service_key(settings, role)[0] for role in ("signer", "worker"))
    assert refused == sorted((i, w) for i in (copied.intent_id, taken.intent_id) for w in writers), refused
    rejected = first[lost.intent_id]
    assert isinstance(rejected, IntentRejected) and (rejected.stage, rejected.code) == (Stage.SIGNING, Code.NO_OUTCOME)
    assert not [s for s in signed if orjson.loads(s)["intent_id"] == lost.intent_id]
