"""`warden bench api`: what the HTTP hop adds. Submit-to-outcome latency of sign-only intents over
`warden api` (POST /v1/agents/{id}/transactions/sign, answered once the outcome is verified)
against the same intents through Kafka directly (the SDK's producer, the outcome read back by
one long-lived consumer), at one offered rate, in rounds that alternate the two on one stack.

One fresh embedded stack (memory broker, Anvil, streams worker, signer, ledger sink, and the
API as `warden up` runs it) under a temporary WARDEN_HOME; agents provisioned with an API key
each. Intents carry explicit fees and gas, so the figure is the pipeline's and the API's, not
the chain's. Per round: p50/p99, and each process's CPU per intent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gateway.http_api import api_keys
from infra.bench.figures import cpu_seconds, percentile
from infra.bench.pipeline import SIGN_ONLY
from infra.cli.output import note, print_json
from infra.stack.local import LocalStack, local_settings
from infra.stack.provision import provision_agent
from runtime.clock import utcnow
from runtime.config import Settings, environment
from runtime.kafka import end_offsets
from sdk.client import OUTCOME_TOPICS, Client, new_intent

FIELDS = SIGN_ONLY
BODY = {
    **FIELDS,
    "max_fee_per_gas": str(FIELDS["max_fee_per_gas"]),
    "max_priority_fee_per_gas": str(FIELDS["max_priority_fee_per_gas"]),
}
ROUND_TIMEOUT_S = 300.0


async def _paced(count: int, rate: int, one: Callable[[int], Coroutine[Any, Any, object]]) -> None:
    """``one(n)`` for n in range(count), started at ``rate`` a second, all awaited."""
    began, tasks = time.monotonic(), list[asyncio.Task[object]]()
    for n in range(count):
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.wait_for(asyncio.gather(*tasks), ROUND_TIMEOUT_S)


async def _over_http(settings: Settings, agents: dict[str, Any], count: int, rate: int) -> list[float]:
    base = f"http://{settings.api_http}"
    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=ROUND_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        tokens = {}
        for agent_id, (_, api_key) in agents.items():
            async with http.post(f"{base}/v1/auth/agent-token", json={"agent_id": agent_id, "api_key": api_key}) as r:
                tokens[agent_id] = (await r.json())["access_token"]
        names = list(agents)

        async def one(n: int) -> None:
            agent_id = names[n % len(names)]
            began = time.perf_counter()
            url = f"{base}/v1/agents/{agent_id}/transactions/sign"
            async with http.post(url, json=BODY, headers={"Authorization": f"Bearer {tokens[agent_id]}"}) as r:
                await r.read()
                if r.status != 201:
                    raise RuntimeError(f"HTTP {r.status}: {(await r.text())[:300]}")
            latencies.append((time.perf_counter() - began) * 1000)

        await _paced(count, rate, one)
    return latencies


async def _over_kafka(settings: Settings, agents: dict[str, Any], count: int, rate: int) -> list[float]:
    """The same intents through the SDK's producer; one consumer reads the outcomes, as a
    long-lived Kafka client would (no per-request consumer)."""
    from aiokafka import AIOKafkaConsumer

    from runtime.kafka import partitions

    names = list(agents)
    intents = [
        new_intent(agents[names[n % len(names)]][0], agent_id=names[n % len(names)], **FIELDS) for n in range(count)
    ]
    waiting = {i.intent_id: asyncio.get_running_loop().create_future() for i in intents}
    start = await end_offsets(settings, OUTCOME_TOPICS)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        max_partition_fetch_bytes=settings.max_message_bytes,
    )
    await consumer.start()

    async def watch() -> None:
        parts = await partitions(consumer, OUTCOME_TOPICS)
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start[tp])
        while True:
            for messages in (await consumer.getmany(timeout_ms=50)).values():
                for msg in messages:
                    found = waiting.get(orjson.loads(msg.value).get("intent_id"))
                    if found is not None and not found.done():
                        found.set_result(time.perf_counter())

    watcher = asyncio.create_task(watch())
    latencies: list[float] = []
    try:
        async with Client(settings) as client:

            async def one(n: int) -> None:
                intent = intents[n]
                began = time.perf_counter()
                await (await client.submit(intent))
                latencies.append((await waiting[intent.intent_id] - began) * 1000)

            await _paced(count, rate, one)
    finally:
        watcher.cancel()
        await consumer.stop()
    return latencies


def run(agents: int, count: int, rate: int, rounds: int, progress: Callable[[str], object]) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="warden-bench-api-"))
    settings = local_settings(home)
    stack = LocalStack(settings)
    result: dict[str, Any] | None = None
    try:
        with environment(WARDEN_HOME=str(home)):
            progress(f"starting a fresh stack with the API under {home}")
            stack.start(("broker", "anvil", "streams", "signer", "ledger", "api"))
            pids = {row["name"]: row["pid"] for row in stack.describe() if row["pid"]}
            keys = {}
            for n in range(agents):
                agent_id = f"bench-{n}"
                intent_key = asyncio.run(provision_agent(settings, agent_id)).intent_key
                keys[agent_id] = (intent_key, api_keys.issue_api_key(home, agent_id, utcnow())[0])
            progress("warm-up: 10 intents per agent each way")
            asyncio.run(_over_http(settings, keys, agents * 10, rate))
            asyncio.run(_over_kafka(settings, keys, agents * 10, rate))
            figures = []
            for number in range(rounds):
                for way, measure in (("http", _over_http), ("kafka", _over_kafka)):
                    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    latencies = asyncio.run(measure(settings, keys, count, rate))
                    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
                    row = {
                        "round": number + 1,
                        "way": way,
                        "intents": len(latencies),
                        "latency_ms_p50": round(percentile(latencies, 0.5), 1),
                        "latency_ms_p99": round(percentile(latencies, 0.99), 1),
                        "cpu_ms_per_intent": {name: round(1000 * v / count, 2) for name, v in cpu.items()},
                    }
                    figures.append(row)
                    progress(
                        f"round {row['round']} {way:5}: p50 {row['latency_ms_p50']} ms, p99 {row['latency_ms_p99']} ms "
                        f"({row['intents']} intents at {rate}/s)"
                    )
            result = {"agents": agents, "rate_per_s": rate, "intents_per_round": count, "rounds": figures}
    finally:
        stack.stop()
        if result is not None:
            shutil.rmtree(home, ignore_errors=True)
        else:
            progress(f"the stack's home is kept for its logs: {home / 'logs'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden bench api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--intents", type=int, default=1000, help="intents per round and way (default 1000)")
    parser.add_argument("--rate", type=int, default=100, help="offered intents/s (default 100)")
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each HTTP then Kafka (default 2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if min(args.intents, args.rate, args.agents, args.rounds) < 1:
        parser.error("--intents, --rate, --agents and --rounds must be positive")
    progress = lambda line: note(f"bench api: {line}")  # noqa: E731
    result = run(args.agents, args.intents, args.rate, args.rounds, progress)
    report = {"benchmark": "api", "cpus": os.cpu_count(), **result}
    if args.json:
        print_json(report)
        return 0
    print(
        f"sign-only intents at {args.rate}/s, {args.agents} agents, {args.intents} per round: submit -> verified outcome"
    )
    print("  round  way     p50 ms   p99 ms   CPU ms per intent")
    for row in result["rounds"]:
        cpu = ", ".join(f"{name} {v}" for name, v in row["cpu_ms_per_intent"].items())
        print(f"  {row['round']:>5}  {row['way']:5} {row['latency_ms_p50']:>8} {row['latency_ms_p99']:>8}   {cpu}")
    for way in ("http", "kafka"):
        p50s = [r["latency_ms_p50"] for r in result["rounds"] if r["way"] == way]
        report[f"{way}_p50_ms"] = p50s
    added = [h - k for h, k in zip(report["http_p50_ms"], report["kafka_p50_ms"], strict=True)]
    print(f"  the HTTP hop adds {', '.join(f'{a:.1f}' for a in added)} ms at the p50, round by round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
