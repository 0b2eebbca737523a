"""``warden bench broker``: what one Kafka hop costs on the embedded broker (Tansu), without Warden.

Two figures explain the pipeline's latency floor and the broker's idle CPU:

- **hop**: a record produced (acknowledged) and then read by a consumer already waiting on the
  broker, by the consumer's fetch wait (``fetch_max_wait_ms``). Records go out at random moments,
  10-50 ms apart, as an agent's intents do. Tansu does not wake a waiting fetch when a record
  arrives: it scans, sleeps half the time left and scans again, so the wait shows in every hop.
- **idle**: the broker's CPU while one consumer waits on partitions that stay empty, by the number
  of partitions it fetches: what a waiting reader costs the broker when nothing happens.

A fresh in-memory Tansu on a free port (the stack's own broker, under a temporary home) is started
and stopped by the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.bench_figures import cpu_seconds, percentile
from infra.cli.output import note, print_json
from infra.stack import LocalStack, local_settings
from schemas import topics

TOPIC_PARTITIONS = topics.PARTITIONS


def _ms(samples: list[float], q: float) -> float:
    return round(percentile(samples, q), 2)


async def _hops(broker: str, waits: list[int], hops: int, progress) -> list[dict]:
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    rows = []
    try:
        for wait in waits:
            progress(f"hop: {hops} records to a consumer waiting {wait} ms")
            consumer = AIOKafkaConsumer(bootstrap_servers=broker, fetch_max_wait_ms=wait, enable_auto_commit=False)
            await consumer.start()
            try:
                consumer.assign([TopicPartition("hop", p) for p in range(TOPIC_PARTITIONS)])
                await consumer.seek_to_end()
                await asyncio.sleep(0.3)  # the consumer's first fetch is waiting on the broker
                latency, ack = [], []
                for n in range(hops):
                    await asyncio.sleep(random.uniform(0.010, 0.050))
                    sent = time.perf_counter()
                    await producer.send_and_wait("hop", b"x", key=str(n).encode())
                    acked = time.perf_counter()
                    while not await consumer.getmany(timeout_ms=1000):
                        pass
                    latency.append((time.perf_counter() - sent) * 1000)
                    ack.append((acked - sent) * 1000)
            finally:
                await consumer.stop()
            rows.append({"fetch_wait_ms": wait, "hops": hops, "produce_ack_ms_p50": _ms(ack, 0.5),
                         "hop_ms_p50": _ms(latency, 0.5), "hop_ms_p90": _ms(latency, 0.9),
                         "hop_ms_p99": _ms(latency, 0.99)})
    finally:
        await producer.stop()
    return rows


async def _idle(broker: str, pid: int, partitions: list[int], wait: int, seconds: float, progress) -> list[dict]:
    rows = []
    for count in partitions:
        progress(f"idle: one consumer waiting {wait} ms on {count} empty partitions, {seconds:g} s")
        consumer = AIOKafkaConsumer(bootstrap_servers=broker, fetch_max_wait_ms=wait, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(f"idle-{p // TOPIC_PARTITIONS}", p % TOPIC_PARTITIONS)
                             for p in range(count)])
            await asyncio.sleep(0.5)
            broker_before, began = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - began
            rows.append({"partitions": count, "fetch_wait_ms": wait,
                         "broker_cpu_percent_of_one_core": round(100 * (cpu_seconds(pid) - broker_before) / elapsed, 1)})
        finally:
            await consumer.stop()
    return rows


async def _measure(broker: str, pid: int, waits: list[int], hops: int, partitions: list[int], seconds: float,
                   progress) -> dict:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        idle_topics = -(-max(partitions) // TOPIC_PARTITIONS)
        await admin.create_topics([NewTopic("hop", TOPIC_PARTITIONS, 1)] +
                                  [NewTopic(f"idle-{t}", TOPIC_PARTITIONS, 1) for t in range(idle_topics)])
    finally:
        await admin.close()
    return {"hop": await _hops(broker, waits, hops, progress),
            "idle": await _idle(broker, pid, partitions, 20, seconds, progress)}


def run(waits: list[int], hops: int, partitions: list[int], seconds: float, progress) -> dict:
    with tempfile.TemporaryDirectory(prefix="warden-bench-broker-") as home:
        stack = LocalStack(local_settings(Path(home)))
        try:
            stack.start(parts=("broker",))
            broker, pid = stack.settings.broker, stack.processes["broker"].pid
            return {"benchmark": "broker", "broker": "tansu (memory storage)", "cpus": os.cpu_count(),
                    **asyncio.run(_measure(broker, pid, waits, hops, partitions, seconds, progress))}
        finally:
            stack.stop()


def _numbers(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden bench broker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", type=_numbers, default=[5, 20, 100],
                        help="consumer fetch waits to measure a hop at, ms, comma-separated (default: 5,20,100)")
    parser.add_argument("--hops", type=int, default=150, help="records per fetch wait (default: %(default)s)")
    parser.add_argument("--partitions", type=_numbers, default=[4, 24],
                        help="partition counts for the idle figure, comma-separated (default: 4,24)")
    parser.add_argument("--seconds", type=float, default=8.0, help="idle measurement per count (default: %(default)s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.hops < 1 or not args.waits or not args.partitions or args.seconds <= 0:
        parser.error("--hops, --waits, --partitions and --seconds must be positive")
    result = run(args.waits, args.hops, args.partitions, args.seconds, lambda line: note(f"bench broker: {line}"))
    if args.json:
        print_json(result)
        return 0
    print("one hop: produced (acknowledged), then read by a consumer already waiting")
    print("  fetch wait   ack p50    hop p50    hop p90    hop p99")
    for row in result["hop"]:
        print(f"  {row['fetch_wait_ms']:>7} ms {row['produce_ack_ms_p50']:>7} ms {row['hop_ms_p50']:>7} ms "
              f"{row['hop_ms_p90']:>7} ms {row['hop_ms_p99']:>7} ms")
    print("an idle consumer (fetch wait 20 ms): broker CPU, % of one core")
    for row in result["idle"]:
        print(f"  {row['partitions']:>3} partitions: {row['broker_cpu_percent_of_one_core']} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
