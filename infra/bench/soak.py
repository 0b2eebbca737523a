"""`warden bench soak`: a stack under a steady load for minutes, minute by minute.

A fresh stack as `warden up` runs it, every process it starts (Apache Kafka,
``broker_storage="durable"``; ``--memory``: the embedded broker, as `warden up --memory`) under a
temporary WARDEN_HOME gets sign-only intents at a steady ``--rate`` a
second from ``--agents`` agents in turn (the agents, intents and outcome watch of `warden bench
pipeline`), each signed as it is sent. At the end of each minute it prints that minute: the
intents sent in it, the outcomes seen in it and their latencies (submit → outcome, p50 and p99),
and each process's CPU over it as a % of one core (from /proc: the Kafka nodes' JVMs, Anvil,
surfpool, Warden's services and the benchmark itself). What a growing log, a growing state or a
leak costs shows as a column that climbs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from infra.bench.figures import interval, percentile_ms
from infra.bench.pipeline import (
    BenchRun,
    Mode,
    bench_intent,
    bench_stack,
    cpu_now,
    pace,
    provision_agents,
    warm_up,
)
from infra.bench.profiles import add_profile_argument, profiling
from infra.cli.output import note, print_json
from infra.cli.up import UP_PARTS
from runtime.config import Settings
from runtime.kafka import end_offsets
from sdk.client import OUTCOME_TOPICS, Client

MINUTE_S = 60.0
TAIL_S = 60.0  # how long the last intents' outcomes are waited for once the run's minutes are over


async def _soak(
    settings: Settings,
    minutes: int,
    rate: float,
    agents: int,
    pids: dict[str, int],
    mode: Mode,
    progress: Callable[[str], object],
) -> dict[str, Any]:
    """Warm up, then send at ``rate`` for ``minutes``, a row of figures at each minute's end; then
    wait up to ``TAIL_S`` for the outcomes still due."""
    provisioned = await provision_agents(settings, agents)
    warmup = [bench_intent(provisioned, n) for n in range(agents * 10)]
    start = await end_offsets(settings, OUTCOME_TOPICS)
    run = BenchRun(wanted={i.intent_id for i in warmup}, open=True)
    watcher = asyncio.create_task(run.watch(settings, start))
    rows = []
    async with Client(settings) as client:
        await warm_up(client, run, warmup, progress)
        marks = [(time.time(), cpu_now(pids))]
        run.began = marks[0][0]
        sent = 0
        with profiling(mode.profile, pids, progress):
            for minute in range(1, minutes + 1):
                sent = await _send_until(client, run, provisioned, sent, rate, run.began + minute * MINUTE_S)
                marks.append((time.time(), cpu_now(pids)))
                rows.append({"minute": minute, **_row(run, marks[-2], marks[-1])})
                progress(_line(rows[-1]))
        await client.flush()
    run.open = False
    with contextlib.suppress(asyncio.TimeoutError):  # what is still missing is counted below
        await asyncio.wait_for(watcher, TAIL_S)
    return _summary(run, rows, sent)


async def _send_until(client: Client, run: BenchRun, agents: list[Any], sent: int, rate: float, end: float) -> int:
    """Send the run's intents due before ``end`` (wall clock), then wait for ``end``; returns how
    many the run has sent."""
    while run.began + sent / rate < end:
        await pace(run.began, sent, rate)
        intent = bench_intent(agents, sent)
        run.wanted.add(intent.intent_id)
        run.sent_at[intent.intent_id] = time.time()
        await client.submit(intent)
        sent += 1
    await asyncio.sleep(max(0.0, end - time.time()))
    return sent


def _row(run: BenchRun, before: tuple[float, dict[str, Any]], after: tuple[float, dict[str, Any]]) -> dict[str, Any]:
    return interval(before[0], after[0], run.sent_at, run.seen_at, before[1], after[1])


def _line(row: dict[str, Any]) -> str:
    cpu = ", ".join(f"{name} {v}" for name, v in row["cpu_percent_of_one_core"].items())
    return (
        f"minute {row['minute']:>3}: sent {row['sent']:>6}, outcomes {row['outcomes']:>6}, "
        f"p50 {row['latency_ms_p50']} ms, p99 {row['latency_ms_p99']} ms; CPU % of one core: {cpu}"
    )


def _summary(run: BenchRun, rows: list[dict[str, Any]], sent: int) -> dict[str, Any]:
    """The whole run: the rows, and every measured intent's latency and outcome together."""
    latencies = [(run.seen_at[i] - t) * 1000 for i, t in run.sent_at.items() if i in run.seen_at]
    return {
        "minutes": rows,
        "sent": sent,
        "outcomes": len(latencies),
        "unanswered": sent - len(latencies),
        "rejected": len(run.rejected),
        "first_rejections": run.rejected[:3],
        "latency_ms_p50": percentile_ms(latencies, 0.50) if latencies else None,
        "latency_ms_p99": percentile_ms(latencies, 0.99) if latencies else None,
    }


def soak(minutes: int, rate: float, agents: int, mode: Mode, progress: Callable[[str], object]) -> dict[str, Any]:
    with bench_stack("soak", mode.storage, progress, parts=UP_PARTS) as bench:
        progress(f"soak: {minutes} minute(s) at {rate}/s from {agents} agent(s), a line a minute")
        result = asyncio.run(_soak(bench.stack.settings, minutes, rate, agents, bench.pids, mode, progress))
        bench.clean = result["unanswered"] == 0 and result["rejected"] == 0
    return {
        "benchmark": "soak",
        "broker_storage": mode.storage,
        "rate_per_s": rate,
        "agents": agents,
        "cpus": os.cpu_count(),
        **result,
    }


def _print(report: dict[str, Any]) -> None:
    names = list(report["minutes"][0]["cpu_percent_of_one_core"]) if report["minutes"] else []
    print(
        f"soak: {report['rate_per_s']}/s from {report['agents']} agent(s), {report['broker_storage']} broker storage; "
        f"{report['sent']} sent, {report['outcomes']} outcomes ({report['rejected']} rejected, "
        f"{report['unanswered']} unanswered); p50 {report['latency_ms_p50']} ms, p99 {report['latency_ms_p99']} ms"
    )
    print("CPU in % of one core")
    print(
        f"{'minute':>6} {'sent':>6} {'outcomes':>8} {'p50 ms':>8} {'p99 ms':>8} " + " ".join(f"{n:>12}" for n in names)
    )
    for row in report["minutes"]:
        cpu = row["cpu_percent_of_one_core"]
        print(
            f"{row['minute']:>6} {row['sent']:>6} {row['outcomes']:>8} {row['latency_ms_p50']!s:>8} "
            f"{row['latency_ms_p99']!s:>8} " + " ".join(f"{cpu[n]:>12}" for n in names)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden bench soak", description=__doc__)
    parser.add_argument("--minutes", type=int, default=10, help="how long the load lasts, in minutes")
    parser.add_argument("--rate", type=float, default=20.0, help="intents a second, steady")
    parser.add_argument("--agents", type=int, default=4, help="agents the intents come from, in turn")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="on the embedded broker, as `warden up --memory` (default: Apache Kafka, as `warden up`)",
    )
    add_profile_argument(parser)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for name, value in (("minutes", args.minutes), ("rate", args.rate), ("agents", args.agents)):
        if value <= 0:
            parser.error(f"--{name} must be above 0, got {value}")
    mode = Mode(storage="memory" if args.memory else "durable", profile=args.profile)
    report = soak(args.minutes, args.rate, args.agents, mode, note)
    print_json(report) if args.json else _print(report)
    return 0 if report["unanswered"] == 0 and report["rejected"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
