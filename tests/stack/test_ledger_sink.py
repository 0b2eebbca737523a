"""The ledger sink on a real broker and real chDB: appends, skips
redeliveries, records unreadable records, publishes signed checkpoints (on Tansu), and
resumes exactly once after SIGKILL (on Apache Kafka, what `warden up` runs on); and delivers
its audit webhooks to a receiver that was down, across a restart."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pyarrow as pa
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from standardwebhooks.webhooks import Webhook

from infra.cli import main
from infra.stack.local import free_port
from ledger.gaps import OffsetGap, OffsetGaps
from ledger.keys import local_public_key
from ledger.note import ED25519, NoteKey
from ledger.schema import AUDIT_LOG
from ledger.sink import SinkOptions, _gather, run_sink
from ledger.store import ChdbStore, StoreError, store_path
from ledger.verify import verify
from runtime.config import Settings
from runtime.kafka import partitions
from runtime.trust import audit_signer
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_record
from schemas.auth import AuditSigner
from sdk.admin import load_or_create_admin_key
from tests.ledger_support import (
    T0,
    broker_alone,
    count_via_endpoint,
    intent_digest_of,
    pipeline_events,
    produce,
    published_checkpoint,
    published_checkpoints,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker() -> Iterator[str]:
    with broker_alone() as address:
        yield address


@pytest.fixture
def kafka() -> Iterator[str]:
    with broker_alone("durable") as address:
        yield address


def _settings(tmp_path: Path, broker: str) -> Settings:
    return dataclasses.replace(
        Settings(), home=tmp_path / "home", broker=broker, clickhouse_url=None, ledger_http=f"127.0.0.1:{free_port()}"
    )


def _rows(settings: Settings, sql: str) -> list[dict[str, Any]]:
    store = ChdbStore(store_path(settings), read_only=True)
    try:
        rows: list[dict[str, Any]] = store.arrow(sql).to_pylist()
        return rows
    finally:
        store.close()


def test_sink_appends_skips_redeliveries_records_unreadable_and_publishes_checkpoints(
    tmp_path: Path, broker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, broker)
    worker = audit_signer(settings, "worker")
    events = pipeline_events(300)
    # The first half one event per record, the rest one record per intent and writer, as the
    # services write them.
    payloads = [(e.agent_id, e.to_bytes()) for e in events[:150]]
    payloads += [
        (agent, audit_record([e.to_bytes() for e in members]))
        for (agent, _, _), group in itertools.groupby(
            events[150:], lambda e: (e.agent_id, e.intent_id, e.actor == "service:signer")
        )
        for members in [list(group)]
    ]
    assert len(payloads) < 260
    # A worker that crashed and re-emitted 40 events, one record of several, and the same events
    # joined another way; then records nobody can read, signed by the worker: not JSON, an empty
    # array, and an array with one bad event (kept whole as one unreadable row: its good event is
    # not chained alone).
    stranger = events[0].model_copy(update={"event_id": "stranger"})
    halves = [e for e in events if e.intent_id == events[200].intent_id and e.actor != "service:signer"]
    again: list[tuple[Any, ...]] = (
        payloads[100:140]
        + [payloads[-1]]
        + [(halves[0].agent_id, audit_record([e.to_bytes() for e in part])) for part in (halves[:2], halves[2:])]
    )
    junk = [b"{not json", b"[]", audit_record([stranger.to_bytes(), b'{"event_id": 1}'])]
    again += [("agent-0", value, worker.headers(value)) for value in junk]
    # What a topic writer without a pinned key can do, each a readable record of new events: no
    # signature; a key the sink does not pin, under the worker's id; the signer's real key over
    # other bytes; and the worker's real key on a record that says it is the signer.
    forged = [
        events[0].model_copy(
            update={"event_id": f"forged-{n}", "actor": "service:signer", "action": AuditAction.TX_SIGNED}
        )
        for n in range(4)
    ]
    stranger_key = AuditSigner("worker", settings.worker_id, Ed25519PrivateKey.generate())
    signer = audit_signer(settings, "signer")
    again += [
        ("agent-0", forged[0].to_bytes(), []),
        ("agent-0", forged[1].to_bytes(), stranger_key.headers(forged[1].to_bytes())),
        ("agent-0", forged[2].to_bytes(), signer.headers(forged[2].to_bytes() + b" ")),
        ("agent-0", forged[3].to_bytes(), worker.headers(forged[3].to_bytes())),
    ]

    async def scenario() -> int:
        stop = asyncio.Event()
        options = SinkOptions(checkpoint_every=50, checkpoint_interval=timedelta(seconds=1), batch_max=64)
        task = asyncio.create_task(run_sink(settings, stop, options=options))
        await produce(settings, payloads)
        await produce(settings, again)  # after: one call's records may reach the broker in any order
        deadline = time.monotonic() + 180  # generous: the loop leaves as soon as every row is in
        count = -1
        while time.monotonic() < deadline and not task.done() and count < 307:
            await asyncio.sleep(0.3)
            # The endpoint is served by this very loop: query from a thread.
            count = await asyncio.to_thread(count_via_endpoint, settings)
        await asyncio.sleep(1.5)  # past the checkpoint interval, so every row is covered
        stop.set()
        await task
        return count

    assert asyncio.run(scenario()) == 307
    rows = _rows(
        settings, f"SELECT chain, seq, event_id, intent_id, action, actor, details FROM {AUDIT_LOG} ORDER BY chain, seq"
    )
    assert len(rows) == len({r["event_id"] for r in rows}) == 307
    assert {r["event_id"] for r in rows if r["action"] != AuditAction.DLQ_RECORDED} == {e.event_id for e in events}
    # The events of one record are chained one after the other, in the record's order.
    for intent in {e.intent_id for e in events[150:]} - {e.intent_id for e in events[:150]}:
        chained = [(r["chain"], r["seq"], r["event_id"]) for r in rows if r["intent_id"] == intent]
        assert [c[2] for c in chained] == [e.event_id for e in events if e.intent_id == intent], (intent, chained)
        assert [c[:2] for c in chained] == [(chained[0][0], chained[0][1] + i) for i in range(len(chained))]
    unreadable = [r for r in rows if r["action"] == AuditAction.DLQ_RECORDED]
    assert len(unreadable) == 7 and {r["actor"] for r in unreadable} == {"service:ledger"}
    details = [orjson.loads(r["details"]) for r in unreadable]
    reasons = [d["reason"] for d in details]
    junk_reasons = [d["reason"] for d in details if base64.b64decode(d["payload_b64"]) in junk]
    assert len(junk_reasons) == 3, reasons
    assert all("neither an AuditEvent nor a JSON array of them" in reason for reason in junk_reasons), reasons
    assert "at least 1 item" in junk_reasons[1] and "1.event_id" in junk_reasons[2], reasons
    # Each forgery is on the record, as the ledger's own event naming why, never as the signer's.
    why = {base64.b64decode(d["payload_b64"]): d["reason"] for d in details}
    assert why[forged[0].to_bytes()].startswith("not believed: unsigned"), why
    assert why[forged[1].to_bytes()] == (
        f"not believed: the signature does not verify against worker key {settings.worker_id!r}"
    ), why
    assert why[forged[2].to_bytes()] == (
        f"not believed: the signature does not verify against signer key {settings.signer_id!r}"
    ), why
    assert why[forged[3].to_bytes()] == (
        "not believed: an event claims actor 'service:signer', which a worker key may not write as"
    ), why
    assert "stranger" not in {r["event_id"] for r in rows}
    assert not {r["event_id"] for r in rows} & {e.event_id for e in forged}
    assert not [
        r
        for r in rows
        if r["action"] == AuditAction.TX_SIGNED
        and r["intent_id"] == forged[0].intent_id
        and r["event_id"] not in {e.event_id for e in events}
    ]

    key = local_public_key(settings.home)
    store = ChdbStore(store_path(settings), read_only=True)
    try:
        report = verify(store, key)
    finally:
        store.close()
    assert report.ok, [p.describe() for p in report.problems]
    assert all(c.uncovered_rows == 0 for c in report.chains)
    # What the auditor's command says of them: the chains are sound, and four records were not believed.
    monkeypatch.setenv("WARDEN_HOME", str(settings.home))
    monkeypatch.setenv("WARDEN_LEDGER_HTTP", f"127.0.0.1:{free_port()}")  # no sink serves: chDB directly
    capsys.readouterr()
    assert main(["audit", "verify", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["records_not_believed"] == 4
    assert main(["audit", "verify"]) == 0
    assert "note: 4 record(s) on warden.audit.events were not believed" in capsys.readouterr().out

    published = asyncio.run(published_checkpoints(broker))
    log = NoteKey(settings.ledger.log_name, ED25519, key)
    assert published and all(published_checkpoint(body, log) for body in published)
    heads = {(c.chain, c.last_checkpoint_seq) for c in report.chains}
    assert heads <= {(body["chain"], body["seq"]) for body in published}


def test_a_sink_that_stops_leaves_every_row_under_a_signed_checkpoint(tmp_path: Path, broker: str) -> None:
    """Stopped before its checkpoint cadence came round, the sink signs a closing checkpoint of
    every chain with rows no checkpoint covers: none is left protected by the chain alone, and
    each has a receipt."""
    settings = _settings(tmp_path, broker)
    events = pipeline_events(60, agents=4)

    async def scenario() -> None:
        stop = asyncio.Event()
        options = SinkOptions(checkpoint_every=100_000, checkpoint_interval=timedelta(hours=1))
        task = asyncio.create_task(run_sink(settings, stop, options=options))
        await produce(settings, [(e.agent_id, e.to_bytes()) for e in events])
        assert await asyncio.to_thread(_wait_for, lambda: count_via_endpoint(settings) == 60, 60)
        stop.set()
        await task

    asyncio.run(scenario())
    store = ChdbStore(store_path(settings), read_only=True)
    try:
        report = verify(store, local_public_key(settings.home))
    finally:
        store.close()
    assert report.ok and report.rows == 60 and len(report.chains) > 1, report.to_dict()
    assert [c.uncovered_rows for c in report.chains] == [0] * len(report.chains), report.to_dict()


async def _consumer_at_beginning(settings: Settings) -> tuple[AIOKafkaConsumer, list[Any]]:
    """A started consumer assigned every partition of the audit topic, each at its beginning."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.max_message_bytes,
    )
    await consumer.start()
    tps = await partitions(consumer, (topics.AUDIT_EVENTS,))
    consumer.assign(tps)
    for tp in tps:
        await consumer.seek_to_beginning(tp)
    return consumer, tps


def test_a_gather_holds_at_most_its_bytes_and_what_it_left_is_read_next(broker: str) -> None:
    # A worker's audit record holds a lot of intents' events: the sink's INSERT is bounded by bytes
    # as well as by records, and a partition cut at the bound is read again from its first record
    # left out. Forty records of ~100 KB on the real broker, gathered 1 MB at a time.
    settings = dataclasses.replace(Settings(), broker=broker)
    sent: list[tuple[str, bytes, list[tuple[str, bytes]]]] = [
        (f"agent-{n % 8}", bytes([65 + n % 26]) * 100_000 + b"%d" % n, []) for n in range(40)
    ]
    asyncio.run(produce(settings, sent))

    async def gather_all() -> list[list[Any]]:
        consumer, tps = await _consumer_at_beginning(settings)
        try:
            lots, got, deadline = [], 0, time.monotonic() + 30
            # A long gather window: a full gather must return at once, not wait it out re-reading
            # the record it left out (four such waits would pass the deadline).
            options = SinkOptions(batch_max_bytes=1_000_000, gather_ms=10_000)
            while got < len(sent) and time.monotonic() < deadline:
                gathered = await _gather(consumer, tps, options, OffsetGaps(options.gap_grace))
                lot = [(tp.partition, m.offset, m.value) for tp, messages in gathered.items() for m in messages]
                if lot:
                    lots.append(lot)
                    got += len(lot)
            return lots
        finally:
            await consumer.stop()

    lots = asyncio.run(gather_all())
    sizes = [sum(len(value) for _, _, value in lot) for lot in lots]
    assert max(sizes) <= 1_000_000, sizes
    assert len(lots) >= 4  # ~4 MB in 1 MB gathers
    # Every record once, each partition from its first offset on, none lost where a gather was cut.
    read = [(partition, offset) for lot in lots for partition, offset, _ in lot]
    assert len(read) == len(set(read)) == len(sent)
    for partition in {p for p, _ in read}:
        offsets = [o for p, o in read if p == partition]
        assert offsets == list(range(len(offsets)))
    assert sorted(value for lot in lots for _, _, value in lot) == sorted(value for _, value, _ in sent)


def test_a_partition_fetched_past_a_missing_offset_is_read_again_from_it(broker: str) -> None:
    """Tansu's object-store engine can return offset 3 while 0-2, numbered first, are still being
    stored (ledger/gaps.py). On the real broker and consumer, the consumer is put at 3 while the
    guard expects 0: the gather takes nothing of that partition and moves it back to 0, and the next
    gather reads 0-9 in order. With no grace left, the same gap is read past and reported."""
    settings = dataclasses.replace(Settings(), broker=broker)
    asyncio.run(produce(settings, [("agent-gap", b"record %d" % n, []) for n in range(10)]))

    async def gather_twice(grace: timedelta) -> tuple[list[int], list[int], list[OffsetGap]]:
        consumer, tps = await _consumer_at_beginning(settings)
        try:
            # The partition the agent's key chose (Tansu's reported ends can trail a batch: read it).
            found = await consumer.getmany(*tps, timeout_ms=5000)
            (tp,) = found
            consumer.seek(tp, 3)
            gaps = OffsetGaps(grace)
            gaps.reset({tp.partition: 0})
            options = SinkOptions(gather_ms=500)
            first = await _gather(consumer, [tp], options, gaps)
            second = await _gather(consumer, [tp], options, gaps)
            return [m.offset for m in first.get(tp, [])], [m.offset for m in second.get(tp, [])], gaps.read_past
        finally:
            await consumer.stop()

    first, second, read_past = asyncio.run(gather_twice(timedelta(seconds=60)))
    assert (first, second, read_past) == ([], list(range(10)), [])
    first, _, read_past = asyncio.run(gather_twice(timedelta(0)))
    assert first == list(range(3, 10))
    assert [(g.partition, g.first, g.last) for g in read_past] == [(read_past[0].partition, 0, 2)]


def test_a_failed_insert_is_resumed_from_the_store_and_no_record_fetched_meanwhile_is_lost(
    tmp_path: Path, broker: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The sink fetches the next batch (and has its signatures checked) while it appends one: when
    that append fails, the batch fetched meanwhile is dropped and read again from where the store
    ends, so every offset of the topic is in the ledger once, in order."""
    settings = _settings(tmp_path, broker)
    events = pipeline_events(1_200, agents=8)
    inserts = {"audit_log": 0}
    real_insert = ChdbStore.insert

    def failing_third(store: ChdbStore, table: str, data: pa.Table) -> None:
        if table == AUDIT_LOG:
            inserts["audit_log"] += 1
            if inserts["audit_log"] == 3:
                raise StoreError("insert into audit_log failed: disk full (a test's)")
        return real_insert(store, table, data)

    monkeypatch.setattr(ChdbStore, "insert", failing_third)

    async def scenario() -> int:
        await produce(settings, [(e.agent_id, e.to_bytes()) for e in events])
        stop = asyncio.Event()
        options = SinkOptions(checkpoint_every=100, checkpoint_interval=timedelta(seconds=1), batch_max=64)
        task = asyncio.create_task(run_sink(settings, stop, options=options))
        deadline, count = time.monotonic() + 60, -1
        while time.monotonic() < deadline and not task.done() and count < len(events):
            await asyncio.sleep(0.3)
            count = await asyncio.to_thread(count_via_endpoint, settings)
        stop.set()
        await task
        return count

    with caplog.at_level("ERROR", logger="warden.ledger"):
        assert asyncio.run(scenario()) == len(events)
    assert inserts["audit_log"] > 3 and "resuming from what it holds" in caplog.text
    rows = _rows(
        settings,
        f"SELECT chain, seq, source_partition AS p, source_offset AS o, event_id FROM {AUDIT_LOG} ORDER BY chain, seq",
    )
    assert {r["event_id"] for r in rows} == {e.event_id for e in events} and len(rows) == len(events)
    for chain in {r["chain"] for r in rows}:
        offsets = [r["o"] for r in rows if r["chain"] == chain]
        assert offsets == list(range(len(offsets))), f"chain {chain}: every offset once, in order"
    _assert_verifies(settings)


def _assert_verifies(settings: Settings) -> None:
    store = ChdbStore(store_path(settings), read_only=True)
    try:
        report = verify(store, local_public_key(settings.home))
    finally:
        store.close()
    assert report.ok, [p.describe() for p in report.problems]


def _start_sink(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WARDEN_HOME": str(settings.home),
        "WARDEN_BROKER": settings.broker,
        "WARDEN_LEDGER_HTTP": settings.ledger_http,
        "WARDEN_LEDGER_CHECKPOINT_EVERY": "500",
        "WARDEN_LEDGER_CHECKPOINT_SECONDS": "1",
        "WARDEN_LEDGER_BATCH": "200",
        "PYTHONPATH": str(REPO),
    }
    env.pop("WARDEN_CLICKHOUSE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.sink"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab")
    )


def _wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_burst_then_restart_appends_exactly_once(tmp_path: Path, kafka: str) -> None:
    settings = _settings(tmp_path, kafka)
    log = tmp_path / "sink.log"
    # Enough that the kill (once 1,000 rows are in) lands well before the first 10,000 are.
    events = pipeline_events(12_000, agents=16)
    first, second = events[:10_000], events[10_000:]
    # The burst waits on the topic; the sink starts into it and is killed while
    # it appends: some rows stored, not all.
    asyncio.run(produce(settings, [(e.agent_id, e.to_bytes()) for e in first]))
    sink = _start_sink(settings, log)
    try:
        assert _wait_for(lambda: count_via_endpoint(settings) >= 1_000, 120), log.read_text()
        sink.send_signal(signal.SIGKILL)
        sink.wait(10)
        killed_at = _rows(settings, f"SELECT count() AS n FROM {AUDIT_LOG}")[0]["n"]
        assert 0 < killed_at < len(first), "the kill should land mid-burst"

        # The restarted sink reads on; meanwhile producers redeliver part of the
        # burst (as a crashed worker would) and send the rest.
        sink = _start_sink(settings, log)
        asyncio.run(produce(settings, [(e.agent_id, e.to_bytes()) for e in first[:2_000] + second]))
        assert _wait_for(lambda: count_via_endpoint(settings) == len(events), 240), log.read_text()
        time.sleep(1.5)
        sink.send_signal(signal.SIGTERM)
        assert sink.wait(60) == 0, log.read_text()
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()

    rows = _rows(
        settings,
        f"SELECT chain, count() AS n, uniqExact(event_id) AS ids, min(seq) AS lo, max(seq) AS hi FROM {AUDIT_LOG} GROUP BY chain",
    )
    assert sum(r["n"] for r in rows) == len(events)
    for r in rows:
        assert r["n"] == r["ids"], "no duplicate"
        assert (r["lo"], r["hi"]) == (0, r["n"] - 1), "no gap"
    assert sum(r["ids"] for r in rows) == len({e.event_id for e in events})
    _assert_verifies(settings)
    assert "resumed from" in log.read_text()


def test_a_new_broker_is_read_from_the_start_and_the_change_is_on_the_record(tmp_path: Path) -> None:
    """`warden up` again on the same home, on a new broker: a sink that resumed at the old broker's
    offsets would skip new audit events, never to reach the ledger. The sink tells brokers apart by
    cluster id (and by offsets past a partition's end), reads the new one from the start and
    appends a ledger.source_changed event. Both shapes: the new broker holding more records
    than the stored offsets (only the cluster id tells) and fewer (offsets past the end)."""
    first, more, fewer = (
        pipeline_events(120),
        pipeline_events(160, start=T0 + timedelta(days=1)),
        pipeline_events(12, start=T0 + timedelta(days=2)),
    )
    home = tmp_path / "one-home"
    options = SinkOptions(checkpoint_every=50, checkpoint_interval=timedelta(seconds=1), batch_max=64)

    def run_against(events: list[AuditEvent], expected: int) -> None:
        with broker_alone() as address:
            settings = dataclasses.replace(_settings(tmp_path, address), home=home)

            async def scenario() -> None:
                stop = asyncio.Event()
                task = asyncio.create_task(run_sink(settings, stop, options=options))
                await produce(settings, [(e.agent_id, e.to_bytes()) for e in events])
                deadline = time.monotonic() + 90
                held = 0
                while time.monotonic() < deadline and not task.done():
                    held = await asyncio.to_thread(count_via_endpoint, settings)
                    if held >= expected:
                        break
                    await asyncio.sleep(0.3)
                assert held == expected, f"{held} rows in the ledger, {expected} expected"
                await asyncio.sleep(1.5)
                stop.set()
                await task

            asyncio.run(scenario())

    # The event ids are the intents' (`pipeline_events` counts intents from 0 each time): of `more`,
    # the first 120 are held already and skipped, 40 are new; every one of `fewer` is held.
    run_against(first, 120)
    run_against(more, len({e.event_id for e in first + more}) + 1)  # + the source_changed event
    run_against(fewer, len({e.event_id for e in first + more + fewer}) + 2)
    settings = dataclasses.replace(Settings(), home=home, clickhouse_url=None)
    rows = _rows(settings, f"SELECT event_id, action, details FROM {AUDIT_LOG}")
    ids = {r["event_id"] for r in rows}
    missing = [e.event_id for e in first + more + fewer if e.event_id not in ids]
    assert missing == []
    changes = [orjson.loads(r["details"]) for r in rows if r["action"] == AuditAction.LEDGER_SOURCE_CHANGED]
    assert len(changes) == 2 and all(c["previous_cluster_id"] != c["cluster_id"] for c in changes)
    store = ChdbStore(store_path(settings), read_only=True)
    try:
        assert verify(store, local_public_key(home)).ok
    finally:
        store.close()
    # The auditor is told, every time it verifies. It reads the chDB directory: the endpoint address
    # is a free port of its own, not the default, where another stack on this machine may listen.
    env = {
        **os.environ,
        "WARDEN_HOME": str(home),
        "WARDEN_LEDGER_HTTP": f"127.0.0.1:{free_port()}",
        "PYTHONPATH": str(REPO),
    }
    env.pop("WARDEN_CLICKHOUSE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "audit", "verify"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK:") and result.stdout.count("the ledger's broker changed") == 2


class _Receiver:
    """A webhook receiver on loopback: not listening, or answering 503 to its first ``failing``
    requests and 204 after, keeping every request it took (headers, body) in arrival order."""

    def __init__(self) -> None:
        self.port = free_port()
        self.failing = 0
        self.refused = 0
        self.taken: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None

    async def up(self, failing: int) -> None:
        self.failing = failing
        app = web.Application()
        app.router.add_post("/hook", self._take)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.failing > 0:
            self.failing -= 1
            self.refused += 1
            return web.Response(status=503)
        self.taken.append((dict(request.headers), body))
        return web.Response(status=204)


def _ledger_sql(settings: Settings, sql: str) -> Sequence[Sequence[Any]]:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=int(settings.ledger_http.rsplit(":", 1)[1]))
    try:
        return client.query(sql).result_rows
    finally:
        client.close()


async def _until(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        await asyncio.sleep(0.2)


def test_a_webhook_receiver_down_across_a_ledger_restart_gets_every_chosen_event_signed_once_in_order(
    tmp_path: Path, broker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Chosen events (intent.rejected, tx.signed) of signed records are owed to an endpoint that
    refuses connections, then the ledger restarts, then the endpoint answers 503 a few times and
    then 204: it ends with every chosen event, each verified by the standardwebhooks package, once
    by id, each agent's in ledger order, and nothing else (no unchosen action, no forged record)."""
    settings = _settings(tmp_path, broker)
    fast: dict[str, Any] = {"webhook_retry_first_s": 0.1, "webhook_retry_max_s": 0.5, "webhook_poll_s": 0.1}
    settings = dataclasses.replace(settings, ledger=dataclasses.replace(settings.ledger, **fast))
    load_or_create_admin_key(settings.home)  # the local admin, pinned by the ledger as `warden up` pins it
    monkeypatch.setenv("WARDEN_HOME", str(settings.home))
    monkeypatch.setenv("WARDEN_LEDGER_HTTP", settings.ledger_http)
    chosen = (AuditAction.INTENT_REJECTED, AuditAction.TX_SIGNED)
    events = pipeline_events(120, agents=4)
    owed = [e for e in events if e.action in chosen]
    # A topic writer without a key writes what would be the signer's tx.signed: the ledger keeps
    # them as its own dlq.recorded rows, which nobody chose.
    forged = [
        owed[-1].model_copy(
            update={"event_id": f"forged-{n}", "agent_id": "agent-0", "action": AuditAction.TX_SIGNED, "actor": actor}
        )
        for n, actor in enumerate(("service:signer", "agent:agent-0", "admin:local-admin"))
    ]
    receiver = _Receiver()
    options = SinkOptions(checkpoint_every=50, checkpoint_interval=timedelta(seconds=1))

    def add() -> dict[str, Any]:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        capsys.readouterr()
        if main(["webhooks", "add", url, "--events", ",".join(chosen), "--json"]) != 0:
            return {}
        webhook: dict[str, Any] = orjson.loads(capsys.readouterr().out)
        return webhook

    def attempted_twice() -> bool:
        attempts: int = _ledger_sql(settings, "SELECT max(attempts) FROM webhook_deliveries FINAL")[0][0]
        return attempts >= 2

    async def scenario() -> tuple[dict[str, Any], list[Any]]:
        stop = asyncio.Event()
        sink = asyncio.create_task(run_sink(settings, stop, options=options))
        answer: dict[str, Any] = {}

        def added() -> bool:
            answer.update(add())
            return bool(answer)

        await _until(added, 60, "the ledger to take the admin's request")
        await produce(settings, [(e.agent_id, e.to_bytes()) for e in events])
        await produce(settings, [(e.agent_id, e.to_bytes(), []) for e in forged])
        await _until(lambda: count_via_endpoint(settings) >= len(events) + len(forged) + 1, 120, "the rows")
        await _until(attempted_twice, 60, "attempts refused")
        stop.set()
        await sink
        stop = asyncio.Event()
        restarted = asyncio.create_task(run_sink(settings, stop, options=options))
        await receiver.up(failing=5)
        owed_ids = {e.event_id for e in owed}
        await _until(lambda: owed_ids <= {h["webhook-id"] for h, _ in receiver.taken}, 120, "every delivery")
        await asyncio.sleep(1.0)  # whatever more it would send
        listing = await asyncio.to_thread(listed)
        # Removed by the admin: listed no more, and on the ledger.
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["webhooks", "remove", answer["id"]]) == 0
        assert f"webhook {answer['id']} removed by local-admin" in capsys.readouterr().out
        about = f"SELECT count() FROM {AUDIT_LOG} WHERE resource = 'webhook:{answer['id']}'"
        await _until(lambda: _ledger_sql(settings, about)[0][0] == 2, 30, "the removal on the ledger")
        assert await asyncio.to_thread(listed) == []
        stop.set()
        await restarted
        await receiver.down()
        return answer, listing

    def listed() -> list[Any]:
        capsys.readouterr()
        assert main(["webhooks", "list", "--json"]) == 0
        webhooks: list[Any] = orjson.loads(capsys.readouterr().out)
        return webhooks

    answer, listing = asyncio.run(scenario())
    assert answer["id"].startswith("wh_") and answer["secret"].startswith("whsec_")
    assert receiver.refused == 5
    verifier = Webhook(answer["secret"])
    firsts: dict[str, dict[str, Any]] = {}
    for headers, body in receiver.taken:
        payload = verifier.verify(body, headers)
        assert payload["data"]["event_id"] == headers["webhook-id"]
        firsts.setdefault(headers["webhook-id"], payload)
    assert set(firsts) == {e.event_id for e in owed}
    assert {p["type"] for p in firsts.values()} <= set(chosen)
    for agent in {e.agent_id for e in owed}:
        arrived = [event_id for event_id, p in firsts.items() if p["data"]["agent_id"] == agent]
        assert arrived == [e.event_id for e in owed if e.agent_id == agent], agent
    signed = next(p["data"] for p in firsts.values() if p["type"] == AuditAction.TX_SIGNED)
    assert signed["intent_digest"] == intent_digest_of(signed["intent_id"]) and signed["ledger"]["integrity_hash"]
    # Listed with what it was delivered; its addition and removal are on the ledger, as the local admin's.
    assert [(e["id"], e["delivered"], e["pending"], e["given_up"]) for e in listing] == [
        (answer["id"], len(owed), 0, 0)
    ]
    about = _rows(
        settings, f"SELECT actor, action FROM {AUDIT_LOG} WHERE resource = 'webhook:{answer['id']}' ORDER BY ts"
    )
    assert about == [
        {"actor": "admin:local-admin", "action": AuditAction.WEBHOOK_ADDED},
        {"actor": "admin:local-admin", "action": AuditAction.WEBHOOK_REMOVED},
    ]
