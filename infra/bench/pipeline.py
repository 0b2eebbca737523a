"""`warden bench pipeline`: sustained intents/s from submitted to signed on the embedded stack,
with p50/p99/p999 latency, where each intent's time goes (per stage) and the CPU each process
used, for the fused and the split topology.

Each topology gets a fresh stack (Tansu, Anvil, streams worker, signer, ledger sink) under a
temporary WARDEN_HOME. Intents are sign-only with explicit fees and gas, so the figure is the
pipeline's, not the chain's. Latency is measured per intent from the moment the producer
hands it to Kafka to the moment its SignedTransaction is read back.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TypedDict

import orjson

from infra.bench.figures import cpu_seconds, percentile
from infra.cli.output import note, print_json
from infra.stack.local import local_settings, running_stack
from infra.stack.provision import provision_agent
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas import topics
from sdk.client import OUTCOME_TOPICS, Client, new_intent

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


async def _approvals(settings: Settings, start: dict, wanted: set[str]) -> dict[str, tuple[float, float]]:
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


async def _measure(settings: Settings, agents: int, count: int, rate: int, progress, pids: dict[str, int]) -> dict:
    """One measured run: warm up, submit ``count`` intents at ``rate`` a second (0: as fast as
    they go), wait for their outcomes, and report throughput, latency, stages and CPU."""
    warmup, intents = await _bench_intents(settings, agents, count)
    # The outcomes an agent's SDK client reads (sdk.client.OUTCOME_TOPICS), and nothing more: a
    # reader that also took the approvals would have its fetches answered at every approval, which
    # lines its next fetch up badly with the signature that follows a few ms later (seen: signed
    # record -> client 8.0 ms p50 at 1 intent/s against a hop's 4.2). Approvals are read after the run.
    start = await end_offsets(settings, (*OUTCOME_TOPICS, topics.INTENTS_APPROVED))
    run = _Run(wanted={i.intent_id for i in intents} | {i.intent_id for i in warmup})
    watcher = asyncio.create_task(run.watch(settings, start))
    await _submit(settings, run, warmup, intents, rate, progress, pids)
    deadline = time.time() + 300
    while not watcher.done() and time.time() < deadline:
        await asyncio.sleep(0.5)
        progress(f"  outcomes {len(run.seen_at) - len(warmup)}/{count}")
    watcher.cancel()
    approved = await _approvals(settings, start, run.wanted)
    return _figures(run, intents, approved, agents, rate, pids)


async def _bench_intents(settings: Settings, agents: int, count: int) -> tuple[list, list]:
    """Provision the agents ``bench-0`` ... and sign their intents, round-robin over them: ten
    warm-up intents an agent, then the ``count`` measured ones."""
    keys = {}
    for n in range(agents):
        agent_id = f"bench-{n}"
        keys[agent_id] = (await provision_agent(settings, agent_id)).intent_key
    fields = SIGN_ONLY
    warmup = [
        new_intent(keys[f"bench-{n % agents}"], agent_id=f"bench-{n % agents}", **fields) for n in range(agents * 10)
    ]
    intents = [new_intent(keys[f"bench-{n % agents}"], agent_id=f"bench-{n % agents}", **fields) for n in range(count)]
    return warmup, intents


@dataclasses.dataclass
class _Run:
    """What one run collects about the intents it ``wanted``: when each was sent and its outcome
    seen (wall clock, to compare with the records' times), each signature's (signed_at, record
    time), the rejections, and the clocks read when measuring began."""

    wanted: set[str]
    sent_at: dict[str, float] = dataclasses.field(default_factory=dict)
    seen_at: dict[str, float] = dataclasses.field(default_factory=dict)
    signed: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    rejected: list[str] = dataclasses.field(default_factory=list)
    began: float = 0.0
    client_before: float = 0.0
    cpu_before: dict[str, float] = dataclasses.field(default_factory=dict)

    async def watch(self, settings: Settings, start: dict) -> None:
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
            while len(self.seen_at) < len(self.wanted):
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
        finally:
            await consumer.stop()


async def _submit(settings: Settings, run: _Run, warmup: list, intents: list, rate: int, progress, pids) -> None:
    """Submit the warm-up intents and wait for their outcomes; then read the clocks and submit the
    measured intents, paced at ``rate`` a second (0: unpaced)."""
    count = len(intents)
    async with Client(settings) as client:
        for intent in warmup:
            await client.submit(intent)
        await client.flush()
        while len(run.seen_at) < len(warmup):
            await asyncio.sleep(0.05)
        progress(f"  warm-up done ({len(warmup)} intents); measuring {count} intents")
        run.cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        run.client_before = time.process_time()
        run.began = began = time.time()
        interval = 1.0 / rate if rate else 0.0
        for n, intent in enumerate(intents):
            if interval:
                delay = began + n * interval - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            run.sent_at[intent.intent_id] = time.time()
            await client.submit(intent)
            if n % 500 == 499:
                progress(f"  submitted {n + 1}/{count}, outcomes {len(run.seen_at) - len(warmup)}")
        await client.flush()


def _figures(run: _Run, intents: list, approved: dict, agents: int, rate: int, pids: dict[str, int]) -> dict:
    """The run's report: intents completed a second, end-to-end latency, where the time went
    stage by stage (for the intents both approved and signed), and the CPU each process used."""
    count = len(intents)
    sent_at, seen_at, signed, rejected, began = run.sent_at, run.seen_at, run.signed, run.rejected, run.began
    done = [i.intent_id for i in intents if i.intent_id in seen_at]
    elapsed = max(seen_at[i] for i in done) - began if done else float("nan")
    cpu = {name: round(cpu_seconds(pid) - run.cpu_before[name], 2) for name, pid in pids.items()}
    cpu["bench client"] = round(time.process_time() - run.client_before, 2)
    latencies = [(seen_at[i] - sent_at[i]) * 1000 for i in done]
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for i in done:
        if i in approved and i in signed:
            points = (sent_at[i], *approved[i], *signed[i], seen_at[i])
            for name, a, b in zip(STAGES, points, points[1:]):
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
        "seconds": round(elapsed, 2),
        "first_rejections": rejected[:3],
    }


def _cpu_per_intent(cpu: dict[str, float], done: int) -> dict:
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
        "cpu_bound_intents_per_s": round(cores * 1000 / total, 1) if total else None,
    }


def run(topology: str, agents: int, count: int, rate: int, progress, signers: int = 1, workers: int = 1) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"warden-bench-{topology}-"))
    progress(
        f"{topology}: starting a fresh stack with {workers} streams worker(s) and {signers} signer(s) under {home}"
    )
    result = None
    try:
        with running_stack(local_settings(home, topology=topology), signers=signers, workers=workers) as stack:
            pids = {row["name"]: row["pid"] for row in stack.describe() if row["pid"]}
            result = {
                "topology": topology,
                "signers": signers,
                "workers": workers,
                **asyncio.run(_measure(stack.settings, agents, count, rate, progress, pids)),
            }
    finally:
        # A home holds ~30 MB (the ledger store, keys, logs): kept only when the run failed
        # or left intents unsigned, for its logs; a clean run leaves nothing behind.
        if result is not None and result["completed"] == result["intents"]:
            shutil.rmtree(home, ignore_errors=True)
        else:
            progress(f"{topology}: the stack's home is kept for its logs: {home / 'logs'}")
    return result


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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for name in ("signers", "workers"):
        if not 1 <= getattr(args, name) <= topics.PARTITIONS:
            parser.error(f"--{name} must be 1 to {topics.PARTITIONS} (one partition each at least)")
    shapes = ("fused", "split") if args.topology == "both" else (args.topology,)
    results = [run(t, args.agents, args.intents, args.rate, note, args.signers, args.workers) for t in shapes]
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
            print(
                f"{r['topology']:6} {r['workers']}w/{r['signers']}s {r['intents_per_s']:>8} intents/s  p50 {r['latency_ms_p50']} ms  "
                f"p99 {r['latency_ms_p99']} ms  p999 {r['latency_ms_p999']} ms  ({r['completed']}/{r['intents']} "
                f"signed, {r['rejected']} rejected, {r['agents']} agents, {r['seconds']} s)"
            )
            print("  where the time goes (ms)          p50      p99")
            for name, figures in r["stages_ms"].items():
                print(f"    {name:30} {figures['p50']!s:>8} {figures['p99']!s:>8}")
            print(
                "  CPU (% of one core): " + ", ".join(f"{name} {v}" for name, v in r["cpu_percent_of_one_core"].items())
            )
            print(
                "  CPU per intent (ms): "
                + ", ".join(f"{name} {v}" for name, v in r["cpu_ms_per_intent"].items())
                + f"; all {r['cpu_ms_per_intent_total']} ms, so {report['cpus']} cores complete at most "
                f"{r['cpu_bound_intents_per_s']} intents/s"
            )
    return 0 if all(r["completed"] == r["intents"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
