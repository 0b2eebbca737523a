"""Where a reader starts reading, on the real broker.

- The worker's seek back to committed offsets (`runtime.kafka.seek_to_committed`): what a worker
  decided on a partition whose changelog record did not hold is decided again from the committed
  offset, and a partition where the group never committed must go back to its beginning, or what
  was read there and not published is never read again (an admin's policy, or an intent).
- The ends a reader takes for a partition's end (`runtime.kafka.fetched_ends`, the ledger's and
  the lag's): a partition's last batch whole.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import fetched_ends, seek_to_committed


@contextlib.asynccontextmanager
async def _group_reading(settings: Settings, names: tuple[str, ...], records: int) -> AsyncIterator[AIOKafkaConsumer]:
    """A started group consumer subscribed to new one-partition topics of ``records`` records each."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
    await producer.start()
    try:
        for name in names:
            for n in range(records):
                await producer.send_and_wait(name, f"{name}/{n}".encode(), partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=settings.broker,
        group_id=f"seek-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _read(consumer: AIOKafkaConsumer, count: int) -> list[bytes]:
    """``count`` records, or fewer if the topics stay quiet for a few polls."""
    got: list[bytes] = []
    quiet = 0
    while len(got) < count and quiet < 5:
        batch = await consumer.getmany(timeout_ms=500, max_records=count - len(got))
        quiet = 0 if batch else quiet + 1
        got += [record.value for records in batch.values() for record in records]
    return sorted(got)


def test_a_partition_with_nothing_committed_is_read_again_from_its_beginning(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    stream, changelog = f"seek-stream-{uuid.uuid4().hex[:8]}", f"seek-changelog-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[bytes], dict[TopicPartition, int | None], list[bytes], list[bytes]]:
        async with _group_reading(stack.settings, (stream, changelog), 3) as consumer:
            first = await _read(consumer, 6)  # read, then not published (a record that did not hold)
            alone = await consumer.seek_to_committed(TopicPartition(stream, 0))
            await seek_to_committed(consumer, [TopicPartition(stream, 0)])
            again = await _read(consumer, 6)
            # One committed: back to it, not to the beginning.
            await consumer.commit({TopicPartition(stream, 0): 2})
            await seek_to_committed(consumer, [TopicPartition(stream, 0)])
            after_commit = await _read(consumer, 6)
            return first, alone, again, after_commit

    first, alone, again, after_commit = run(scenario())
    assert len(first) == 6
    assert set(alone.values()) == {None}  # nothing committed: aiokafka alone seeks nowhere
    assert again == [f"{stream}/{n}".encode() for n in range(3)]  # only the partition sought back
    assert after_commit == [f"{stream}/2".encode()]


def test_a_partitions_end_counts_every_record_of_its_last_batch(stack: LocalStack, run: Callable[..., Any]) -> None:
    topic = f"ends-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[int], dict[TopicPartition, int]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.settings.broker)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 2, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=stack.settings.broker, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"alone", partition=0)
            # Queued together: one produce request, one batch (as a worker's lot of outcomes goes).
            sent = [await producer.send(topic, b"lot", partition=0) for _ in range(5)]
            await producer.flush()
            offsets = [(await ack).offset for ack in sent]
        finally:
            await producer.stop()
        reader = AIOKafkaConsumer(bootstrap_servers=stack.settings.broker, enable_auto_commit=False)
        await reader.start()
        try:
            ends = await fetched_ends(reader, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
        finally:
            await reader.stop()
        return offsets, ends

    offsets, ends = run(scenario())
    assert offsets == [1, 2, 3, 4, 5]
    assert ends == {TopicPartition(topic, 0): 6, TopicPartition(topic, 1): 0}
