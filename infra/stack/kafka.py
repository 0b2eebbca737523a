"""Apache Kafka for the durable stack: KRaft nodes, each a combined broker and controller, run from
the jars `./infra/dev.sh` resolves from Maven Central (infra/kafka/pom.xml) with the JDK.

A cluster lives under ``$WARDEN_HOME/kafka``: ``cluster.json`` (its id and its nodes' ports, fixed
at the first start, since a KRaft quorum knows its voters by address) and one directory per node,
formatted once. Each start writes the nodes' properties again, so a tuning change here takes effect
on the next `warden up`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.config import Settings
from schemas.errors import WardenError

REPO = Path(__file__).resolve().parents[2]
LIBS = REPO / ".venv" / "kafka" / "libs"
LOG4J_CONFIG = REPO / "infra" / "kafka" / "log4j2.properties"

# What a record batch adds to the largest record Warden sends (its header, the record's own
# header and key): Kafka refuses a batch above message.max.bytes, not a record.
BATCH_OVERHEAD_BYTES = 4096
# Each node's heap. Kafka keeps its log in the OS's page cache, not on the heap; what the heap
# holds is requests in flight, the log cleaner's dedupe buffer (`log.cleaner.dedupe.buffer.size`)
# and metadata, all small for one machine's stack.
HEAP = "384m"


class KafkaError(WardenError, RuntimeError):
    pass


@dataclass(frozen=True)
class KafkaNode:
    node_id: int
    port: int
    controller_port: int

    @property
    def name(self) -> str:
        """Its process name in the stack (its log, `warden up --json`): kafka-1, kafka-2, ..."""
        return f"kafka-{self.node_id}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class KafkaCluster:
    cluster_id: str
    nodes: tuple[KafkaNode, ...]

    @property
    def bootstrap(self) -> str:
        """Every node's address, comma-separated: what Warden's clients are given (WARDEN_BROKER)."""
        return ",".join(node.address for node in self.nodes)

    @property
    def replication(self) -> int:
        """Each topic's replicas: one on every node, up to three."""
        return min(3, len(self.nodes))

    @property
    def min_insync(self) -> int:
        """Replicas that must have a record before the leader acknowledges it (`acks=all`): two
        where there are two or more, so that losing one node loses no acknowledged record."""
        return min(2, len(self.nodes))


def java_binary() -> str:
    found = shutil.which("java")
    if found is None:
        raise KafkaError("java is missing: run `./infra/dev.sh` (installs a JDK from Debian) or put java on PATH")
    return found


def classpath() -> str:
    if not any(LIBS.glob("kafka_2.13-*.jar")):
        raise KafkaError(f"Apache Kafka is missing from {LIBS}: run `./infra/dev.sh` (resolves infra/kafka/pom.xml)")
    return str(LIBS / "*")


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, unpadded (Kafka's `Uuid`), and, as
    Kafka's own `Uuid.randomUuid` makes them, never starting with "-": `kafka-storage format -t`
    takes such an id for an option and fails (one new home in 64)."""
    while (cluster_id := base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()).startswith("-"):
        pass
    return cluster_id


def cluster_file(home: Path) -> Path:
    return home / "kafka" / "cluster.json"


def load_cluster(home: Path) -> KafkaCluster | None:
    path = cluster_file(home)
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    return KafkaCluster(doc["cluster_id"], tuple(KafkaNode(**node) for node in doc["nodes"]))


def save_cluster(home: Path, cluster: KafkaCluster) -> None:
    path = cluster_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"cluster_id": cluster.cluster_id, "nodes": [asdict(node) for node in cluster.nodes]}
    path.write_text(json.dumps(doc, indent=1))


def node_dir(home: Path, node: KafkaNode) -> Path:
    return home / "kafka" / node.name


def properties(settings: Settings, cluster: KafkaCluster, node: KafkaNode) -> dict[str, str]:
    """One node's server.properties: KRaft combined mode, sized for a 2-core machine and Warden's
    records. Nothing is deleted by age unless a topic says so (`log.retention.ms` -1): the
    changelogs, policies, admins and chains are state the services restore from."""
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in cluster.nodes)
    record_limit = str(settings.max_message_bytes + BATCH_OVERHEAD_BYTES)
    replicas, min_insync = str(cluster.replication), str(cluster.min_insync)
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node_dir(settings.home, node) / "data"),
        # Two cores: Kafka's defaults (3 network threads, 8 I/O threads) are for a server.
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.replica.fetchers": "1",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(16 << 20),
        # Warden's largest record (a blob intent) whole, on the leader and on its followers.
        "message.max.bytes": record_limit,
        "replica.fetch.max.bytes": record_limit,
        # Compaction cleans closed segments only: segments of 64 MiB, not 1 GiB, let it run.
        "log.segment.bytes": str(64 << 20),
        "log.retention.ms": "-1",
        # Topics are created by the stack, each with its partitions and replicas: a record sent to a
        # misspelt topic is refused, never the start of a new topic.
        "auto.create.topics.enable": "false",
        "default.replication.factor": replicas,
        "min.insync.replicas": min_insync,
        "unclean.leader.election.enable": "false",
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_insync,
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_insync,
        # Warden's groups are static members that all start at once: no wait for more to join.
        "group.initial.rebalance.delay.ms": "0",
        # The active controller appends a no-op record to the metadata log this often when nothing
        # else changes (default 500 ms), and every node loads each one: an idle node's main work.
        # It only tells a node that the metadata log it follows is still current; nothing waits on it.
        "metadata.max.idle.interval.ms": "5000",
    }


def write_properties(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))


def properties_path(home: Path, node: KafkaNode) -> Path:
    return node_dir(home, node) / "server.properties"


def format_node(settings: Settings, cluster: KafkaCluster, node: KafkaNode, log_path: Path) -> None:
    """The node's log directory formatted for the cluster, once: a formatted one
    (meta.properties) is left as it is."""
    path = properties_path(settings.home, node)
    write_properties(path, properties(settings, cluster, node))
    if (node_dir(settings.home, node) / "data" / "meta.properties").exists():
        return
    run_format(cluster, node, path, log_path, jvm_options())


def run_format(cluster: KafkaCluster, node: KafkaNode, path: Path, log_path: Path, options: list[str]) -> None:
    """Kafka's StorageTool on the node's properties at ``path``, its output to ``log_path``."""
    argv = [java_binary(), *options, "-cp", classpath(), "kafka.tools.StorageTool", "format"]
    argv += ["-t", cluster.cluster_id, "-c", str(path)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=120, check=False)
    if done.returncode != 0:
        raise KafkaError(f"formatting {node.name}'s log directory failed (exit {done.returncode}); see {log_path}")


def base_jvm_options() -> list[str]:
    """The JVM flags Kafka's own start scripts give (kafka-run-class.sh: G1 with short pauses),
    with a small fixed heap, and the JIT's first tier only (C1): on two cores the second tier's
    compiles were half of a node's start. Alternating in one sitting on a loaded machine, a node's
    start (its topics made) with C1 only 4.2-4.4 CPU-s and 10-16 s, against 7.2-9.1 CPU-s and
    44-57 s with both tiers; idle after its first minute 1.9-2.1 % of a core against 3.0-3.3 %."""
    return [
        f"-Xms{HEAP}",
        f"-Xmx{HEAP}",
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
    ]


def class_archive(options: list[str]) -> Path:
    """Where the class-data-sharing archive for these options is (`infra.stack.kafka_classes`
    makes it), kept with the jars. Its name is a digest of what a dynamic archive must match: the
    JVM (its launcher and libjvm.so, by path, size and time), each jar (name, size, time) and the
    options but the system properties (``-D``, which name paths of the checkout); a changed JDK,
    jar or option names another file, which does not exist yet. Jars by name, not path: checkouts
    sharing one .venv share the archive (the JVM maps it from a class path elsewhere with the
    same jars)."""
    java = Path(java_binary()).resolve()
    jvm = [java, java.parent.parent / "lib" / "server" / "libjvm.so"]
    stats = [(str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in jvm if path.exists()]
    stats += [(jar.name, jar.stat().st_size, jar.stat().st_mtime_ns) for jar in sorted(LIBS.glob("*.jar"))]
    flags = [option for option in options if not option.startswith("-D")]
    return LIBS.parent / f"classes-{hashlib.sha256(json.dumps([stats, flags]).encode()).hexdigest()[:16]}.jsa"


def jvm_options() -> list[str]:
    """`base_jvm_options`, and the class archive made for them where there is one: a node maps the
    classes it loads at its start instead of parsing and verifying them again. Alternating with and
    without on a loaded machine: a node of three, ready with its topics made, 2.1-2.4 CPU-s against
    3.0-3.4; a single node, ready, 1.4-2.3 against 2.5-3.9; its format 0.7 against 1.1.
    ``-Xshare:auto`` ignores an archive the JVM finds it cannot use, and with the ``cds`` logs off
    it says nothing of it: a start never fails or prints on it."""
    options = base_jvm_options()
    try:
        archive = class_archive(options)
    except (KafkaError, OSError):  # no java, or a jar gone while listed: the start says so itself
        return options
    if not archive.is_file():
        return options
    return [*options, f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def node_argv(home: Path, node: KafkaNode) -> list[str]:
    return [java_binary(), *jvm_options(), "-cp", classpath(), "kafka.Kafka", str(properties_path(home, node))]


async def cluster_answers(bootstrap: str, cluster: KafkaCluster) -> str | None:
    """None once the cluster at ``bootstrap`` is this one (its id) with every node registered;
    else what it is not yet."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        described = await admin.describe_cluster()
    except Exception as exc:  # noqa: BLE001  # any failure to answer is "not yet"; the caller's deadline decides
        return f"no answer ({type(exc).__name__}: {exc})"
    finally:
        await admin.close()
    if described["cluster_id"] != cluster.cluster_id:
        return f"the cluster there is {described['cluster_id']!r}, not this stack's {cluster.cluster_id!r}"
    registered = {broker["node_id"] for broker in described["brokers"]}
    missing = sorted({node.node_id for node in cluster.nodes} - registered)
    return f"nodes {missing} not registered yet" if missing else None


def wait_for_cluster(cluster: KafkaCluster, timeout_s: float, exited: Callable[[], str | None]) -> None:
    """Until the cluster answers as itself with every node registered; ``exited()`` names a node
    whose process has ended, which stops the wait at once. Called once each node's own process
    listens on its ports (`infra.stack.local.wait_for_port`)."""
    deadline = time.monotonic() + timeout_s
    why = "not answered"
    while time.monotonic() < deadline:
        gone = exited()
        if gone:
            raise KafkaError(gone)
        why = asyncio.run(cluster_answers(cluster.bootstrap, cluster)) or ""
        if not why:
            return
        time.sleep(0.2)
    raise KafkaError(f"Apache Kafka at {cluster.bootstrap} was not ready within {timeout_s:.0f} s: {why}")
