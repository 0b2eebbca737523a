"""``warden bench broker``: what one Kafka hop costs on the embedded broker (Tansu), without Warden.

Four figures explain the pipeline's latency floor, the broker's idle CPU and how it grows:

- **hop**: a record produced (acknowledged) and then read by a consumer already waiting on the
  broker, by the consumer's fetch wait (``fetch_max_wait_ms``). Records go out at random moments,
  10-50 ms apart, as an agent's intents do. Tansu does not wake a waiting fetch when a record
  arrives: it scans, sleeps half the time left and scans again, so the wait shows in every hop.
- **idle**: the broker's CPU while one consumer waits on partitions that stay empty, by the number
  of partitions it fetches: what a waiting reader costs the broker when nothing happens.
- **pipeline**: the fused pipeline's shape with no work in it, by fetch wait. A client sends
  records keyed by 16 agents at an offered rate; one relay process (the streams worker's place,
  reading 24 partitions) forwards each; a second (the signer's, reading 8) writes a state record,
  waits for its acknowledgement and then forwards it; the client waits for each on 16 partitions
  (the outcome topics), as an agent does. What it shows is the latency floor of the pipeline at
  that wait, and the broker and process CPU of its fetches, before any Warden work. Then a burst
  (all records at once) through the same relays: the transport's own throughput on these cores.
- **stored**: the broker's CPU for one hop (a fetch that returns a record) by the number of batches
  the partition already holds. Tansu 0.6.0 lists every batch a partition has ever stored to answer
  such a fetch, and keeps them all (it has no retention), so each one costs more than the last: the
  pipeline's figures drift up as a run writes, and a long-running embedded stack slows with use.

A fresh in-memory Tansu on a free port (the stack's own broker, under a temporary home) is started
and stopped by the benchmark. The pipeline's client and relays are in ``broker_pipeline``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.bench.broker_pipeline import PIPELINE_AGENTS, PIPELINE_IDLE, TOPIC_PARTITIONS, create_topics, empty_pipeline
from infra.bench.figures import cpu_seconds, numbers, percentile_ms
from infra.cli.output import note, print_json
from infra.stack.local import LocalStack, local_settings


@contextlib.asynccontextmanager
async def _waiting_reader(broker: str, wait: int, partitions: list[TopicPartition]) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer at the end of ``partitions`` whose first fetch is already waiting on the broker."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, fetch_max_wait_ms=wait, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_end()
        await asyncio.sleep(0.3)  # the consumer's first fetch is waiting on the broker
        yield consumer
    finally:
        await consumer.stop()


async def _hop(
    producer: AIOKafkaProducer, reader: AIOKafkaConsumer, topic: str, value: bytes, **where: Any
) -> tuple[float, float]:
    """One record produced 10-50 ms from now (records come at random moments, as an agent's intents
    do) and read back by ``reader``: (ms to its acknowledgement, ms until it was read)."""
    await asyncio.sleep(random.uniform(0.010, 0.050))
    sent = time.perf_counter()
    await producer.send_and_wait(topic, value, **where)
    acked = time.perf_counter()
    while not await reader.getmany(timeout_ms=1000):
        pass
    return (acked - sent) * 1000, (time.perf_counter() - sent) * 1000


async def _hops(broker: str, waits: list[int], hops: int, progress: Callable[[str], object]) -> list[dict[str, Any]]:
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    rows = []
    try:
        for wait in waits:
            progress(f"hop: {hops} records to a consumer waiting {wait} ms")
            partitions = [TopicPartition("hop", p) for p in range(TOPIC_PARTITIONS)]
            async with _waiting_reader(broker, wait, partitions) as reader:
                timings = [await _hop(producer, reader, "hop", b"x", key=str(n).encode()) for n in range(hops)]
            ack, latency = [t[0] for t in timings], [t[1] for t in timings]
            rows.append(
                {
                    "fetch_wait_ms": wait,
                    "hops": hops,
                    "produce_ack_ms_p50": percentile_ms(ack, 0.5),
                    "hop_ms_p50": percentile_ms(latency, 0.5),
                    "hop_ms_p90": percentile_ms(latency, 0.9),
                    "hop_ms_p99": percentile_ms(latency, 0.99),
                }
            )
    finally:
        await producer.stop()
    return rows


async def _idle(
    broker: str, pid: int, partitions: list[int], wait: int, seconds: float, progress: Callable[[str], object]
) -> list[dict[str, Any]]:
    rows = []
    for count in partitions:
        progress(f"idle: one consumer waiting {wait} ms on {count} empty partitions, {seconds:g} s")
        consumer = AIOKafkaConsumer(bootstrap_servers=broker, fetch_max_wait_ms=wait, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(
                [TopicPartition(f"idle-{p // TOPIC_PARTITIONS}", p % TOPIC_PARTITIONS) for p in range(count)]
            )
            await asyncio.sleep(0.5)
            broker_before, began = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - began
            rows.append(
                {
                    "partitions": count,
                    "fetch_wait_ms": wait,
                    "broker_cpu_percent_of_one_core": round(100 * (cpu_seconds(pid) - broker_before) / elapsed, 1),
                }
            )
        finally:
            await consumer.stop()
    return rows


async def _stored(
    broker: str, pid: int, counts: list[int], hops: int, progress: Callable[[str], object]
) -> list[dict[str, Any]]:
    """One partition filled to each of ``counts`` batches (one record each, as an intent is sent),
    then ``hops`` hops through it to a consumer waiting 20 ms. The broker's CPU per hop includes
    its scans of the waiting fetch between hops."""
    tp = TopicPartition("stored", 0)
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=0)
    await producer.start()
    rows, held = [], 0
    try:
        for count in counts:
            progress(f"stored: filling one partition to {count} batches, then {hops} hops")
            while held < count:
                await producer.send_and_wait(tp.topic, b"x" * 200, partition=tp.partition)
                held += 1
            async with _waiting_reader(broker, 20, [tp]) as reader:
                broker_before = cpu_seconds(pid)
                latency = [
                    (await _hop(producer, reader, tp.topic, b"y" * 200, partition=tp.partition))[1] for _ in range(hops)
                ]
                broker_cpu = cpu_seconds(pid) - broker_before
            rows.append(
                {
                    "batches_stored": held,
                    "hops": hops,
                    "hop_ms_p50": percentile_ms(latency, 0.5),
                    "broker_cpu_ms_per_hop": round(1000 * broker_cpu / hops, 3),
                }
            )
            held += hops
    finally:
        await producer.stop()
    return rows


async def _measure(
    broker: str,
    pid: int,
    waits: list[int],
    hops: int,
    partitions: list[int],
    seconds: float,
    pipeline_waits: list[int],
    pipeline_records: int,
    rate: int,
    burst: int,
    stored: list[int],
    progress: Callable[[str], object],
) -> dict[str, Any]:
    idle_topics = -(-max(partitions) // TOPIC_PARTITIONS)
    await create_topics(
        broker,
        [
            "hop",
            "stored",
            *(f"idle-{t}" for t in range(idle_topics)),
            *(name for names in PIPELINE_IDLE.values() for name in names),
        ],
    )
    return {
        "hop": await _hops(broker, waits, hops, progress),
        "idle": await _idle(broker, pid, partitions, 20, seconds, progress),
        **await empty_pipeline(broker, pid, pipeline_waits, pipeline_records, rate, burst, progress),
        "stored": await _stored(broker, pid, stored, hops, progress),
    }


def run(
    waits: list[int],
    hops: int,
    partitions: list[int],
    seconds: float,
    progress: Callable[[str], object],
    pipeline_waits: Sequence[int] = (20,),
    pipeline_records: int = 1000,
    rate: int = 100,
    burst: int = 20_000,
    stored: Sequence[int] = (),
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="warden-bench-broker-") as home:
        stack = LocalStack(local_settings(Path(home)))
        try:
            stack.start(parts=("broker",))
            broker, pid = stack.settings.broker, stack.processes["broker"].pid
            return {
                "benchmark": "broker",
                "broker": "tansu (memory storage)",
                "cpus": os.cpu_count(),
                **asyncio.run(
                    _measure(
                        broker,
                        pid,
                        waits,
                        hops,
                        partitions,
                        seconds,
                        list(pipeline_waits),
                        pipeline_records,
                        rate,
                        burst,
                        sorted(stored),
                        progress,
                    )
                ),
            }
        finally:
            stack.stop()


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    result = run(
        args.waits,
        args.hops,
        args.partitions,
        args.seconds,
        lambda line: note(f"bench broker: {line}"),
        args.pipeline_waits,
        args.pipeline_records,
        args.rate,
        args.burst,
        args.stored,
    )
    if args.json:
        print_json(result)
        return 0
    _print_report(result)
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the command line: the fetch waits, hops, partitions and stored batches to
    measure, and the empty pipeline's waits, records, rate and burst."""
    parser = argparse.ArgumentParser(prog="warden bench broker", description=__doc__.split("\n\n")[0])
    # 10 is WARDEN_FETCH_WAIT_MS's default on memory storage: the wait the pipeline runs at.
    parser.add_argument(
        "--waits",
        type=numbers,
        default=[5, 10, 20, 100],
        help="consumer fetch waits to measure a hop at, ms, comma-separated (default: 5,10,20,100)",
    )
    parser.add_argument("--hops", type=int, default=150, help="records per fetch wait (default: %(default)s)")
    parser.add_argument(
        "--partitions",
        type=numbers,
        default=[4, 24],
        help="partition counts for the idle figure, comma-separated (default: 4,24)",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="idle measurement per count (default: %(default)s)")
    parser.add_argument(
        "--pipeline-waits",
        type=numbers,
        default=[5, 10, 20],
        help="fetch waits to run the empty pipeline at, ms, comma-separated (default: 5,10,20)",
    )
    parser.add_argument(
        "--pipeline-records",
        type=int,
        default=1000,
        help="records through the empty pipeline per fetch wait (default: %(default)s)",
    )
    parser.add_argument("--rate", type=int, default=100, help="the pipeline's offered records/s (default: %(default)s)")
    parser.add_argument(
        "--burst",
        type=int,
        default=20_000,
        help="records sent at once through the pipeline at the last wait; 0: none (default: %(default)s)",
    )
    parser.add_argument(
        "--stored",
        type=numbers,
        default=[0, 2000, 10000],
        help="batch counts one partition is filled to before its hops are measured, "
        "comma-separated (default: 0,2000,10000)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if (
        args.hops < 1
        or not args.waits
        or not args.partitions
        or args.seconds <= 0
        or not args.pipeline_waits
        or args.pipeline_records < 1
        or args.rate < 1
        or args.burst < 0
        or not args.stored
    ):
        parser.error(
            "--hops, --waits, --partitions, --seconds, --pipeline-waits, --pipeline-records and --rate "
            "must be positive, --burst 0 or more, --stored one count or more"
        )
    return args


def _print_report(result: dict[str, Any]) -> None:
    """The figures as tables: one hop by fetch wait, the idle consumer by partitions, the empty
    pipeline (and its burst), and one hop by the batches its partition holds."""
    print("one hop: produced (acknowledged), then read by a consumer already waiting")
    print("  fetch wait   ack p50    hop p50    hop p90    hop p99")
    for row in result["hop"]:
        print(
            f"  {row['fetch_wait_ms']:>7} ms {row['produce_ack_ms_p50']:>7} ms {row['hop_ms_p50']:>7} ms "
            f"{row['hop_ms_p90']:>7} ms {row['hop_ms_p99']:>7} ms"
        )
    print("an idle consumer (fetch wait 20 ms): broker CPU, % of one core")
    for row in result["idle"]:
        print(f"  {row['partitions']:>3} partitions: {row['broker_cpu_percent_of_one_core']} %")
    print(
        f"the pipeline's shape with no work: client -> relay -> relay (state acknowledged, then out) -> client, "
        f"{PIPELINE_AGENTS} keys"
    )
    print("  fetch wait   offered    p50        p99        CPU, % of one core")
    for row in result["pipeline"]:
        cpu = row["cpu_percent_of_one_core"]
        print(
            f"  {row['fetch_wait_ms']:>7} ms {row['offered_per_s']:>6}/s {row['latency_ms_p50']:>7} ms "
            f"{row['latency_ms_p99']:>7} ms   broker {cpu['broker']}, relays {cpu['relays']}, client {cpu['client']}"
        )
    if result["pipeline_burst"]:
        row = result["pipeline_burst"]
        print(
            f"  a burst of {row['records']} records at once (fetch wait {row['fetch_wait_ms']} ms): "
            f"{row['records_per_s']} records/s, p50 {row['latency_ms_p50']} ms, p99 {row['latency_ms_p99']} ms"
        )
    print("one hop (fetch wait 20 ms) by the batches its partition already holds: Tansu lists them all")
    print("  batches stored   hop p50    broker CPU per hop")
    for row in result["stored"]:
        print(f"  {row['batches_stored']:>14} {row['hop_ms_p50']:>7} ms {row['broker_cpu_ms_per_hop']:>9} ms")


if __name__ == "__main__":
    sys.exit(main())
