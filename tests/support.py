"""Helpers for integration tests: read topics to the end, provision agents on the live stack."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import threading
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from infra.stack.provision import balance, provision_agent
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import follow, follow_records, partition_of, read_to_quiet
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.auth import public_key_hex, sign_outcome
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentApproved, IntentRejected
from schemas.policy import AgentPolicy
from sdk.client import Client, new_intent

__all__ = [
    "balance",
    "batch_sizes",
    "direct_approvals",
    "everything_recorded",
    "fresh_agent",
    "group_instances",
    "group_state",
    "make_agent",
    "one_agent_per_partition",
    "read_topic",
    "submitted",
]


async def read_records(settings: Settings, topic: str, start: dict[TopicPartition, int] | None = None) -> list[Any]:
    """`read_topic`, as whole records (headers, timestamps): every record on ``topic`` from
    ``start`` (default the beginning) until it has been quiet for a few polls."""
    mine = None if start is None else {tp: offset for tp, offset in start.items() if tp.topic == topic}
    records, idle = [], 0
    async for record in follow_records(settings, (topic,), mine, fetch_max_wait_ms=settings.fetch_wait_ms):
        if record is not None:
            records.append(record)
            idle = 0
        elif (idle := idle + 1) >= 5:
            return records
    return records


async def read_topic(
    settings: Settings, topic: str, idle_polls: int = 5, start: dict[TopicPartition, int] | None = None
) -> list[bytes]:
    """Every record on ``topic`` (from ``start`` offsets, default the beginning) until it has been
    quiet for a few polls."""
    mine = None if start is None else {tp: offset for tp, offset in start.items() if tp.topic == topic}
    return [value async for _, value in read_to_quiet(settings, (topic,), idle_polls, mine)]


async def batch_sizes(settings: Settings, topic: str, partition: int, start: int, end: int) -> list[tuple[int, int]]:
    """(records, bytes of their values) of each batch the broker stores for ``topic``/``partition``
    that holds an offset in [start, end): what a consumer cannot see, read with Kafka's own fetch
    request."""
    from aiokafka import TopicPartition
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.fetch import FetchRequest
    from aiokafka.record.memory_records import MemoryRecords

    client = AIOKafkaClient(bootstrap_servers=settings.broker)
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        node = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        sizes, offset = [], start
        while offset < end:
            request = FetchRequest(100, 1, 64 * 2**20, 0, [(topic, [(partition, offset, 64 * 2**20)])])
            response = await client.send(node, request)
            ((_, (part,)),) = response.topics
            error, data = part[1], part[-1]  # the version aiokafka chose decides what lies between
            assert error == 0, f"fetch {topic}/{partition} at {offset}: error {error}"
            records = MemoryRecords(data)
            before = offset
            while (batch := records.next_batch()) is not None:
                held = [(record.offset, len(record.value or b"")) for record in batch]
                if held and held[-1][0] >= offset:
                    sizes.append((len(held), sum(size for _, size in held)))
                    offset = held[-1][0] + 1
                if offset >= end:
                    break
            assert offset > before, f"fetch {topic}/{partition} at {offset} returned nothing before {end}"
        return sizes
    finally:
        await client.close()


async def make_agent(
    settings: Settings, agent_id: str, fund_wei: int = 100 * 10**18, **policy_fields: Any
) -> tuple[Ed25519PrivateKey, str, AgentPolicy]:
    agent = await provision_agent(settings, agent_id, fund_wei, **policy_fields)
    return agent.intent_key, agent.address, agent.policy


async def everything_recorded(settings: Settings) -> tuple[int, int, bytes]:
    """What a stack has written anywhere: every record of every Warden topic (the worker's and the
    signer's changelogs included), every log file, the vault's event log and every ledger row. Returns
    (records, ledger rows, all of it as one haystack) for key-hygiene searches."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker)
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    # Every record the topics held when the read began, however long a loaded broker takes to
    # serve the first (quiet polls alone once read nothing at all under a busy suite).
    records, caught_up = [], asyncio.Event()
    async for name, value in follow(settings, tuple(n for n in names if n.startswith("warden")), caught_up=caught_up):
        if name:
            records.append(value)
        elif caught_up.is_set():
            break
    haystack = b"\n".join(records) + b"\n".join(p.read_bytes() for p in (settings.home / "logs").glob("*.log"))
    haystack += (settings.home / "vault" / "events.jsonl").read_bytes()
    host, _, port = settings.ledger_http.rpartition(":")
    rows = clickhouse_connect.get_client(host=host, port=int(port)).query("SELECT * FROM audit_log").result_rows
    haystack += "\n".join("\t".join(map(str, row)) for row in rows).encode()
    return len(records), len(rows), haystack


def worker_ports(ports: range, worker: int, workers: int) -> str:
    """The ``worker``-th of ``workers`` equal slices of ``ports``, as WARDEN_LISTEN_PORTS spells it:
    each xdist worker's stacks pick their ports in a slice no other worker picks from."""
    size = len(ports) // workers
    first = ports.start + worker * size
    return f"{first}-{first + size - 1}"


def one_agent_per_partition(prefix: str) -> list[str]:
    """Agent ids ``<prefix>-<n>``, the first whose records land in each partition, by partition."""
    found: dict[int, str] = {}
    for n in itertools.count():
        agent = f"{prefix}-{n}"
        found.setdefault(partition_of(agent), agent)
        if len(found) == topics.PARTITIONS:
            break
    return [found[p] for p in sorted(found)]


# What follows a static member's group instance id in its member id: "-" and a UUID.
_MEMBER_UUID = len("-00000000-0000-0000-0000-000000000000")


async def group_instances(settings: Settings, group: str) -> list[str]:
    """The group instance ids (``group.instance.id``) of a consumer group's members, one a member.
    Kafka names a static member ``<instance id>-<uuid>``, a new uuid each time it joins (KIP-345):
    a restarted member back in its own place keeps its instance id, not its member id."""
    return sorted(member[:-_MEMBER_UUID] for member in (await group_state(settings, group))[1])


async def group_state(settings: Settings, group: str) -> tuple[str, list[str]]:
    """A consumer group's state ("Stable", "PreparingRebalance", ...) and member ids (DescribeGroups)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    ((_, _, state, _, _, members),) = response.groups
    return state, sorted(member[0] for member in members)


async def receipt_of(node: JsonRpc, tx_hash: str) -> dict[str, Any]:
    """The receipt of a transaction just sent (Anvil mines at once, blob transactions a moment later)."""
    for _ in range(100):
        receipt = await node.call("eth_getTransactionReceipt", tx_hash)
        if isinstance(receipt, dict):
            return receipt
        await asyncio.sleep(0.1)
    raise AssertionError(f"{tx_hash} was not mined")


def tail_json(
    env: dict[str, Any], enough: Callable[[list[dict[str, Any]]], bool], *flags: str, timeout_s: float = 90
) -> list[dict[str, Any]]:
    """`warden tail --from-beginning --json`'s lines (with ``flags``), read until ``enough`` says
    so, the tail ends or the time is up: on a shared stack the topics' history grows with every
    test before this one, so no fixed time is enough."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "tail", "--from-beginning", "--json", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    timer = threading.Timer(timeout_s, proc.terminate)
    timer.start()
    lines: list[dict[str, Any]] = []
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            if raw.strip():
                lines.append(orjson.loads(raw))
                if enough(lines):
                    break
    finally:
        timer.cancel()
        proc.terminate()
        proc.wait(30)
    return lines


def warden_mcp(settings: Settings, agent: str) -> Any:
    """How an MCP client starts `warden mcp --agent AGENT` over stdio against the stack of ``settings``."""
    from infra.stack.demo_mcp import server_parameters

    return server_parameters(settings, agent)


@contextlib.contextmanager
def serving(
    settings: Settings, argv: list[str], port: int, log: Path, what: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`warden ARGV` as a server in a child process against the stack of ``settings`` (``env``
    added), logging to ``log``, once it listens on ``port``; stopped on exit."""
    from infra.stack.local import REPO, wait_for_port
    from runtime.config import child_environment

    env = child_environment(settings) | {"PYTHONPATH": str(REPO)} | (env or {})
    with open(log, "w") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", *argv], env=env, cwd=str(REPO), stdout=errlog, stderr=errlog
        )
    try:
        wait_for_port(f"127.0.0.1:{port}", 60, what, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def warden(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`warden ARGS` in a child process against the stack of ``settings``, as an operator runs it."""
    from infra.stack.local import REPO
    from runtime.config import child_environment

    env = child_environment(settings) | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args], env=env, cwd=str(REPO), capture_output=True, text=True, timeout=120
    )


async def submitted(settings: Settings, *intents: TransactionIntent) -> None:
    async with Client(settings) as client:
        for intent in intents:
            await client.submit(intent)
        await client.flush()


AGENT = "agent-changelog"
NOW_US = 1_800_000_000_000_000
KEYS = {name: Ed25519PrivateKey.generate() for name in ("signer-a", "signer-b", "signer-c")}
PINNED = {name: public_key_hex(key) for name, key in KEYS.items()}


DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def sample(url: str, name: str, **labels: str) -> float:
    """One sample of a metric as a Prometheus scrape would read it."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    raise AssertionError(f"no sample {name}{labels} at {url}")


async def forge_rejections(
    settings: Settings,
    agent: str,
    start: dict[TopicPartition, int] | None,
    forged: list[str],
    reading: asyncio.Event | None = None,
) -> None:
    """A topic writer's lie: each intent of ``agent`` it sees submitted is answered at once with a
    rejection bound to its digest and named as the worker, signed with a key no one pinned."""
    key = Ed25519PrivateKey.generate()
    async with Client(settings) as client:
        async for _, value in follow(
            settings, (topics.INTENTS_SUBMITTED,), start, caught_up=reading, fetch_max_wait_ms=20
        ):
            try:
                intent = TransactionIntent.from_bytes(value)
            except ValueError:
                continue
            if intent.agent_id != agent:
                continue
            lie = IntentRejected(
                intent_id=intent.intent_id,
                agent_id=agent,
                stage="allowlist",
                code=Code.RECIPIENT_NOT_ALLOWLISTED,
                reason="forged",
                decided_at=utcnow(),
                intent_digest=intent.digest(),
            )
            await (await client.send(topics.INTENTS_REJECTED, agent, sign_outcome(lie, key, "streams-0").to_bytes()))
            forged.append(intent.intent_id)


def fresh_agent(prefix: str) -> str:
    return f"{prefix}-{os.urandom(3).hex()}"


async def direct_approvals(settings: Settings, *pairs: tuple[TransactionIntent, object]) -> None:
    """Write approvals straight to warden.intents.approved, as a hostile topic writer (or a
    compromised worker) would: no guardrail has looked at them."""
    async with Client(settings) as client:
        for intent, policy in pairs:
            approved = IntentApproved(
                intent=intent, policy=policy, verdicts=(), approved_at=utcnow(), intent_digest=intent.digest()
            )
            await client.send(topics.INTENTS_APPROVED, intent.agent_id, approved.to_bytes())
        await client.flush()


def assert_one_outcome_each(ids: set[str], signed: list[Any], rejected: list[Any]) -> None:
    """One outcome each of ``ids``, among the signed and rejected records read from their topics:
    the same bytes may be published again (a redelivery), nothing else."""
    said: dict[str, set[Any]] = defaultdict(set)
    for record in signed:
        if record.intent_id in ids:
            said[record.intent_id].add(("signed", record.signed_tx))
    for record in rejected:
        if record.intent_id in ids:
            said[record.intent_id].add(("rejected", record.stage, record.code))
    several = {i: sorted(s) for i, s in said.items() if len(s) != 1}
    assert not several, f"{len(several)} intents were told more than one thing, e.g. {next(iter(several.items()))}"


def transfers(key: Ed25519PrivateKey, agent_id: str, value: str, count: int, **fields: Any) -> list[Any]:
    """``count`` transfers of ``value`` ETH to DEST on Anvil, with explicit fees and gas: each can
    spend exactly ``value`` + 21,000 gas x 2 gwei. ``fields``: more of the intent's (``broadcast``)."""
    return [
        new_intent(
            key,
            agent_id=agent_id,
            chain="anvil",
            to=DEST,
            value=value,
            max_fee_per_gas=2 * 10**9,
            max_priority_fee_per_gas=10**9,
            gas_limit=21000,
            **fields,
        )
        for _ in range(count)
    ]
