"""Kafka helpers every Warden process uses: read topics from a position, ask where they end,
and publish what a Kafka-free processor emitted."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from runtime.config import Settings
from schemas import topics
from schemas.auth import AuditSigner
from schemas.emit import Emit, join_audits

log = logging.getLogger("warden.kafka")

# How long a Warden client waits for a broker's answer to one request on Apache Kafka before it
# takes that node for gone: the request fails, the client asks another node where the partition
# lives now and sends there. aiokafka's default, 40 s, kept every client on a node that stopped
# answering (SIGSTOP, a JVM in a long pause) for 40 s after the cluster had moved its partitions
# to the others (~9 s: the controllers fence a node silent for `broker.session.timeout.ms`), and the
# partitions of a request in flight to it wait behind that request. Longer than any answer a
# healthy broker may hold back: a fetch's wait (`KAFKA_FETCH_WAIT_MS`, 5 s) and an acks=all write's
# (its followers' copies; up to the ~9 s in which a stopped follower is dropped from the in-sync
# replicas).
REQUEST_TIMEOUT_MS = 15_000
# How often a client asks the cluster where each partition lives when nothing failed: a partition
# whose leader moved is found within this, not only once a request to the old leader fails
# (aiokafka's default: 5 minutes).
METADATA_MAX_AGE_MS = 10_000


def client_options(settings: Settings) -> dict[str, int]:
    """What every Warden producer and consumer is given besides its own options: on Apache Kafka,
    `REQUEST_TIMEOUT_MS` and `METADATA_MAX_AGE_MS`, so that a client follows a partition to its new
    leader within seconds of the cluster moving it. The embedded broker is one node, with nowhere
    to move a partition to: there aiokafka's defaults stand."""
    if not settings.on_kafka:
        return {}
    return {"request_timeout_ms": REQUEST_TIMEOUT_MS, "metadata_max_age_ms": METADATA_MAX_AGE_MS}


def partition_of(key: str, count: int = topics.PARTITIONS) -> int:
    """The partition a record keyed ``key`` lands in: the Java client's default partitioner, which
    aiokafka uses too, so a reader can tell where an agent's records belong."""
    return _key_hash(key.encode()) % count


# Records are keyed by agent id, a few keys for many records, and aiokafka's murmur2 is pure
# Python: a signer hashes each intent's key a dozen times (its partition checks and every send).
# Bounded, so keys a topic writer makes up cannot grow it without end.
@functools.lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    hashed: int = murmur2(key)
    return hashed & 0x7FFFFFFF


class KeyedPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as the Java client), with
    each key's hash remembered (`_key_hash`). A record without a key goes where the default puts it."""

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            chosen: int = DefaultPartitioner()(key, all_partitions, available)
            return chosen
        return all_partitions[_key_hash(key) % len(all_partitions)]


def quiet_ms(fetch_max_wait_ms: int) -> int:
    """How long no record must come before a reader may call a partition read to its end: longer
    than two fetches the broker may hold, or "nothing came" is not "nothing there"."""
    return 2 * fetch_max_wait_ms + 200


async def partition_ids(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions ``topic`` has (none if it does not exist), asked of the broker. A consumer's
    own metadata names only the topics it tracks, and `consumer.topics()` keeps the answer it gets
    to itself; Apache Kafka answers a request for no topic in particular with none (the embedded
    broker with all), so the answer of a request for every topic is read here."""
    known = consumer.partitions_for_topic(topic)
    if known:
        return set(known)
    cluster = await consumer._client.fetch_all_metadata()  # aiokafka keeps no public way to this answer
    return set(cluster.partitions_for_topic(topic) or ())


async def partitions(consumer: AIOKafkaConsumer, topic_names: tuple[str, ...]) -> list[TopicPartition]:
    """The partitions each topic really has (internal topics may have fewer than Warden's)."""
    parts = []
    for name in topic_names:
        known = await partition_ids(consumer, name) or set(range(topics.PARTITIONS))
        parts += [TopicPartition(name, p) for p in sorted(known)]
    return parts


def keyed_partitions(parts: list[TopicPartition], keys: Collection[str]) -> list[TopicPartition]:
    """Of ``parts``, the partitions a record with one of ``keys`` lands in, by each topic's own
    partition count (as the producers' partitioner counts them)."""
    counts: dict[str, int] = {}
    for tp in parts:
        counts[tp.topic] = counts.get(tp.topic, 0) + 1
    wanted = {(topic, partition_of(key, count)) for topic, count in counts.items() for key in keys}
    return [tp for tp in parts if (tp.topic, tp.partition) in wanted]


async def listed_ends(consumer: AIOKafkaConsumer, parts: Collection[TopicPartition]) -> dict[TopicPartition, int]:
    """``consumer.end_offsets(parts)``, asked again for as long as the broker leaves it unanswered.

    A partition a broker is still loading (Kafka lists a new topic's leaders before its logs are
    made: 200 partitions took 40 s on a busy 2-core machine) or whose leader is moving answers
    no ListOffsets until it is ready, and aiokafka gives up after its request timeout. A process
    starting then must wait for the partition, not exit: it says so, and asks again."""
    asked = time.monotonic()
    while True:
        try:
            ends: dict[TopicPartition, int] = await consumer.end_offsets(list(parts))
            return ends
        except KafkaTimeoutError:
            log.warning(
                "the broker has not listed the ends of %d partition(s) for %.0f s (a partition still loading, "
                "or its leader moving); asking again",
                len(parts),
                time.monotonic() - asked,
            )


async def fetched_ends(
    consumer: AIOKafkaConsumer, parts: Collection[TopicPartition], timeout_s: float = 30.0
) -> dict[TopicPartition, int]:
    """Each partition's end (its high watermark) as a fetch reports it. ``consumer``: a started one
    subscribed to nothing (it may name a group, to ask for committed offsets), which this assigns
    ``parts`` to and seeks.

    Not what ListOffsets answers alone: Tansu answers it with one past the first offset of the
    partition's last batch (five records sent in one batch at offsets 1-5: 2, where a fetch says
    6), and a reader that stops there misses the rest of that batch: a worker's table recovery
    once stopped there, and decided again the last lot of decisions of the partition's previous
    owner. A fetch from
    the record before the listed end returns that batch, and the partition's true end with it."""
    parts = list(parts)
    if not parts:
        return {}
    listed = await listed_ends(consumer, parts)
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, max(listed[tp] - 1, 0))
    deadline = time.monotonic() + timeout_s
    while any(consumer.highwater(tp) is None for tp in parts):
        if time.monotonic() > deadline:
            missing = [f"{tp.topic}/{tp.partition}" for tp in parts if consumer.highwater(tp) is None]
            raise TimeoutError(f"no fetch answered for {missing} within {timeout_s:.0f} s; is the broker up?")
        await consumer.getmany(*parts, timeout_ms=50, max_records=1)
    return {tp: max(consumer.highwater(tp), listed[tp]) for tp in parts}


async def end_offsets(settings: Settings, topic_names: tuple[str, ...]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker, enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        return await listed_ends(consumer, await partitions(consumer, topic_names))
    finally:
        await consumer.stop()


async def group_lag(settings: Settings, group: str, topic_names: tuple[str, ...]) -> dict[str, int]:
    """Per topic: records past the group's committed offsets (from the beginning where it
    committed none)."""
    # A member of the group that never subscribes: it only asks for committed offsets, and
    # fetches for the ends (a short fetch wait: an empty partition answers at once).
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=5000,
        fetch_max_wait_ms=10,
    )
    try:
        await consumer.start()
        parts = await partitions(consumer, topic_names)
        starts = await consumer.beginning_offsets(parts)
        ends = await fetched_ends(consumer, parts)
        # One request for every partition's committed offset: `consumer.committed` asks once a
        # partition, and a worker asks every LAG_EVERY_S (aiokafka keeps no public way to this).
        committed = await consumer._coordinator.fetch_committed_offsets(parts)
        per_topic: dict[str, int] = {}
        for tp in parts:
            done = committed.get(tp)
            behind = ends[tp] - (starts[tp] if done is None else done.offset)
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, behind)
        return per_topic
    finally:
        await consumer.stop()


async def follow(
    settings: Settings,
    topic_names: tuple[str, ...],
    start: dict[TopicPartition, int] | None = None,
    caught_up: asyncio.Event | None = None,
    fetch_max_wait_ms: int | None = None,
    keys: Collection[str] | None = None,
) -> AsyncIterator[tuple[str, bytes]]:
    """Every record on the topics from ``start`` (default: the beginning), as (topic, value),
    forever. Yields ("", b"") when nothing arrived for 200 ms, so callers can check deadlines.
    ``caught_up`` is set once every record that was on the topics when following began has
    been yielded (for a process that must know the whole topic before it acts).
    ``fetch_max_wait_ms``: ``settings.fetch_wait_ms`` for a reader someone waits on (a client's
    outcomes); unset (a background reader), aiokafka's 500 on the embedded broker, which spares it
    empty fetches, and ``settings.fetch_wait_ms`` on Apache Kafka, which answers a waiting fetch as
    soon as a record arrives.
    ``keys``: read only the partitions records with these keys land in (an agent's client
    waiting on its own outcomes), not every agent's records; other keys sharing those
    partitions are still yielded."""
    async for record in follow_records(settings, topic_names, start, caught_up, fetch_max_wait_ms, keys):
        yield ("", b"") if record is None else (record.topic, record.value)


async def follow_records(
    settings: Settings,
    topic_names: tuple[str, ...],
    start: dict[TopicPartition, int] | None = None,
    caught_up: asyncio.Event | None = None,
    fetch_max_wait_ms: int | None = None,
    keys: Collection[str] | None = None,
) -> AsyncIterator[ConsumerRecord | None]:
    """`follow`, yielding whole records (headers too), and None where it yields ("", b"").

    Caught up: every position reached the end listed when following began. On Apache Kafka that is
    enough (the listed end is the high watermark, every offset below it stored, and the position
    passes transaction markers and compacted offsets too). The embedded broker's listed end can
    trail its last record by far, so there a fetch must also have found nothing more for a quiet
    period (`quiet_ms`)."""
    if fetch_max_wait_ms is None:
        fetch_max_wait_ms = settings.fetch_wait_ms if settings.on_kafka else 500
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
        **client_options(settings),
    )
    await consumer.start()
    try:
        parts = await partitions(consumer, topic_names)
        if keys is not None:
            parts = keyed_partitions(parts, keys)
        # Listed before any fetch: Kafka answers a connection's requests in order, so a listing
        # asked while a fetch waits at the broker would wait as long.
        ends = await listed_ends(consumer, parts) if caught_up is not None else {}
        consumer.assign(parts)
        resume_at = start or {}
        from_start = [tp for tp in parts if tp not in resume_at]
        for tp in parts:
            if tp in resume_at:
                consumer.seek(tp, resume_at[tp])
        if from_start:
            # All at once: one partition at a time, each waited for the fetch of the ones before it
            # (the fetch wait at the broker, ~0.5 s), seconds for a reader of a few topics.
            await consumer.seek_to_beginning(*from_start)
        quiet_s = 0.0 if settings.on_kafka else quiet_ms(fetch_max_wait_ms) / 1000
        quiet_since = time.monotonic()
        while True:
            if (
                caught_up is not None  # ends is empty without it
                and ends
                and time.monotonic() - quiet_since >= quiet_s
                and all([await consumer.position(tp) >= end for tp, end in ends.items()])
            ):
                ends = {}
                caught_up.set()
            batch = await consumer.getmany(timeout_ms=200)
            if batch:
                quiet_since = time.monotonic()
            for messages in batch.values():
                for msg in messages:
                    yield msg
            if not batch:
                yield None
    finally:
        await consumer.stop()


async def read_to_quiet(
    settings: Settings,
    topic_names: tuple[str, ...],
    idle_polls: int = 5,
    start: dict[TopicPartition, int] | None = None,
) -> AsyncIterator[tuple[str, bytes]]:
    """Every record on the topics from ``start`` (default: the beginning) until they have been
    quiet for ``idle_polls`` polls of 200 ms: what a command that reads a topic's history needs."""
    idle = 0
    async for topic, value in follow(settings, topic_names, start):
        if topic:
            idle = 0
            yield topic, value
        else:
            idle += 1
            if idle >= idle_polls:
                return


# How many bytes of one partition's records a producer puts in one batch: 1 MiB, not aiokafka's
# 16 KiB. The embedded broker answers every fetch by listing each batch the
# partition holds (docs/known-limits.md), so a burst cut into 16 KiB batches made every later
# read dearer: 8,000 intents at once, five pairs alternating, broker 0.44-0.52 against 0.57-0.64
# ms of CPU an intent, 664-749 against 612-671 intents/s. It only ever fills with records that
# wait anyway (no linger: they pile up behind the request in flight), so a lone record still
# leaves alone, at once. Readers take a larger batch whole whatever their fetch size (Kafka's
# rule, and Tansu's).
PRODUCER_BATCH_BYTES = 1_048_576


def producer(settings: Settings, idempotent: bool | None = None) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica. No linger: someone waits on every record
    these producers send (an agent on its intent, a client on its outcome), and a lone record must
    not wait for company. Under load records still share requests and batches
    (`PRODUCER_BATCH_BYTES`): aiokafka keeps one request in flight per broker and batches what
    arrives meanwhile.

    ``idempotent`` (default: on Apache Kafka, `Settings.on_kafka`): a batch the broker stored but
    whose answer was lost is sent again and stored once, and a batch is sent again until a broker
    takes it, however long its partition's leader takes to move (aiokafka expires a batch of a
    producer that is not idempotent after one `request_timeout_ms`, so a record sent to a node that
    stopped answering failed instead of going to the new leader). The embedded broker refuses
    InitProducerId, so there (and from a client whose settings do not name the broker's storage) a
    record sent twice is absorbed downstream by its deterministic id. False for a producer that must
    never wait on the cluster's controllers, which hand out producer ids (the supervisor's)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.broker,
        acks="all",
        enable_idempotence=settings.on_kafka if idempotent is None else idempotent,
        linger_ms=0,
        max_request_size=settings.max_message_bytes,
        max_batch_size=PRODUCER_BATCH_BYTES,
        partitioner=KeyedPartitioner(),
        **client_options(settings),
    )


def service_producer(settings: Settings) -> AIOKafkaProducer:
    """A Warden service's producer: idempotent on Apache Kafka (`producer`). The stack starts its
    services with its own broker storage, so a service always knows which broker it writes to."""
    return producer(settings)


async def publish(
    producer: AIOKafkaProducer, emits: list[Emit], max_record_bytes: int, audit_signer: AuditSigner
) -> list[asyncio.Future[Any]]:
    """Queue every record, audit events joined per agent (`schemas.emit.join_audits`) and each
    audit record signed by ``audit_signer`` (the ledger believes no other); the returned futures
    resolve when the broker acknowledged each."""
    return [
        await producer.send(e.topic, e.value, key=e.key.encode(), headers=audit_headers(e, audit_signer))
        for e in join_audits(emits, max_record_bytes)
    ]


def audit_headers(emit: Emit, audit_signer: AuditSigner) -> list[tuple[str, bytes]] | None:
    """The headers ``emit`` goes on the bus with: a signature when it is an audit record."""
    return audit_signer.headers(emit.value) if emit.topic == topics.AUDIT_EVENTS else None


async def seek_to_committed(consumer: AIOKafkaConsumer, partitions: Collection[TopicPartition]) -> None:
    """Each of ``partitions`` (assigned to ``consumer``) sought back to its group's committed
    offset, and one with none committed (or 0) to its beginning, where the group's reset policy
    ("earliest") starts it. aiokafka's own ``seek_to_committed`` leaves a partition with none
    where it is: past what was read and not decided."""
    committed = await consumer.seek_to_committed(*partitions)
    never = [tp for tp, offset in committed.items() if not offset]
    if never:
        await consumer.seek_to_beginning(*never)
