"""The empty pipeline of ``warden bench broker``: Warden's shape with no work in it.

A client sends records keyed by 16 agents at an offered rate; one relay process (the streams
worker's place) forwards each; a second (the signer's) writes a state record, waits for its
acknowledgement and then forwards it; the client waits for each, as an agent does. Each reader
also fetches empty topics, so that it reads as many partitions as its counterpart in the stack.
A relay is this module run as a process: ``python -m infra.bench.broker_pipeline --relay SPEC``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.bench.figures import cpu_seconds, percentile_ms
from schemas import topics

TOPIC_PARTITIONS = topics.PARTITIONS
PIPELINE_AGENTS = 16
# Empty topics each reader of the pipeline also fetches, so that it reads as many partitions as its
# counterpart in the stack: the worker six input topics, the signer its approvals and the policies,
# an agent's client the four outcome topics.
PIPELINE_IDLE = {
    "worker": [f"pipe-idle-{t}" for t in range(5)],
    "signer": ["pipe-idle-5"],
    "client": [f"pipe-idle-{t}" for t in range(6, 9)],
}


async def create_topics(broker: str, names: list[str]) -> None:
    """Topics of ``TOPIC_PARTITIONS`` partitions each, on the benchmark's broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, TOPIC_PARTITIONS, 1) for name in names])
    finally:
        await admin.close()


async def relay(broker: str, source: str, target: str, idle: list[str], wait: int, state: str | None) -> None:
    """Forward every record of ``source`` to ``target`` with the same key, as it arrives; with
    ``state``, first write each batch there and wait for its acknowledgement (the signer's
    changelog before its outcomes). Also fetches the ``idle`` topics, which stay empty. Says
    "ready" on stdout once it waits on its (new) topics; stops when its stdin closes, and then
    prints how many records it wrote to each topic (JSON)."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker, fetch_max_wait_ms=wait, enable_auto_commit=False, max_poll_records=500
    )
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([TopicPartition(t, p) for t in (source, *idle) for p in range(TOPIC_PARTITIONS)])
        await consumer.seek_to_beginning()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        parent_gone = asyncio.create_task(reader.read())  # EOF: the benchmark ended or died
        print("ready", flush=True)
        written = {topic: 0 for topic in (state, target) if topic}
        while not parent_gone.done():
            batch = await consumer.getmany(timeout_ms=200)
            records = [r for records in batch.values() for r in records]
            if not records:
                continue
            for topic in written:  # the state first, when there is one: dicts keep their order
                await asyncio.gather(*[await producer.send(topic, r.value, key=r.key) for r in records])
                written[topic] += len(records)
        print(json.dumps(written), flush=True)  # what it wrote, acknowledged, to each topic
    finally:
        await consumer.stop()
        await producer.stop()


async def _start_relay(
    broker: str, source: str, target: str, idle: list[str], wait: int, state: str | None
) -> asyncio.subprocess.Process:
    spec = json.dumps(
        {"broker": broker, "source": source, "target": target, "idle": idle, "wait": wait, "state": state}
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "infra.bench.broker_pipeline",
        "--relay",
        spec,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None  # stdout=PIPE just above
    if await asyncio.wait_for(process.stdout.readline(), 60) != b"ready\n":
        process.kill()
        raise RuntimeError(
            f"a relay ({source} -> {target}) did not start; run `python -m infra.bench.broker_pipeline "
            f"--relay '{spec}'` to see why"
        )
    return process


async def _stop_relay(process: asyncio.subprocess.Process) -> dict[str, int]:
    """Stop a relay; what it wrote to each topic."""
    if process.stdin is None or process.stdout is None:
        raise ValueError("a relay is stopped through its stdin and stdout pipes: start it with _start_relay")
    process.stdin.close()
    try:
        written = await asyncio.wait_for(process.stdout.readline(), 10)
        await asyncio.wait_for(process.wait(), 10)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError("a relay of the pipeline did not stop within 10 s of being told to") from None
    if not written:
        raise RuntimeError(
            f"a relay of the pipeline ended (exit status {process.returncode}) without saying what it "
            "wrote; its error is on this benchmark's stderr"
        )
    counts: dict[str, int] = json.loads(written)
    return counts


async def _through(broker: str, run: int, count: int, rate: int, wait: int) -> tuple[list[float], float]:
    """Send ``count`` records to the pipeline at ``rate``/s (0: all at once) and read each back:
    (latencies in ms, seconds from the first send to the last read)."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, fetch_max_wait_ms=wait, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign(
            [
                TopicPartition(t, p)
                for t in (f"pipe-out-{run}", *PIPELINE_IDLE["client"])
                for p in range(TOPIC_PARTITIONS)
            ]
        )
        await consumer.seek_to_beginning()
        await asyncio.sleep(0.3)  # the reader's first fetch is waiting on the broker
        sent: list[float] = [0.0] * count
        seen: dict[int, float] = {}

        async def read() -> None:
            while len(seen) < count:
                batch = await consumer.getmany(timeout_ms=200)
                now = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        seen.setdefault(int(record.value), now)

        reader = asyncio.create_task(read())
        began = time.perf_counter()
        for n in range(count):
            if rate:
                delay = began + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent[n] = time.perf_counter()
            await producer.send(f"pipe-in-{run}", str(n).encode(), key=f"agent-{n % PIPELINE_AGENTS}".encode())
        await asyncio.wait_for(reader, 120 + count / 100)
        return [(seen[n] - sent[n]) * 1000 for n in range(count)], max(seen.values()) - began
    finally:
        await consumer.stop()
        await producer.stop()


class _Relays:
    """The pipeline's two relay processes at one fetch wait, each reading as many partitions as its
    counterpart in the stack: after the block, ``written`` says what each wrote to which topic."""

    def __init__(self, broker: str, wait: int, run: int) -> None:
        self.broker, self.wait, self.run = broker, wait, run
        self.written: dict[str, int] = {}

    async def __aenter__(self) -> "_Relays":
        # Topics of its own for each run: Tansu's reported end of a topic can trail its last
        # record, so a reader that seeks to the end of a used topic may read the last run's records.
        await create_topics(
            self.broker, [f"{name}-{self.run}" for name in ("pipe-in", "pipe-mid", "pipe-out", "pipe-state")]
        )
        self.worker = await _start_relay(
            self.broker, f"pipe-in-{self.run}", f"pipe-mid-{self.run}", PIPELINE_IDLE["worker"], self.wait, None
        )
        try:
            self.signer = await _start_relay(
                self.broker,
                f"pipe-mid-{self.run}",
                f"pipe-out-{self.run}",
                PIPELINE_IDLE["signer"],
                self.wait,
                f"pipe-state-{self.run}",
            )
        except BaseException:
            await _stop_relay(self.worker)
            raise
        return self

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.worker.pid) + cpu_seconds(self.signer.pid)

    async def __aexit__(self, *exc: Any) -> None:
        try:
            signer = await _stop_relay(self.signer)
        finally:
            worker = await _stop_relay(self.worker)
        self.written = {topic.rsplit("-", 1)[0]: n for topic, n in {**worker, **signer}.items()}


async def empty_pipeline(
    broker: str, pid: int, waits: list[int], count: int, rate: int, burst: int, progress: Callable[[str], object]
) -> dict[str, Any]:
    rows, burst_row = [], None
    for run, wait in enumerate(waits):
        progress(f"pipeline: {count} records at {rate}/s through two relays, fetch wait {wait} ms")
        async with _Relays(broker, wait, run) as relays:

            def cpu() -> dict[str, float]:
                return {"broker": cpu_seconds(pid), "relays": relays.cpu_seconds(), "client": time.process_time()}

            before, began = cpu(), time.monotonic()
            latency, _ = await _through(broker, run, count, rate, wait)
            elapsed, after = time.monotonic() - began, cpu()
        rows.append(
            {
                "fetch_wait_ms": wait,
                "records": count,
                "offered_per_s": rate,
                "latency_ms_p50": percentile_ms(latency, 0.5),
                "latency_ms_p99": percentile_ms(latency, 0.99),
                "cpu_percent_of_one_core": {
                    name: round(100 * (after[name] - before[name]) / elapsed, 1) for name in before
                },
                "written": relays.written,
            }
        )
    if burst:
        progress(f"pipeline: a burst of {burst} records at once, fetch wait {waits[-1]} ms")
        async with _Relays(broker, waits[-1], len(waits)) as relays:
            latency, seconds = await _through(broker, len(waits), burst, 0, waits[-1])
        burst_row = {
            "fetch_wait_ms": waits[-1],
            "records": burst,
            "records_per_s": round(burst / seconds),
            "latency_ms_p50": percentile_ms(latency, 0.5),
            "latency_ms_p99": percentile_ms(latency, 0.99),
            "written": relays.written,
        }
    return {"pipeline": rows, "pipeline_burst": burst_row}


def main(argv: list[str] | None = None) -> int:
    """One relay process of the pipeline (started by ``_start_relay``)."""
    parser = argparse.ArgumentParser(prog="python -m infra.bench.broker_pipeline", description=main.__doc__)
    parser.add_argument("--relay", required=True, help="JSON: broker, source, target, idle, wait, state")
    spec = json.loads(parser.parse_args(argv).relay)
    asyncio.run(relay(spec["broker"], spec["source"], spec["target"], spec["idle"], spec["wait"], spec["state"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
