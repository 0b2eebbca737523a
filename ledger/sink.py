"""The ledger sink: warden.audit.events in, audit_log rows and signed checkpoints out.

Exactly-once on an at-least-once bus, with ClickHouse as the only source of
truth: on start (and after any failed write) the sink reads back, per chain, the
last seq and hash, the Merkle frontier, the Kafka offsets it had appended up to
and the 64-bit hashes of every event id it holds; it then reads each partition
from the next offset. A batch is one INSERT, which ClickHouse commits whole or
not at all, so a crash at any instant leaves a prefix of every chain, and the
restart continues it. An event id already in the ledger is skipped.

Partitions are assigned, not joined through a consumer group: one sink owns
a store, and a restarted sink never waits out a dead member's session timeout.

The ledger never skips: stored offsets mean something only on the broker they
were read from. The sink remembers that broker's cluster id; when it meets
another (a fresh embedded broker, a restored cluster) it reads every partition
from the start (event ids it holds are skipped) and appends a
``ledger.source_changed`` event, so the change, and what the previous broker
may have held unread, is on the record, never silent. A stored offset past a
partition's reported end on the same broker (Tansu's high watermark can trail
its log) is read again from the start too, without an event.

This module is the loop that moves records; what it does with them lives beside it:
`ledger.batch` (a batch of records into chained rows, and the checkpoints due), `ledger.resume`
(what the store proves on start) and `ledger.source` (which broker the offsets belong to).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from ledger import checkpoint as checkpoints
from ledger.append import Ledger
from ledger.batch import append_records, sign_checkpoints
from ledger.checks import Checked, Record, WriterChecks
from ledger.cosigning import Witnesses, log_key, parse_witnesses, store_signatures
from ledger.endpoint import Endpoint
from ledger.gaps import OffsetGaps, offsets_unread_event
from ledger.keys import ledger_key_id, load_or_create_signing_key, public_key_hex
from ledger.lag import AppendProgress
from ledger.note import Note, NoteError
from ledger.resume import latest_checkpoints, resume
from ledger.source import cluster_id, read_source, source_changed_event, write_source
from ledger.store import ChdbStore, Store, StoreError, chain_leaves, open_writer
from ledger.webhooks import Webhooks
from runtime import metrics
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.holes import settle_s
from runtime.kafka import client_options, fetched_ends, partition_ids
from runtime.kafka import service_producer as new_producer
from runtime.readiness import mark_ready
from runtime.trust import PinnedAuditKeys
from schemas import topics
from schemas.audit import AuditEvent
from schemas.auth import AuditSigner

log = logging.getLogger("warden.ledger")


@dataclass(frozen=True)
class SinkOptions:
    checkpoint_every: int = 1000
    checkpoint_interval: timedelta = timedelta(seconds=10)
    batch_max: int = 5000
    batch_max_bytes: int = 8 << 20
    poll_ms: int = 200
    gather_ms: int = 500
    # How long an offset may stay missing while later ones are there (`ledger.gaps`); from the
    # settings, `runtime.holes.settle_s`: none on Apache Kafka, else a quiet period.
    gap_grace: timedelta = timedelta(seconds=10)

    @classmethod
    def from_settings(cls, settings: Settings) -> "SinkOptions":
        return cls(
            checkpoint_every=settings.ledger.checkpoint_every,
            checkpoint_interval=timedelta(seconds=settings.ledger.checkpoint_seconds),
            batch_max=settings.ledger.batch_max,
            batch_max_bytes=settings.ledger.batch_max_bytes,
            gap_grace=timedelta(seconds=settle_s(settings, cls.poll_ms)),
        )


async def _open_store(settings: Settings, stop: asyncio.Event) -> Store | None:
    announced = False
    while not stop.is_set():
        try:
            return await asyncio.to_thread(open_writer, settings)
        except StoreError as exc:
            if not announced:
                log.warning("%s; retrying every second", exc)
                announced = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return None


async def _partitions(consumer: AIOKafkaConsumer, stop: asyncio.Event) -> list[TopicPartition]:
    announced = False
    while not stop.is_set():
        found = await partition_ids(consumer, topics.AUDIT_EVENTS)
        if found:
            return [TopicPartition(topics.AUDIT_EVENTS, p) for p in sorted(found)]
        if not announced:
            log.info("waiting for topic %s to exist", topics.AUDIT_EVENTS)
            announced = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    return []


@dataclass(frozen=True)
class Fetched:
    records: list[Record]
    checked: Checked


class _Sink:
    def __init__(self, settings: Settings, store: Store, options: SinkOptions, checks: WriterChecks) -> None:
        self.settings = settings
        self.checks = checks
        self.store = store
        self.options = options
        self.key = load_or_create_signing_key(settings.home)
        # The notices it publishes are audit records like any other: signed, and checked on the way back in.
        public = public_key_hex(self.key)
        self.audit_signer = AuditSigner("ledger", ledger_key_id(public), self.key)
        self.audit_keys = PinnedAuditKeys(settings, ledger_key_id(public), public)
        self.ledger: Ledger | None = None
        # Signed checkpoints to publish, each with its note (cosigned by the witnesses that answered).
        self.unpublished: list[tuple[checkpoints.Checkpoint, Note]] = []
        self.log_name = settings.ledger.log_name
        self.log_key = log_key(self.log_name, self.key)
        self.witnesses = Witnesses(parse_witnesses(settings.ledger.witnesses))
        self.appended = 0
        self.skipped = 0
        self.progress = AppendProgress({})
        self.gaps = OffsetGaps(options.gap_grace)
        self.source_file = settings.state_dir / "ledger_source.json"
        self.notices: list[AuditEvent] = []  # events the sink itself has to say, published with the checkpoints

    async def resume(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        self.ledger = await asyncio.to_thread(resume, self.store)
        cluster = await cluster_id(self.settings.broker)
        ends = await fetched_ends(consumer, tps)
        previous = read_source(self.source_file)
        stored = self.ledger.next_offsets
        beyond = {
            tp.partition: (stored[tp.partition], ends[tp]) for tp in tps if stored.get(tp.partition, 0) > ends[tp]
        }
        changed = bool(stored) and previous is not None and previous != cluster
        if changed:
            log.warning(
                "the broker is not the one this ledger read before (cluster %s, was %s): reading every "
                "partition from the start; held event ids are skipped",
                cluster,
                previous,
            )
            self.notices.append(source_changed_event(previous, cluster, stored, ends, utcnow()))
        elif beyond:
            # The same broker with an end before offsets already read (records lost, or a broker
            # that reports its ends short). Reading from the start again costs time, never an event.
            log.warning(
                "stored offsets past the reported end of partitions %s on the same broker %s: reading "
                "them from the start; held event ids are skipped",
                beyond,
                cluster,
            )
        for tp in tps:
            offset = stored.get(tp.partition)
            if offset is None or changed or tp.partition in beyond:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        positions = {tp.partition: await consumer.position(tp) for tp in tps}
        self.progress = AppendProgress(positions)
        self.gaps.reset(positions)
        write_source(self.source_file, cluster)
        heads = ", ".join(f"{h.chain}@{h.next_seq}" for h in sorted(self.ledger.heads.values(), key=lambda h: h.chain))
        log.info(
            "resumed from %s: next seq per chain %s; %d event ids held",
            self.store.description,
            heads or "(empty)",
            len(self.ledger.seen),
        )
        # A crash between storing and publishing a checkpoint must not leave
        # consumers without it; a repeat is byte-identical (the stored note) and
        # consumers keep one copy.
        latest = await asyncio.to_thread(latest_checkpoints, self.store)
        self.unpublished = []
        for cp in latest:
            try:
                self.unpublished.append((cp, cp.note(self.log_name)))
            except NoteError as exc:
                log.error(
                    "the stored checkpoint of chain %d at seq %d holds no readable signature (%s): not published "
                    "again. Run `warden audit verify --chain %d`",
                    cp.chain,
                    cp.seq,
                    exc,
                    cp.chain,
                )

    def _resumed(self) -> Ledger:
        """The ledger's state, which `resume` reads before anything is appended or signed."""
        if self.ledger is None:
            raise RuntimeError("the ledger sink appends and signs checkpoints only after resume()")
        return self.ledger

    async def fetch(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> "Fetched":
        """The next batch, its writers' signatures being checked (in processes) from now on."""
        gathered = await _gather(consumer, tps, self.options, self.gaps)
        for gap in self.gaps.read_past:
            log.warning(
                "%s partition %d: no record at offsets %d-%d for %.1f s while later ones were there: holes "
                "(a producer given them stopped before writing them, a transaction marker); reading on",
                topics.AUDIT_EVENTS,
                gap.partition,
                gap.first,
                gap.last,
                gap.waited.total_seconds(),
            )
            metrics.OFFSET_HOLES.labels(topics.AUDIT_EVENTS).inc(gap.last - gap.first + 1)
            self.notices.append(offsets_unread_event(gap, utcnow()))
        self.gaps.read_past.clear()
        records = [(tp.partition, m.offset, m.value, m.headers) for tp, messages in gathered.items() for m in messages]
        # In a thread: an unknown key id makes the pinned keys read their files. Nothing to check
        # (an idle poll) reads none, and spares the thread.
        if not records:
            return Fetched(records, self.checks.submit(records, self.audit_keys, self.settings.max_record_bytes))
        checked = await asyncio.to_thread(self.checks.submit, records, self.audit_keys, self.settings.max_record_bytes)
        return Fetched(records, checked)

    async def append(self, fetched: "Fetched", now: datetime) -> None:
        # Parsing and hashing run in a thread: the event loop keeps serving the endpoint and fetching.
        read, appended = await asyncio.to_thread(
            append_records,
            self.store,
            self._resumed(),
            fetched.records,
            fetched.checked,
            now,
            self.settings.max_record_bytes,
            self.audit_keys,
        )
        self.appended += appended
        # Every record of the batch is in the ledger now, its redeliveries included: their events were held.
        self.progress.appended((p, offset) for p, offset, _, _ in fetched.records)
        metrics.LEDGER_APPENDED.inc(appended)
        metrics.LEDGER_REDELIVERED.inc(read - appended)
        self.skipped += read - appended

    async def checkpoint(self, now: datetime, closing: bool = False) -> None:
        """Sign the checkpoints the chains owe; ``closing``: every chain with a row no checkpoint
        covers yet (a sink that stops leaves no row only the chain protects, and none without a
        receipt)."""
        interval = timedelta(0) if closing else self.options.checkpoint_interval
        # Asked here first, in memory: an idle poll owes none, and spares the thread.
        if not self._resumed().due_checkpoints(now, self.options.checkpoint_every, interval):
            return
        signed = await asyncio.to_thread(
            sign_checkpoints,
            self.store,
            self._resumed(),
            self.key,
            self.log_name,
            now,
            self.options.checkpoint_every,
            interval,
        )
        for cp in signed:
            self.unpublished.append((cp, await self.witnessed(cp, now)))

    async def witnessed(self, cp: checkpoints.Checkpoint, now: datetime) -> Note:
        """The checkpoint's note, cosigned by the witnesses that answered (their cosignatures
        stored: receipts carry them)."""
        note = cp.note(self.log_name)

        async def leaves_of(size: int) -> list[bytes]:
            return await asyncio.to_thread(chain_leaves, self.store, cp.chain, size)

        cosigned = await self.witnesses.cosign(note, leaves_of) if self.witnesses.configs else []
        if len(cosigned) < self.settings.ledger.witness_quorum:
            log.warning(
                "%s at size %d: %d witness cosignature(s), the policy asks for %d (WARDEN_LEDGER_WITNESS_QUORUM); "
                "its receipts fail that policy until a later checkpoint is cosigned",
                checkpoints.origin_of(self.log_name, cp.chain),
                cp.tree_size,
                len(cosigned),
                self.settings.ledger.witness_quorum,
            )
        signed = [(witness.key, signature) for witness, signature in cosigned]
        await asyncio.to_thread(store_signatures, self.store, cp, signed, now)
        return note.with_signatures(*(signature for _, signature in cosigned))

    async def publish(self, producer: AIOKafkaProducer) -> None:
        while self.notices:
            notice = self.notices[0]
            try:
                value = notice.to_bytes()
                await producer.send_and_wait(
                    topics.AUDIT_EVENTS, value, key=b"", headers=self.audit_signer.headers(value)
                )
            except KafkaError as exc:
                log.warning("cannot publish %s yet (%s); retried", notice.action, exc)
                return
            self.notices.pop(0)
        while self.unpublished:
            cp, note = self.unpublished[0]
            value = orjson.dumps(cp.message(note))
            try:
                await producer.send_and_wait(topics.AUDIT_CHECKPOINTS, value, key=f"chain-{cp.chain}".encode())
            except KafkaError as exc:
                log.warning(
                    "cannot publish checkpoint chain %d seq %d yet (%s); it is stored and will be retried",
                    cp.chain,
                    cp.seq,
                    exc,
                )
                return
            self.unpublished.pop(0)


async def run_sink(
    settings: Settings, stop: asyncio.Event | None = None, *, options: SinkOptions | None = None
) -> None:
    """Consume, append, checkpoint and (for chDB) serve the HTTP endpoint until ``stop`` is set."""
    stop = stop or asyncio.Event()
    options = options or SinkOptions.from_settings(settings)
    store = await _open_store(settings, stop)
    if store is None:
        return
    endpoint = None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Its poll, not the followers' long wait: the sink seeks (at its resume, after a batch cut by
        # size or a gap), and a seek waits for the fetch in flight, so at Kafka's 5 s a resume took
        # 35 s (`warden up` 40 s against 9.5 s).
        fetch_max_wait_ms=options.poll_ms,
        max_partition_fetch_bytes=settings.max_message_bytes,
        **client_options(settings),
    )
    producer = new_producer(settings)
    checks = WriterChecks()
    sink: _Sink | None = None
    hooks: Webhooks | None = None
    try:
        await asyncio.to_thread(store.ensure_schema)
        sink = _Sink(settings, store, options, checks)
        hooks = await Webhooks.start(settings, sink.notices)
        if isinstance(store, ChdbStore):
            host, _, port = settings.ledger_http.rpartition(":")
            endpoint = Endpoint(store, host, int(port), log_name=settings.ledger.log_name, routes=hooks.routes())
            await _serve_endpoint(endpoint, settings)
        else:
            await hooks.serve()
        log.info("ledger public key %s; log key (vkey) %s", public_key_hex(sink.key), sink.log_key.vkey)
        await consumer.start()
        await producer.start()
        tps = await _partitions(consumer, stop)
        if not tps:
            return
        consumer.assign(tps)
        await sink.resume(consumer, tps)
        # What start-up built (modules, pydantic schemas, clients) lives as long as the process:
        # frozen, the collector stops rescanning it on every full collection, which otherwise
        # came every few batches (~3 us per appended event).
        gc.freeze()
        metrics.serve(settings, "ledger")
        mark_ready(settings, "ledger")
        await _consume(sink, store, consumer, producer, tps, stop)
        try:
            await sink.checkpoint(utcnow(), closing=True)
        except StoreError as exc:
            log.error("could not sign the closing checkpoints (%s); the next start signs them", exc)
        await sink.publish(producer)
    finally:
        checks.close()
        if hooks is not None:
            await hooks.stop()
        if sink is not None:
            await sink.witnesses.close()
        await consumer.stop()
        await producer.stop()
        if endpoint is not None:
            await endpoint.stop()
        store.close()


async def _serve_endpoint(endpoint: Endpoint, settings: Settings) -> None:
    """Starts the read-only SQL endpoint; a port it cannot bind is a StoreError naming the setting."""
    try:
        await endpoint.start()
    except OSError as exc:
        raise StoreError(
            f"cannot serve the ledger endpoint on {settings.ledger_http} ({exc}); "
            "set WARDEN_LEDGER_HTTP to a free host:port"
        ) from None
    log.info("serving read-only SQL (ClickHouse HTTP) on http://%s", settings.ledger_http)


async def _consume(
    sink: _Sink,
    store: Store,
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    tps: list[TopicPartition],
    stop: asyncio.Event,
) -> None:
    """Appends, checkpoints and publishes batch after batch until ``stop`` is set; a failed write
    resumes from what the store holds."""
    reported_at, reported = time.monotonic(), 0
    fetched: Fetched | None = None  # a batch fetched while the one before it was appended
    while not stop.is_set():
        if fetched is None:
            fetched = await sink.fetch(consumer, tps)
        now = utcnow()
        try:
            if fetched.records:
                # The next batch is fetched, and its writers' signatures checked, while this
                # one is chained and inserted: under load both cores stay busy.
                appending = asyncio.create_task(sink.append(fetched, now))
                try:
                    fetched = await sink.fetch(consumer, tps)
                finally:
                    await appending  # its StoreError drops what was fetched meanwhile (below)
                await _measure_lag(sink, consumer, tps)
            else:
                fetched = None
            await sink.checkpoint(now)
        except StoreError as exc:
            log.error("write to %s failed (%s); resuming from what it holds", store.description, exc)
            fetched = None  # read again from where the store ends
            await asyncio.sleep(1.0)
            await sink.resume(consumer, tps)
            continue
        await sink.publish(producer)
        if time.monotonic() - reported_at >= 10 and sink.appended != reported:
            log.info("appended %d events (%d redeliveries skipped)", sink.appended, sink.skipped)
            reported_at, reported = time.monotonic(), sink.appended


async def _measure_lag(sink: _Sink, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
    """Sets the lag gauges: records on the broker not yet read, and read but not yet appended."""
    unread = 0
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is not None:
            unread += max(0, highwater - await consumer.position(tp))
    metrics.CONSUMER_LAG.labels("ledger").set(unread)
    metrics.LEDGER_LAG.set(sink.progress.lag({tp.partition: consumer.highwater(tp) for tp in tps}))


async def _gather(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], options: SinkOptions, gaps: OffsetGaps
) -> dict[TopicPartition, list[ConsumerRecord]]:
    """Records for one INSERT: whatever is there, then more for up to ``gather_ms`` or until
    ``batch_max`` records or ``batch_max_bytes``. Each INSERT is a part chDB writes and later
    merges, at a cost per part that a trickle of small batches paid again and again; the ledger is
    off the intents' path, so it can wait. The bytes bound it when records are large (a worker's
    holds a lot of intents' events): one huge INSERT leaves the checkers nothing to do a batch ahead."""
    records: dict[TopicPartition, list[ConsumerRecord]] = await consumer.getmany(
        *tps, timeout_ms=options.poll_ms, max_records=options.batch_max
    )
    _without_gaps(consumer, records, gaps)
    if not records and gaps.seen_at:
        # Held at a missing offset with later records there: they would come back at once, so
        # wait a poll before fetching them again.
        await asyncio.sleep(options.poll_ms / 1000)
    count, size, full = _within_bytes(consumer, records, options.batch_max_bytes, at_least_one=True)
    until = time.monotonic() + options.gather_ms / 1000
    while count and not full and count < options.batch_max and (left := until - time.monotonic()) > 0:
        more = await consumer.getmany(*tps, timeout_ms=int(left * 1000) + 1, max_records=options.batch_max - count)
        _without_gaps(consumer, more, gaps)
        more_count, more_size, full = _within_bytes(consumer, more, options.batch_max_bytes - size, at_least_one=False)
        for tp, batch in more.items():
            records.setdefault(tp, []).extend(batch)
        count, size = count + more_count, size + more_size
    return records


def _without_gaps(
    consumer: AIOKafkaConsumer, records: dict[TopicPartition, list[ConsumerRecord]], gaps: OffsetGaps
) -> None:
    """Keeps of ``records`` (in place) each partition's records up to an offset the broker skipped,
    and moves that partition back to it, so it is read again (`ledger.gaps`)."""
    now = utcnow()
    for tp in list(records):
        batch = records[tp]
        count = gaps.take(tp.partition, [record.offset for record in batch], now)
        if count < len(batch):
            consumer.seek(tp, gaps.expected[tp.partition])
            del batch[count:]
        if not batch:
            del records[tp]


def _within_bytes(
    consumer: AIOKafkaConsumer,
    records: dict[TopicPartition, list[ConsumerRecord]],
    max_bytes: int,
    at_least_one: bool,
) -> tuple[int, int, bool]:
    """Keeps of ``records`` (in place) what fits in ``max_bytes`` (with ``at_least_one``, the first
    record however large: an INSERT must take it some time), and moves each partition it cut back
    to its first record left out, so that record is read again next. Returns (records kept, their
    bytes, whether any was left out: the INSERT is full)."""
    count = size = 0
    full = False
    for tp in list(records):
        batch = records[tp]
        for i, record in enumerate(batch):
            if (count or not at_least_one) and size + len(record.value or b"") > max_bytes:
                consumer.seek(tp, record.offset)
                del batch[i:]
                full = True
                break
            count, size = count + 1, size + len(record.value or b"")
        if not batch:
            del records[tp]
    return count, size, full


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s ledger %(levelname)s %(message)s")
    settings = load()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_sink(settings, stop)

    try:
        asyncio.run(run())
    except StoreError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
