"""The signer's offsets (`signer.main.Offsets`) on the real broker: committed between whole batches,
at most once per interval while records flow and at the first quiet poll, and never after a batch
failed, whose records are past the consumer's position without having been published."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.owner import Offsets


@contextlib.asynccontextmanager
async def _group_on_a_topic_of_its_own(
    settings: Settings, records: int
) -> AsyncIterator[tuple[AIOKafkaConsumer, TopicPartition]]:
    """A started group consumer on a new one-partition topic holding ``records`` records, and that partition."""
    topic, group = f"offsets-{uuid.uuid4().hex[:8]}", f"offsets-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
    await producer.start()
    try:
        for _n in range(records):
            await producer.send_and_wait(topic, b"x", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.broker,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        yield consumer, TopicPartition(topic, 0)
    finally:
        await consumer.stop()


async def _batch(consumer: AIOKafkaConsumer, count: int) -> int:
    got = 0
    while got < count:
        got += sum(len(v) for v in (await consumer.getmany(timeout_ms=2000, max_records=count - got)).values())
    return got


def test_offsets_are_committed_after_the_interval_or_at_a_quiet_poll(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    async def scenario() -> tuple[int | None, ...]:
        async with _group_on_a_topic_of_its_own(stack.settings, 6) as (consumer, tp):
            offsets = Offsets(consumer, every_s=1.0, now=100.0)
            await offsets.after_batch(await _batch(consumer, 2), now=100.4)
            held = await consumer.committed(tp)  # within the interval, records flowing: not yet
            await offsets.after_batch(await _batch(consumer, 2), now=101.0)
            at_interval = await consumer.committed(tp)
            await offsets.after_batch(await _batch(consumer, 2), now=101.5)
            flowing = await consumer.committed(tp)
            await offsets.after_batch(0, now=101.6)  # a poll that found nothing
            quiet = await consumer.committed(tp)
            return held, at_interval, flowing, quiet

    assert run(scenario()) == (None, 4, 4, 6)


def test_nothing_is_committed_once_a_batch_failed(stack: LocalStack, run: Callable[..., Any]) -> None:
    async def scenario() -> int | None:
        async with _group_on_a_topic_of_its_own(stack.settings, 4) as (consumer, tp):
            offsets = Offsets(consumer, every_s=1.0, now=100.0)
            await offsets.after_batch(await _batch(consumer, 2), now=100.1)
            await _batch(consumer, 2)  # read, and its batch raised: not signed, not published
            offsets.broken = True
            await offsets.after_batch(0, now=200.0)
            await offsets.commit(now=300.0)  # a rebalance's or a clean stop's commit
            committed: int | None = await consumer.committed(tp)
            return committed

    assert run(scenario()) is None
