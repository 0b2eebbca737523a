"""`warden bench pipeline`: sustained intents/s from submitted to signed, with p50/p99/p999
latency, where each intent's time goes (per stage), the CPU each process used and the Kafka
requests each sent an intent (the hop table), for the fused and the split topology; an agent that
awaits each outcome, window by window (``--awaited``, ``--flat``), through the SDK's
`Client.submit_and_wait` with ``--sdk``; an idle stack's CPU (``--idle``).

Each topology gets a fresh stack (the embedded broker, Anvil, streams worker, signer, ledger sink;
with ``--durable``, Apache Kafka and every process `warden up` starts) under a temporary
WARDEN_HOME. Intents are sign-only with explicit fees and gas, so the figure is the
pipeline's, not the chain's. Latency is measured per intent from the moment the producer
hands it to Kafka to the moment its SignedTransaction is read back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.bench.figures import cpu_seconds, percentile, windows
from infra.bench.hops import per_intent, requests_now
from infra.bench.profiles import add_profile_argument, profiling
from infra.cli.output import note, print_json
from infra.cli.up import UP_PARTS
from infra.stack.local import DEFAULT_PARTS, LocalStack, is_broker, local_settings, running_stack
from infra.stack.provision import provision_agent
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas import topics
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedTransaction
from sdk.client import OUTCOME_TOPICS, Client, new_intent

# An idle run's wait after its warm-up, before it measures: the processes' start-up work (the
# ledger's first checkpoints, consumer groups settling) is over by then.
IDLE_SETTLE_S = 10.0
DEST = "0x000000000000000000000000000000000000bE0c"
# A benchmark's intent: sign-only with explicit fees and gas, so the figure is the pipeline's, not the chain's.


class IntentFields(TypedDict):
    """new_intent's fields for the benchmarks' intents, typed so that ``**SIGN_ONLY`` type-checks."""

    chain: str
    to: str
    value: str
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    gas_limit: int


SIGN_ONLY = IntentFields(
    chain="anvil",
    to=DEST,
    value="0.000000001",
    max_fee_per_gas=2 * 10**9,
    max_priority_fee_per_gas=10**9,
    gas_limit=21000,
)


def _epoch_s(text: str) -> float:
    """An ISO timestamp from a record → seconds since the epoch."""
    return datetime.fromisoformat(text).timestamp()


# Where an intent's time goes, from timestamps it collects on the way: the client's send, the
# worker's decision (IntentApproved.approved_at), the approval's Kafka record time, the signer's
# signature (SignedTransaction.signed_at), the signed record's Kafka record time, and the client's
# read. Kafka record times are in milliseconds; the others in microseconds.
STAGES = (
    "submit_to_decided",
    "decided_to_approved_record",
    "approved_record_to_signed",
    "signed_to_signed_record",
    "signed_record_to_client",
)


async def _approvals(settings: Settings, start: dict[str, Any], wanted: set[str]) -> dict[str, tuple[float, float]]:
    """Each wanted intent's approval on warden.intents.approved: (decided_at, record time), read
    from where the run began to the topic's end now that the run is over."""
    from aiokafka import AIOKafkaConsumer

    from runtime.kafka import partitions

    approved: dict[str, tuple[float, float]] = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.max_message_bytes,
    )
    await consumer.start()
    try:
        parts = await partitions(consumer, (topics.INTENTS_APPROVED,))
        ends = await consumer.end_offsets(parts)
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start[tp])
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for msg in messages:
                    doc = orjson.loads(msg.value)
                    if doc["intent"]["intent_id"] in wanted:
                        approved.setdefault(
                            doc["intent"]["intent_id"], (_epoch_s(doc["approved_at"]), msg.timestamp / 1000)
                        )
    finally:
        await consumer.stop()
    return approved


async def _measure(
    settings: Settings,
    agents: int,
    count: int,
    rate: int,
    progress: Callable[[str], object],
    pids: dict[str, int],
    mode: Mode,
) -> dict[str, Any]:
    """One measured run: warm up, submit ``count`` intents at ``rate`` a second (0: as fast as
    they go; ``mode.awaited``: each once the one before has its outcome), wait for their outcomes,
    and report throughput, latency, stages and CPU."""
    provisioned = await provision_agents(settings, agents)
    warmup, intents = _bench_intents(provisioned, count)
    # The outcomes an agent's SDK client reads (sdk.client.OUTCOME_TOPICS), and nothing more: a
    # reader that also took the approvals would have its fetches answered at every approval, which
    # lines its next fetch up badly with the signature that follows a few ms later (seen: signed
    # record -> client 8.0 ms p50 at 1 intent/s against a hop's 4.2). Approvals are read after the run.
    start = await end_offsets(settings, (*OUTCOME_TOPICS, topics.INTENTS_APPROVED))
    run = BenchRun(wanted={i.intent_id for i in intents} | {i.intent_id for i in warmup}, window=mode.window)
    # Through the SDK's `Client.submit_and_wait`, the client reads its outcomes itself: no watcher.
    watcher = None if mode.sdk else asyncio.create_task(run.watch(settings, start))
    awaited = provisioned if mode.awaited else None
    with profiling(mode.profile, pids, progress):
        await _submit(settings, run, warmup, intents, rate, progress, pids, awaited, mode.sdk)
    deadline = time.time() + 300
    while watcher is not None and not watcher.done() and time.time() < deadline:
        await asyncio.sleep(0.5)
        progress(f"  outcomes {len(run.seen_at) - len(warmup)}/{count}")
    if watcher is not None:
        watcher.cancel()
    requests_after = await asyncio.to_thread(requests_now, settings.home)
    approved = await _approvals(settings, start, run.wanted)
    figures = _figures(run, intents, approved, agents, rate, pids)
    figures["kafka_requests_per_intent"] = per_intent(run.requests_before, requests_after, figures["completed"])
    return figures


async def provision_agents(settings: Settings, agents: int) -> list[tuple[str, Ed25519PrivateKey]]:
    """The agents ``bench-0`` ... provisioned: (agent id, intent key) each."""
    return [(f"bench-{n}", (await provision_agent(settings, f"bench-{n}")).intent_key) for n in range(agents)]


def bench_intent(agents: list[tuple[str, Ed25519PrivateKey]], n: int) -> TransactionIntent:
    """The ``n``-th intent of a run, from its agents in turn."""
    agent_id, key = agents[n % len(agents)]
    return new_intent(key, agent_id=agent_id, **SIGN_ONLY)


def _bench_intents(provisioned: list[tuple[str, Ed25519PrivateKey]], count: int) -> tuple[list[Any], list[Any]]:
    """The provisioned agents' intents, signed round-robin over them: ten warm-up intents an
    agent, then the ``count`` measured ones."""
    warmup = [bench_intent(provisioned, n) for n in range(len(provisioned) * 10)]
    return warmup, [bench_intent(provisioned, n) for n in range(count)]


@dataclasses.dataclass
class BenchRun:
    """What one run collects about the intents it ``wanted``: when each was sent and its outcome
    seen (wall clock, to compare with the records' times), each signature's (signed_at, record
    time), the rejections, and the clocks read when measuring began."""

    wanted: set[str]
    sent_at: dict[str, float] = dataclasses.field(default_factory=dict)
    seen_at: dict[str, float] = dataclasses.field(default_factory=dict)
    signed: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    rejected: list[str] = dataclasses.field(default_factory=list)
    began: float = 0.0
    cpu_before: dict[str, float] = dataclasses.field(default_factory=dict)
    # Each process's Kafka requests by API when measuring began (`infra.bench.hops`).
    requests_before: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    # An awaited run's CPU read every ``window`` intents (`cpu_now`), from ``cpu_before`` on.
    window: int = 1000
    marks: list[dict[str, float]] = dataclasses.field(default_factory=list)
    # A run that sends as it goes (`warden bench soak`) adds to ``wanted`` while it is watched: the
    # watch goes on while it is ``open``, even when every intent so far has its outcome.
    open: bool = False
    arrived: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # set at each new outcome

    def answered(self, intent_id: str, outcome: object) -> None:
        """``intent_id``'s outcome as `Client.submit_and_wait` returned it, now (``--sdk``)."""
        self.seen_at[intent_id] = time.time()
        if isinstance(outcome, IntentRejected):
            self.rejected.append(f"{outcome.code}: {outcome.reason}")
        elif not isinstance(outcome, SignedTransaction):
            self.rejected.append(f"{type(outcome).__name__}: not an outcome a sign-only bench expects")

    async def watch(self, settings: Settings, start: dict[str, Any]) -> None:
        """Read the outcome topics from ``start`` until every wanted intent has its outcome."""
        from aiokafka import AIOKafkaConsumer

        from runtime.kafka import partitions

        # Waits on the broker as the SDK's client does (sdk.client.wait_outcomes): the figure is what
        # an agent sees, and the broker serves no more empty fetches than a real client costs it.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.broker,
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.fetch_wait_ms,
            max_partition_fetch_bytes=settings.max_message_bytes,
        )
        await consumer.start()
        try:
            parts = await partitions(consumer, OUTCOME_TOPICS)
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, start[tp])
            while self.open or len(self.seen_at) < len(self.wanted):
                batch = await consumer.getmany(timeout_ms=50)
                now = time.time()
                for tp, messages in batch.items():
                    for msg in messages:
                        doc = orjson.loads(msg.value)
                        intent_id = doc.get("intent_id")
                        if intent_id not in self.wanted or intent_id in self.seen_at:
                            continue
                        self.seen_at[intent_id] = now
                        if tp.topic == topics.TXS_SIGNED:
                            self.signed[intent_id] = (_epoch_s(doc["signed_at"]), msg.timestamp / 1000)
                        elif tp.topic == topics.INTENTS_REJECTED:
                            self.rejected.append(f"{doc['code']}: {doc['reason']}")
                        else:
                            self.rejected.append(f"{tp.topic}: not an outcome a sign-only bench expects")
                        self.arrived.set()
        finally:
            await consumer.stop()


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    """Each process's CPU-seconds so far, and the benchmark's own (``bench client``)."""
    return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, "bench client": time.process_time()}


async def pace(began: float, n: int, rate: float) -> None:
    """Wait until the ``n``-th intent of a run begun at ``began`` is due at ``rate`` a second."""
    delay = began + n / rate - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def warm_up(
    client: Client, run: BenchRun, warmup: list[Any], progress: Callable[[str], object], timeout_s: float = 180
) -> None:
    """Submit the warm-up intents (already in ``run.wanted``) and wait for their outcomes."""
    for intent in warmup:
        await client.submit(intent)
    await client.flush()
    deadline = time.time() + timeout_s
    while len(run.seen_at) < len(warmup):
        if time.time() > deadline:
            raise RuntimeError(f"the warm-up's {len(warmup)} intents got {len(run.seen_at)} outcomes in {timeout_s} s")
        await asyncio.sleep(0.05)
    progress(f"  warm-up done ({len(warmup)} intents)")


async def _outcome(run: BenchRun, intent_id: str, timeout_s: float) -> bool:
    """Wait for ``intent_id``'s outcome; False if it has none within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while intent_id not in run.seen_at:
        run.arrived.clear()
        try:
            await asyncio.wait_for(run.arrived.wait(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return intent_id in run.seen_at
    return True


def _window_line(run: BenchRun, window: list[Any], done: int) -> str:
    """A progress line for an awaited run's window just ended at its ``done``-th intent."""
    ids = [i.intent_id for i in window]
    (row,) = windows([(run.seen_at[i] - run.sent_at[i]) * 1000 for i in ids], run.marks[-2:], len(ids))
    return (
        f"  intents {done - len(ids) + 1}-{done}: p50 {row['latency_ms_p50']} ms, p99 {row['latency_ms_p99']} ms, "
        f"the broker's CPU {_broker_share(row['cpu_ms_per_intent'])} ms an intent"
    )


async def _submit(
    settings: Settings,
    run: BenchRun,
    warmup: list[Any],
    intents: list[Any],
    rate: int,
    progress: Callable[[str], object],
    pids: dict[str, int],
    awaited: list[tuple[str, Ed25519PrivateKey]] | None = None,
    sdk: bool = False,
) -> None:
    """Submit the warm-up intents and wait for their outcomes; then read the clocks and submit the
    measured intents, paced at ``rate`` a second (0: unpaced), or each once the one before has its
    outcome (``awaited``: the agents, reading the CPU every ``run.window`` intents). An awaited
    run signs each intent as it sends it: one signed at the start would be past the 600 s an
    intent stays valid after ten minutes of them. ``sdk``: each intent, the warm-up's too, through
    `Client.submit_and_wait`, as an agent's process waits for it."""
    count = len(intents)
    async with Client(settings) as client:
        if sdk:
            for intent in warmup:
                run.answered(intent.intent_id, (await client.submit_and_wait(intent, 60))[0])
        else:
            await warm_up(client, run, warmup, progress)
        progress(f"  measuring {count} intents" + (", each awaited" if awaited else ""))
        run.requests_before = await asyncio.to_thread(requests_now, settings.home)
        run.cpu_before = cpu_now(pids)
        run.marks = [run.cpu_before]
        run.began = began = time.time()
        for n, intent in enumerate(intents):
            if rate:
                await pace(began, n, rate)
            if awaited:
                run.wanted.discard(intent.intent_id)
                intent = intents[n] = bench_intent(awaited, n)
                run.wanted.add(intent.intent_id)
            run.sent_at[intent.intent_id] = time.time()
            if sdk:
                outcome, _ = await client.submit_and_wait(intent, 60)
                if outcome is not None:
                    run.answered(intent.intent_id, outcome)
            else:
                await client.submit(intent)
            if awaited:
                if not await _outcome(run, intent.intent_id, 0 if sdk else 60):
                    progress(f"  intent {n + 1} had no outcome within 60 s: the run stops there")
                    break
                if (n + 1) % run.window == 0:
                    run.marks.append(cpu_now(pids))
                    progress(_window_line(run, intents[n + 1 - run.window : n + 1], n + 1))
            if n % 500 == 499:
                progress(f"  submitted {n + 1}/{count}, outcomes {len(run.seen_at) - len(warmup)}")
        await client.flush()


def _figures(
    run: BenchRun, intents: list[Any], approved: dict[str, Any], agents: int, rate: int, pids: dict[str, int]
) -> dict[str, Any]:
    """The run's report: intents completed a second, end-to-end latency, where the time went
    stage by stage (for the intents both approved and signed), and the CPU each process used."""
    count = len(intents)
    sent_at, seen_at, signed, rejected, began = run.sent_at, run.seen_at, run.signed, run.rejected, run.began
    done = [i.intent_id for i in intents if i.intent_id in seen_at]
    elapsed = max(seen_at[i] for i in done) - began if done else float("nan")
    after = cpu_now(pids)
    cpu = {name: round(after[name] - run.cpu_before[name], 2) for name in after}
    latencies = [(seen_at[i] - sent_at[i]) * 1000 for i in done]
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for i in done:
        if i in approved and i in signed:
            points = (sent_at[i], *approved[i], *signed[i], seen_at[i])
            for name, a, b in zip(STAGES, points, points[1:], strict=False):
                stages[name].append((b - a) * 1000)

    def pct(values: list[float], q: float) -> float | None:
        return round(percentile(values, q), 1) if values else None

    return {
        "intents": count,
        "completed": len(done),
        "rejected": len(rejected),
        "agents": agents,
        "offered_rate_per_s": rate or None,
        "intents_per_s": round(len(done) / elapsed, 1) if done else 0.0,
        "latency_ms_p50": pct(latencies, 0.50),
        "latency_ms_p99": pct(latencies, 0.99),
        "latency_ms_p999": pct(latencies, 0.999),
        "stages_ms": {name: {"p50": pct(v, 0.5), "p99": pct(v, 0.99)} for name, v in stages.items()},
        "cpu_seconds": cpu,
        "cpu_percent_of_one_core": {name: round(100 * v / elapsed, 1) for name, v in cpu.items()},
        **_cpu_per_intent(cpu, len(done)),
        **_windows(run, latencies),
        "seconds": round(elapsed, 2),
        "first_rejections": rejected[:3],
    }


def _windows(run: BenchRun, latencies: list[float]) -> dict[str, Any]:
    """An awaited run's figures ``run.window`` intents at a time (the broker's CPU an intent among
    them: every Kafka node's, or the embedded broker's), and its last window against its first:
    whether it stays flat with use."""
    rows = windows(latencies, run.marks, run.window)
    if not rows:
        return {}
    for row in rows:
        row["broker_cpu_ms_per_intent"] = _broker_share(row["cpu_ms_per_intent"])
    first, last = rows[0], rows[-1]

    def ratio(key: str) -> float | None:
        return round(last[key] / first[key], 2) if first[key] else None

    return {
        "windows": rows,
        "last_window_against_first": {key: ratio(key) for key in ("latency_ms_p50", "broker_cpu_ms_per_intent")},
    }


def _cpu_per_intent(cpu: dict[str, float], done: int) -> dict[str, Any]:
    """CPU milliseconds each process spent per completed intent, and what they add up to bound:
    with every process on this machine's cores, no run can complete more intents a second than
    cores x 1000 / the total. A run near that ceiling is bound by CPU, not by waiting; a faster
    one needs less work per intent, wherever it is. At a low offered rate the processes' idle
    polling is shared by few intents, so the ceiling says little there."""
    per_intent = {name: round(1000 * seconds / done, 3) for name, seconds in cpu.items()} if done else {}
    total = round(sum(per_intent.values()), 3)
    cores = os.cpu_count() or 1
    return {
        "cpu_ms_per_intent": per_intent,
        "cpu_ms_per_intent_total": total,
        "broker_cpu_ms_per_intent": _broker_share(per_intent),
        "cpu_bound_intents_per_s": round(cores * 1000 / total, 1) if total else None,
    }


def _broker_share(per_process: dict[str, float]) -> float:
    """The broker's part of a per-process figure: every Kafka node's, or the embedded broker's."""
    return round(sum(v for name, v in per_process.items() if is_broker(name)), 3)


def in_signatures(results: list[dict[str, Any]]) -> None:
    """Each run's CPU an intent in eth-account signatures, all processes' and the broker's:
    `warden bench sign`'s timing of ``Account.sign_transaction`` in the same sitting, this
    machine's unit of work as it is now."""
    from infra.bench import sign  # eth-account is a test-only dependency, loaded only here

    us = 1e6 / sign.run(2000)["eth_account_per_s"]
    for r in results:
        r["eth_account_us_per_signature"] = round(us, 1)
        r["in_eth_account_signatures"] = {
            "all processes": round(1000 * r["cpu_ms_per_intent_total"] / us, 2),
            "broker": round(1000 * r["broker_cpu_ms_per_intent"] / us, 2),
        }


@dataclasses.dataclass(frozen=True)
class Mode:
    """How a run goes besides its shape: on which broker storage (``"durable"``: Apache Kafka, with
    every process `warden up` starts), each intent sent once the one before has its outcome
    (``awaited``) with figures every ``window`` intents, and profiled into ``profile``."""

    storage: str = "memory"
    awaited: bool = False
    window: int = 1000
    profile: Path | None = None
    sdk: bool = False


@dataclasses.dataclass
class BenchStack:
    """A benchmark's started stack and its processes' pids; ``clean``, set once the run got every
    outcome, has its home removed at the end (else kept for its logs)."""

    stack: LocalStack
    pids: dict[str, int]
    clean: bool = False


@contextlib.contextmanager
def bench_stack(
    label: str,
    storage: str,
    progress: Callable[[str], object],
    topology: str = "fused",
    signers: int = 1,
    workers: int = 1,
    parts: tuple[str, ...] | None = None,
) -> Iterator[BenchStack]:
    """A fresh stack of ``parts`` under a temporary home; by default, on ``storage="durable"``
    Apache Kafka and every process `warden up` starts (Solana and the API besides the
    pipeline's), else the embedded broker and the pipeline's processes."""
    home = Path(tempfile.mkdtemp(prefix=f"warden-bench-{label}-"))
    parts = parts or (UP_PARTS if storage == "durable" else DEFAULT_PARTS)
    progress(
        f"{label}: starting a fresh stack ({storage} broker storage: {', '.join(parts)}) with {workers} streams "
        f"worker(s) and {signers} signer(s) under {home}"
    )
    bench = None
    try:
        settings = local_settings(home, topology=topology, broker_storage=storage)
        with running_stack(settings, signers=signers, workers=workers, parts=parts) as stack:
            bench = BenchStack(stack, {row["name"]: row["pid"] for row in stack.describe() if row["pid"]})
            yield bench
    finally:
        # A home holds ~30 MB (the ledger store, keys, logs) and more on Kafka: kept only when the
        # run failed or left intents unanswered, for its logs; a clean run leaves nothing behind.
        if bench is not None and bench.clean:
            shutil.rmtree(home, ignore_errors=True)
        else:
            progress(f"{label}: the stack's home is kept for its logs: {home / 'logs'}")


def run(
    topology: str,
    agents: int,
    count: int,
    rate: int,
    progress: Callable[[str], object],
    signers: int = 1,
    workers: int = 1,
    mode: Mode = Mode(),
) -> dict[str, Any]:
    with bench_stack(topology, mode.storage, progress, topology, signers, workers) as bench:
        result = {
            "topology": topology,
            "broker_storage": mode.storage,
            "signers": signers,
            "workers": workers,
            **asyncio.run(_measure(bench.stack.settings, agents, count, rate, progress, bench.pids, mode)),
        }
        bench.clean = result["completed"] == result["intents"]
    return result


def idle(
    seconds: float,
    storage: str,
    progress: Callable[[str], object],
    profile: Path | None = None,
    settle_s: float = IDLE_SETTLE_S,
) -> dict[str, Any]:
    """A started stack left alone for ``seconds``, after one agent's ten warm-up intents and
    ``settle_s`` more: each process's CPU over it, and all of them together (profiled into
    ``profile``, if given)."""
    with bench_stack("idle", storage, progress) as bench:
        asyncio.run(_warmed(bench.stack.settings, progress))
        progress(f"  idle: settling {settle_s:.0f} s, then measuring {seconds:.0f} s")
        time.sleep(settle_s)
        with profiling(profile, bench.pids, progress):
            before, began = cpu_now(bench.pids), time.time()
            time.sleep(seconds)
            after, elapsed = cpu_now(bench.pids), time.time() - began
        bench.clean = True
    cpu = {name: round(after[name] - before[name], 2) for name in after if name != "bench client"}
    return {
        "benchmark": "idle",
        "broker_storage": storage,
        "seconds": round(elapsed, 1),
        "cpu_seconds": cpu,
        "cpu_percent_of_one_core": {name: round(100 * v / elapsed, 2) for name, v in cpu.items()},
        "all_percent_of_one_core": round(100 * sum(cpu.values()) / elapsed, 2),
    }


async def _warmed(settings: Settings, progress: Callable[[str], object]) -> None:
    """One agent provisioned and its ten warm-up intents answered: every process has done its
    first work (connections, caches) before the stack is left alone."""
    warmup, _ = _bench_intents(await provision_agents(settings, 1), 0)
    start = await end_offsets(settings, OUTCOME_TOPICS)
    run = BenchRun(wanted={i.intent_id for i in warmup})
    watcher = asyncio.create_task(run.watch(settings, start))
    async with Client(settings) as client:
        await warm_up(client, run, warmup, progress)
    await watcher


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden bench pipeline", description=__doc__)
    parser.add_argument("--intents", type=int, default=5000)
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--rate", type=int, default=0, help="offered intents/s (0: as fast as the producer can)")
    parser.add_argument("--topology", choices=("fused", "split", "both"), default="both")
    parser.add_argument(
        "--signers",
        type=int,
        default=1,
        help="signers in the signers' consumer group (scale-out; each restores its partitions)",
    )
    parser.add_argument("--workers", type=int, default=1, help="streams workers in the workers' consumer group")
    _mode_arguments(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    storage = "durable" if args.durable else "memory"
    if args.idle is not None:
        report = idle(args.idle, storage, note, args.profile)
        print_json(report) if args.json else _print_idle(report)
        return 0
    for name in ("signers", "workers"):
        if not 1 <= getattr(args, name) <= topics.PARTITIONS:
            parser.error(f"--{name} must be 1 to {topics.PARTITIONS} (one partition each at least)")
    if args.flat is not None:
        args.awaited, args.agents, args.intents = True, 1, args.flat
    if args.awaited and not 1 <= args.window <= args.intents:
        parser.error(f"--window must be 1 to the run's intents ({args.intents}), got {args.window}")
    if args.sdk and not args.awaited:
        parser.error("--sdk waits on each intent: give it with --awaited or --flat")
    mode = Mode(storage, args.awaited, args.window, args.profile, args.sdk)
    shapes = ("fused", "split") if args.topology == "both" else (args.topology,)
    results = [run(t, args.agents, args.intents, args.rate, note, args.signers, args.workers, mode) for t in shapes]
    if args.in_signatures:
        in_signatures(results)
    report = {
        "benchmark": "pipeline",
        "cpus": os.cpu_count(),
        "results": results,
        "note": "submitted -> signed, sign-only, all processes and the broker on this machine",
    }
    if args.json:
        print_json(report)
    else:
        for r in results:
            _print_result(r, report["cpus"])
    return 0 if all(r["completed"] == r["intents"] for r in results) else 1


# The pipeline's switches beyond its shape: (flag, help).
_SWITCHES = (
    (
        "--durable",
        "run on the durable stack as `warden up` starts it: Apache Kafka, and Solana and the API besides "
        "(default: the embedded broker, the pipeline's processes only)",
    ),
    (
        "--awaited",
        "send each intent once the one before has its outcome (an agent that waits), with figures every "
        "--window intents",
    ),
    (
        "--sdk",
        "with --awaited or --flat: send and wait on each intent through the SDK's `Client.submit_and_wait` "
        "(one client, its own reader of the outcomes), as an agent's process does",
    ),
    (
        "--in-signatures",
        "also give CPU per intent in eth-account signatures (`warden bench sign` times one, after the run)",
    ),
)
# Its numbers beyond its shape: (flag, type, metavar, help).
_NUMBERS = (
    ("--window", int, "N", "intents in each window of an awaited run (default 1000)"),
    (
        "--flat",
        int,
        "N",
        "a lone agent's N intents, each awaited: p50 and CPU per intent every --window intents, and the last "
        "window against the first (--awaited --agents 1 --intents N)",
    ),
    (
        "--idle",
        float,
        "SECONDS",
        "no intents: each process's CPU while the started, warmed-up stack is left alone that long",
    ),
)


def _mode_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, text in _SWITCHES:
        parser.add_argument(flag, action="store_true", help=text)
    for flag, kind, metavar, text in _NUMBERS:
        parser.add_argument(flag, type=kind, metavar=metavar, help=text)
    parser.set_defaults(window=1000)
    add_profile_argument(parser)


def _print_result(r: dict[str, Any], cpus: int | None) -> None:
    print(
        f"{r['topology']:6} {r['workers']}w/{r['signers']}s {r['intents_per_s']:>8} intents/s  p50 {r['latency_ms_p50']} ms  "
        f"p99 {r['latency_ms_p99']} ms  p999 {r['latency_ms_p999']} ms  ({r['completed']}/{r['intents']} "
        f"signed, {r['rejected']} rejected, {r['agents']} agents, {r['seconds']} s, {r['broker_storage']} broker storage)"
    )
    if any(figures["p50"] is not None for figures in r["stages_ms"].values()):  # none with --sdk
        print("  where the time goes (ms)          p50      p99")
        for name, figures in r["stages_ms"].items():
            print(f"    {name:30} {figures['p50']!s:>8} {figures['p99']!s:>8}")
    print("  CPU (% of one core): " + ", ".join(f"{name} {v}" for name, v in r["cpu_percent_of_one_core"].items()))
    print(
        "  CPU per intent (ms): "
        + ", ".join(f"{name} {v}" for name, v in r["cpu_ms_per_intent"].items())
        + f"; all {r['cpu_ms_per_intent_total']} ms, so {cpus} cores complete at most "
        f"{r['cpu_bound_intents_per_s']} intents/s; the broker {r['broker_cpu_ms_per_intent']} ms"
    )
    _print_hops(r.get("kafka_requests_per_intent", {}))
    if "in_eth_account_signatures" in r:
        signatures = r["in_eth_account_signatures"]
        print(
            f"  in eth-account signatures ({r['eth_account_us_per_signature']} us each): all processes "
            f"{signatures['all processes']} an intent, the broker {signatures['broker']}"
        )
    if "windows" in r:
        print("  intents          p50 ms   p99 ms  broker CPU ms/intent  all CPU ms/intent")
        for w in r["windows"]:
            every = round(sum(w["cpu_ms_per_intent"].values()), 3)
            print(
                f"  {w['intents']:14} {w['latency_ms_p50']:>8} {w['latency_ms_p99']:>8} "
                f"{w['broker_cpu_ms_per_intent']:>21} {every:>18}"
            )
        ratios = r["last_window_against_first"]
        print(
            f"  last window against the first: p50 x{ratios['latency_ms_p50']}, "
            f"broker CPU per intent x{ratios['broker_cpu_ms_per_intent']}"
        )


# The hop table's columns in print: the requests an intent moves by, and the rest together (the
# JSON has every API).
HOP_COLUMNS = ("Fetch", "Produce", "ListOffsets", "OffsetCommit")


def _print_hops(table: dict[str, dict[str, float]]) -> None:
    """The hop table: each process's Kafka requests an intent, by API."""
    if not table:
        return
    print("  Kafka requests an intent " + "".join(f"{c:>13}" for c in (*HOP_COLUMNS, "other", "all")))
    for process, row in table.items():
        other = round(row["all"] - sum(row.get(c, 0) for c in HOP_COLUMNS), 3)
        cells = [row.get(c, 0) for c in HOP_COLUMNS] + [other, row["all"]]
        print(f"    {process:22}" + "".join(f"{v:>13}" for v in cells))


def _print_idle(report: dict[str, Any]) -> None:
    print(
        f"idle for {report['seconds']} s ({report['broker_storage']} broker storage): all processes "
        f"{report['all_percent_of_one_core']} % of one core"
    )
    for name, seconds in report["cpu_seconds"].items():
        print(f"  {name:10} {seconds:>7} CPU-s  {report['cpu_percent_of_one_core'][name]:>6} %")


if __name__ == "__main__":
    sys.exit(main())
