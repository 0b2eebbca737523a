"""`warden bench pipeline`: sustained intents/s from submitted to signed on the embedded stack,
with p50/p99 latency, for the fused and the split topology.

Each topology gets a fresh stack (Tansu, Anvil, streams worker, signer, ledger sink) under a
temporary WARDEN_HOME. Intents are sign-only with explicit fees and gas, so the figure is the
pipeline's, not the chain's. Latency is measured per intent from the moment the producer
hands it to Kafka to the moment its SignedTransaction is read back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

from infra.cli.output import note, print_json
from infra.client import Client, new_intent
from runtime.kafka import end_offsets, follow
from runtime.config import Settings
from infra.provision import provision_agent
from infra.stack import local_settings, running_stack
from schemas import topics

DEST = "0x000000000000000000000000000000000000bE0c"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(settings: Settings, agents: int, count: int, rate: int, progress) -> dict:
    keys = {}
    for n in range(agents):
        agent_id = f"bench-{n}"
        keys[agent_id] = (await provision_agent(settings, agent_id)).intent_key
    fields = dict(chain="anvil", to=DEST, value="0.000000001", max_fee_per_gas=2 * 10**9,
                  max_priority_fee_per_gas=10**9, gas_limit=21000)
    warmup = [new_intent(keys[f"bench-{n % agents}"], agent_id=f"bench-{n % agents}", **fields) for n in range(agents * 10)]
    intents = [new_intent(keys[f"bench-{n % agents}"], agent_id=f"bench-{n % agents}", **fields) for n in range(count)]
    start = await end_offsets(settings, (topics.TXS_SIGNED, topics.INTENTS_REJECTED))
    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    rejected: list[str] = []
    wanted = {i.intent_id for i in intents} | {i.intent_id for i in warmup}

    async def watch() -> None:
        async for topic, value in follow(settings, (topics.TXS_SIGNED, topics.INTENTS_REJECTED), start):
            if topic:
                doc = orjson.loads(value)
                if doc["intent_id"] in wanted and doc["intent_id"] not in seen_at:
                    seen_at[doc["intent_id"]] = time.perf_counter()
                    if topic == topics.INTENTS_REJECTED:
                        rejected.append(f"{doc['code']}: {doc['reason']}")
            if len(seen_at) >= len(wanted):
                return

    watcher = asyncio.create_task(watch())
    async with Client(settings) as client:
        for intent in warmup:
            await client.submit(intent)
        await client.flush()
        while len(seen_at) < len(warmup):
            await asyncio.sleep(0.05)
        progress(f"  warm-up done ({len(warmup)} intents); measuring {count} intents")
        began = time.perf_counter()
        interval = 1.0 / rate if rate else 0.0
        for n, intent in enumerate(intents):
            if interval:
                delay = began + n * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent_at[intent.intent_id] = time.perf_counter()
            await client.submit(intent)
            if n % 500 == 499:
                progress(f"  submitted {n + 1}/{count}, outcomes {len(seen_at) - len(warmup)}")
        await client.flush()
    deadline = time.perf_counter() + 300
    while not watcher.done() and time.perf_counter() < deadline:
        await asyncio.sleep(0.5)
        progress(f"  outcomes {len(seen_at) - len(warmup)}/{count}")
    watcher.cancel()
    done = [i.intent_id for i in intents if i.intent_id in seen_at]
    elapsed = max(seen_at[i] for i in done) - began if done else float("nan")
    latencies = [(seen_at[i] - sent_at[i]) * 1000 for i in done]
    return {
        "intents": count, "completed": len(done), "rejected": len(rejected), "agents": agents,
        "offered_rate_per_s": rate or None,
        "intents_per_s": round(len(done) / elapsed, 1) if done else 0.0,
        "latency_ms_p50": round(_percentile(latencies, 0.50), 1) if done else None,
        "latency_ms_p99": round(_percentile(latencies, 0.99), 1) if done else None,
        "seconds": round(elapsed, 2),
        "first_rejections": rejected[:3],
    }


def run(topology: str, agents: int, count: int, rate: int, progress) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"warden-bench-{topology}-"))
    progress(f"{topology}: starting a fresh stack under {home}")
    with running_stack(local_settings(home, topology=topology)) as stack:
        return {"topology": topology, **asyncio.run(_measure(stack.settings, agents, count, rate, progress))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden bench pipeline", description=__doc__)
    parser.add_argument("--intents", type=int, default=5000)
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--rate", type=int, default=0, help="offered intents/s (0: as fast as the producer can)")
    parser.add_argument("--topology", choices=("fused", "split", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    shapes = ("fused", "split") if args.topology == "both" else (args.topology,)
    results = [run(t, args.agents, args.intents, args.rate, note) for t in shapes]
    report = {"benchmark": "pipeline", "cpus": os.cpu_count(), "results": results,
              "note": "submitted -> signed, sign-only, all processes and the broker on this machine"}
    if args.json:
        print_json(report)
    else:
        for r in results:
            print(f"{r['topology']:6} {r['intents_per_s']:>8} intents/s  p50 {r['latency_ms_p50']} ms  "
                  f"p99 {r['latency_ms_p99']} ms  ({r['completed']}/{r['intents']} signed, {r['rejected']} rejected, "
                  f"{r['agents']} agents, {r['seconds']} s)")
    return 0 if all(r["completed"] == r["intents"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
