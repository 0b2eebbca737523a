"""How records move: the streams worker's process, which feeds the engine and writes what it emits.

One consumer in the ``warden-streams`` group reads every input topic. Every topic is keyed by
agent_id and has the same partition count, and the group's range assignor hands a worker partition
p of each of them, so an agent's intents, policy, decisions and rejections meet on one worker. The
worker owns the state of its partitions (`streams.state`) as the signer owns its own
(`runtime.owner`): a partition's tables are read from ``warden.streams.changelog`` before anything
is decided there, and each batch is decided, its writes appended to the changelog and checked to
hold, and only then is what it emitted published and its input offsets committed. A worker whose
record did not hold (another worker decided there since: it was stalled past its session, or the
group moved the partition) publishes nothing of that partition's batch, reads the partition again
and decides its records again from the committed offsets, or stops deciding there at the rebalance.

Two shapes, chosen by ``WARDEN_TOPOLOGY``:

- ``fused``: intake and every guardrail in one hop on ``warden.intents.submitted`` (fewest round
  trips, highest throughput);
- ``split``: intake forwards to ``warden.stage.<stage>`` topics, one hop per stage.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from rules.stage_table import ALL_GUARDRAIL_STAGES
from runtime import metrics
from runtime.admins import follow_admin_sets, settled_event
from runtime.chains import follow_chain_sets
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import client_options, group_lag, partition_of, seek_to_committed
from runtime.kafka import publish as send_all
from runtime.kafka import service_producer as new_producer
from runtime.owner import FLUSH_BYTES, Offsets, PartitionOwner
from runtime.proposals import ProposalBook, proposal_event
from runtime.readiness import mark_ready
from runtime.rpc import Nodes
from runtime.trust import PinnedServiceKeys, pinned_admins, service_key
from schemas import topics
from schemas.auth import AuditSigner
from schemas.emit import Emit, Source
from schemas.stages import Stage
from streams.decide import SERVICE
from streams.engine import Engine
from streams.redelivery import PUBLISHED_OUTCOMES, Published, run_redelivery
from streams.state import WORKER_LOG, Table, WorkerStates

log = logging.getLogger("warden.streams")

# Offsets are committed at most this often while records flow, and at once when a poll finds
# nothing: the changelog, not the offset, is what makes a redelivered record get the same answer.
COMMIT_EVERY_S = 1.0
# How often the timers run: the approval deadlines' reminders, and the lag metric (as often as
# Prometheus scrapes it, prometheus.yml: each report opens a consumer and asks the group's offsets).
REMIND_EVERY_S = 1.0
LAG_EVERY_S = 15.0
# The most records one batch decides before its writes are appended and its outputs sent: a
# burst's lot, whose audit events leave joined per agent and whose records share requests.
MAX_BATCH = 500
# While a judgement waits this long, the give-ups fetched meanwhile are decided (`Worker.decide`).
GIVE_UPS_EVERY_S = 0.2

Handler = Callable[..., list[Emit] | Awaitable[list[Emit]]]


@dataclass(frozen=True)
class Hop:
    """What the worker does with a record of one topic: the engine's handler, whether it reads
    the agent's windows (rebuilt first after partitions moved), and whether it is handed where
    the record came from (a release needs no source: it names what it releases)."""

    handler: Handler
    windows: bool = True
    source: bool = True


def input_topics(topology: str) -> tuple[str, ...]:
    """The topics the worker's group reads, in the order a batch decides them: policies and
    what releases or ends an intent before the intents themselves."""
    if topology not in ("fused", "split"):
        raise ValueError(f"WARDEN_TOPOLOGY must be 'fused' or 'split', got {topology!r}")
    common = topics.CONSUMER_GROUPS["streams"][1]
    first = [
        topics.POLICIES,
        topics.INTENTS_REJECTED,
        topics.TXS_SIGNED,
        topics.BITCOIN_SIGNED,
        topics.INTENTS_OVERDUE,
    ]
    ordered = first + [t for t in common if t not in first and t != topics.INTENTS_SUBMITTED]
    ordered.append(topics.INTENTS_SUBMITTED)
    if topology == "split":
        ordered += [topics.stage_topic(stage) for stage in ALL_GUARDRAIL_STAGES]
    return tuple(ordered)


def hops(engine: Engine, topology: str) -> dict[str, Hop]:
    """Each input topic's `Hop`."""
    table = {
        topics.POLICIES: Hop(engine.on_policy, windows=False),
        topics.INTENTS_REJECTED: Hop(engine.on_rejected, source=False),
        topics.TXS_SIGNED: Hop(engine.on_signed, source=False),
        topics.BITCOIN_SIGNED: Hop(engine.on_bitcoin_signed, source=False),
        topics.INTENTS_OVERDUE: Hop(engine.on_overdue, windows=False),
        topics.APPROVALS: Hop(engine.on_human_approval),
        topics.APPROVAL_DEADLINES: Hop(engine.on_deadline),
        topics.SIMULATIONS_REQUESTED: Hop(engine.on_simulation_request),
    }
    if topology == "fused":
        table[topics.INTENTS_SUBMITTED] = Hop(engine.on_intent)
    else:
        table[topics.INTENTS_SUBMITTED] = Hop(engine.on_intake, windows=False)
        for stage in ALL_GUARDRAIL_STAGES:
            table[topics.stage_topic(stage)] = Hop(_on_stage(engine, stage))
    return table


def _on_stage(engine: Engine, stage: Stage) -> Handler:
    def on_stage(value: bytes | None, source: Source, now: datetime) -> Awaitable[list[Emit]]:
        return engine.on_stage(stage, value, source, now)

    on_stage.__name__ = f"on_stage_{stage}"
    return on_stage


class Worker(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """The worker's loops: the batches of its consumer, its timers, and the followers of the
    admin and chain sets; and its group's rebalance callbacks. `run_worker` wires it."""

    def __init__(
        self, settings: Settings, engine: Engine, states: WorkerStates, worker_key: tuple[str, Any], nodes: Nodes
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.nodes = nodes
        self.states = states
        self.worker_key = worker_key
        self.audit_signer = AuditSigner("worker", *worker_key)
        self.hops = hops(engine, settings.topology)
        self.published = Published()  # what this worker signed and sent, for its own redelivery watch
        self.windows_stale = True
        self.metrics_served = False
        # Bumped at each rebalance: a batch fetched before one is dropped whole (its partitions were
        # sought to their committed offsets, and are read again by whoever owns them now).
        self.assignments = 0
        # No admin's signature is checked before warden.admins is read to its end (runtime.admins),
        # nor any record that may name a chain before warden.chains is (runtime.chains).
        self.admins_known = asyncio.Event()
        self.chains_known = asyncio.Event()
        # The proposals on warden.admin.proposals, in memory: read from the topic's start at each start.
        self.proposals = ProposalBook(engine.admins)
        self.producer = new_producer(settings)
        self.consumer = _consumer(settings)
        self.offsets = Offsets(self.consumer, COMMIT_EVERY_S, time.monotonic())
        keys = PinnedServiceKeys(settings)
        self.owner = PartitionOwner(
            settings,
            states,
            self.producer,
            worker_key,
            lambda writer: keys.key_now("worker", writer),
            on_restored=self.restored,
            on_revoked=self.revoked,
            on_revoking=lambda: self.offsets.commit(time.monotonic()),
            topic=topics.STREAMS_CHANGELOG,
            log_format=WORKER_LOG,
            stop_when_fenced=False,
        )
        states.owned = self.owner.owned  # the tables read only what this worker owns

    # -- the owner's callbacks ------------------------------------------------------------------

    def restored(self, _partition: int) -> None:
        # Restored partitions bring decisions another worker made: the windows are rebuilt from them.
        self.windows_stale = True

    def revoked(self, _partition: int) -> None:
        self.windows_stale = True

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self.assignments += 1
        await self.owner.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self.owner.on_partitions_assigned(assigned)
        # In the group, its partitions (if any) restored: ready, as a worker given none is too.
        if not self.metrics_served:
            metrics.serve(self.settings, self.settings.worker_process)
            self.metrics_served = True
        mark_ready(self.settings, self.settings.worker_process)

    def fresh_windows(self) -> None:
        if self.windows_stale:
            self.engine.rebuild()
            self.windows_stale = False

    # -- the batches ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self.producer.start()
        await self.owner.start()
        tasks = [
            asyncio.create_task(self.follow_admins(), name="admins"),
            asyncio.create_task(self.follow_chains(), name="chains"),
        ]
        try:
            await _until(self.chains_known, tasks)
            await self.consumer.start()
            self.consumer.subscribe(list(input_topics(self.settings.topology)), listener=self)
            tasks += [
                asyncio.create_task(self.redeliver(), name="redelivery"),
                asyncio.create_task(self.every(REMIND_EVERY_S, self.remind_deadlines), name="deadlines"),
                asyncio.create_task(self.every(LAG_EVERY_S, self.report_lag, at_once=True), name="lag"),
            ]
            await self.decide_until(stop, tasks)
        finally:
            for task in tasks:
                task.cancel()
            await self.consumer.stop()
            await self.owner.stop()
            await self.producer.stop()

    async def decide_until(self, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        while not stop.is_set():
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # checked not None on the line above
            assignments = self.assignments
            batch = await self.consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            if self.owner.failure is not None:
                raise self.owner.failure
            async with self.owner.batch:
                if assignments != self.assignments:
                    continue  # fetched before a rebalance: read again from the committed offsets
                try:
                    await self.one(batch)
                except BaseException:
                    self.offsets.broken = True
                    raise
                await self.offsets.after_batch(sum(len(records) for records in batch.values()), time.monotonic())
        async with self.owner.batch:  # a clean stop: what finished is committed
            await self.offsets.commit(time.monotonic())

    async def one(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Decide a batch, in lots: each lot's writes appended, then what the partitions whose
        record held emitted published. A lot ends with the batch, or after a decision that waited
        (for its node): what was decided before it is not held back for the rest of the batch,
        which the redelivery watch would take for intents without an outcome."""
        order = {topic: n for n, topic in enumerate(input_topics(self.settings.topology))}
        decided: dict[int, list[Emit]] = {}
        sought_back: set[int] = set()  # lost mid-batch: their records come again, in order, from the committed offset
        for tp in sorted(batch, key=lambda tp: (order.get(tp.topic, len(order)), tp.partition)):
            hop = self.hops[tp.topic]
            for record in batch[tp]:
                if tp.partition not in self.owner.owned or tp.partition in sought_back:
                    break  # not restored here, or lost to another worker's append: decided again when read again
                if hop.windows:
                    self.fresh_windows()
                waited = await self.decide(hop, record, decided)
                if waited or self.owner.pending_bytes() > FLUSH_BYTES:
                    sought_back |= await self.send(decided)
                    decided = {}
        await self.send(decided)

    async def send(self, decided: dict[int, list[Emit]]) -> set[int]:
        """A lot's writes appended and checked to hold; then what its partitions that held emitted,
        published. Returns the partitions whose record did not hold (`fenced`)."""
        lost = await self.owner.flush(touched=[p for p, emits in decided.items() if emits])
        if lost:
            await self.fenced(lost, decided)
        await self.publish([emit for partition, emits in decided.items() if partition not in lost for emit in emits])
        return lost

    async def decide(self, hop: Hop, record: ConsumerRecord, decided: dict[int, list[Emit]]) -> bool:
        """What deciding ``record`` emitted, added to ``decided`` under its partition; whether the
        decision waited (more than ``GIVE_UPS_EVERY_S``). While a
        judgement waits (for its node: a fee quote, a simulation), the redelivery watch may find
        its intent overdue; the overdue records this worker's partitions hold are read and
        decided meanwhile, so an intent whose node does not answer is given up when the watch
        asks, and the judgement, when it ends, publishes nothing (`Replays.decided_meanwhile`)."""
        with self.states.deciding(record.partition):
            judging = asyncio.ensure_future(_guarded(self.engine, hop, record))
        waited = False
        while not judging.done():
            await asyncio.wait({judging}, timeout=GIVE_UPS_EVERY_S)
            if not judging.done() and hop.handler != self.engine.on_overdue:
                waited = True
                await self.give_ups(decided)
        decided.setdefault(record.partition, []).extend(judging.result())
        return waited

    async def give_ups(self, decided: dict[int, list[Emit]]) -> None:
        """The give-ups fetched for this worker's partitions, decided now (see `decide`)."""
        tps = [tp for tp in self.consumer.assignment() if tp.topic == topics.INTENTS_OVERDUE]
        tps = [tp for tp in tps if tp.partition in self.owner.owned]
        if not tps:
            return
        hop = self.hops[topics.INTENTS_OVERDUE]
        for records in (await self.consumer.getmany(*tps, timeout_ms=0)).values():
            for record in records:
                with self.states.deciding(record.partition):
                    decided.setdefault(record.partition, []).extend(await _guarded(self.engine, hop, record))

    async def fenced(self, lost: set[int], decided: dict[int, list[Emit]]) -> None:
        """Another worker appended to ``lost`` since this one read them: nothing decided there is
        published; the partitions are read again, and their records decided again from the
        committed offsets (replayed where the other worker decided them)."""
        metrics.WORKER_FENCED.inc(len(lost))
        for partition in sorted(lost):
            outcomes = [emit.topic for emit in decided.get(partition, []) if emit.topic in PUBLISHED_OUTCOMES]
            log.warning(
                "not published: what partition %d decided (%d records, outcomes %s): another worker appended to "
                "%s since; reading it again",
                partition,
                len(decided.get(partition, [])),
                outcomes or "none",
                topics.STREAMS_CHANGELOG,
            )
        again = [tp for tp in self.consumer.assignment() if tp.partition in lost]
        if again:
            await seek_to_committed(self.consumer, again)
        self.windows_stale = True
        await self.owner.restore(*sorted({tp.partition for tp in again}))

    async def publish(self, emits: list[Emit]) -> None:
        """Sent, audit events joined per agent, and acknowledged before the offsets may pass them."""
        for emit in emits:
            if emit.topic in PUBLISHED_OUTCOMES:
                self.published.add(emit.value)  # before it is sent: the watch may read it back at once
        sent = await send_all(self.producer, emits, self.settings.max_record_bytes, self.audit_signer)
        if sent:
            await asyncio.gather(*sent)

    # -- timers and tasks -----------------------------------------------------------------------

    async def every(self, interval_s: float, job: Callable[[], Awaitable[None]], at_once: bool = False) -> None:
        """``job`` every ``interval_s``; ``at_once``: first when started (a metric there from the start)."""
        if at_once:
            await job()
        while True:
            await asyncio.sleep(interval_s)
            await job()

    async def remind_deadlines(self) -> None:
        # Intents that waited for an admin past their policy's approval_timeout_s end APPROVAL_EXPIRED.
        # A reminder goes on the intent's partition, where its owner expires it in a batch: a
        # decision is written only from a record of its partition, so that it reaches the changelog.
        async with self.owner.batch:
            self.fresh_windows()
            due = self.engine.due_parked(utcnow())
        reminders = [Emit(topics.APPROVAL_DEADLINES, agent_id, orjson.dumps({"intent_id": i})) for agent_id, i in due]
        await self.publish(reminders)

    async def report_lag(self) -> None:
        # The worker's group, as `warden status` counts it: records past its committed offsets.
        group, names = topics.CONSUMER_GROUPS["streams"]
        try:
            metrics.CONSUMER_LAG.labels("streams").set(sum((await group_lag(self.settings, group, names)).values()))
        except Exception as exc:  # noqa: BLE001 - a timer that raises would stop the worker for a metric
            log.warning("could not read the consumer lag of %s: %s", group, exc)

    async def redeliver(self) -> None:
        await run_redelivery(self.settings, self.worker_key, published=self.published)

    async def follow_admins(self) -> None:
        # warden.admin.proposals is read by the same reader: its records are judged under the admin
        # set that reader keeps, and the worker has one idle reader fewer.
        also = {topics.ADMIN_PROPOSALS: self.proposal_read}
        await follow_admin_sets(self.settings, self.engine.admins, self.admins_known, self.admin_set_settled, also)

    async def follow_chains(self) -> None:
        await self.admins_known.wait()
        await follow_chain_sets(
            self.settings, self.engine.admins, self.engine.chains, self.chains_known, self.chain_set_settled
        )

    async def proposal_read(self, raw: bytes) -> None:
        """A record of warden.admin.proposals on the ledger, judged under the admin set in force
        (`runtime.proposals.proposal_event`): who signed a proposal and how many more signatures it
        awaits, or why the record counts for nothing. Every worker reads the whole topic; the
        events' ids name the records, so the ledger holds one of each."""
        now = utcnow()
        self.proposals.forget_expired(now)
        await self.publish([proposal_event(SERVICE, self.proposals.read(raw), now)])

    async def admin_set_settled(self, what: str, text: str, record_id: str) -> None:
        await self.settled("admins", what, text, record_id)

    async def chain_set_settled(self, what: str, text: str, record_id: str) -> None:
        await self.settled("chains", what, text, record_id)

    async def settled(self, subject: Literal["admins", "chains"], what: str, text: str, record_id: str) -> None:
        # On the ledger, as the signer records it: when this worker took (or refused) an admin or chain set.
        worker_id = self.settings.worker_id
        await self.publish([settled_event(SERVICE, subject, what, text, record_id, utcnow(), worker_id=worker_id)])


async def _guarded(engine: Engine, hop: Hop, record: ConsumerRecord) -> list[Emit]:
    """What deciding ``record`` emitted; a bug for one record is dead-lettered, not raised."""
    source = Source(record.topic, record.partition, record.offset, record.key)
    args = (record.value, source, utcnow()) if hop.source else (record.value, utcnow())
    try:
        emits = hop.handler(*args)
        return await emits if inspect.isawaitable(emits) else emits
    except Exception as exc:  # noqa: BLE001 - a bug for one record must not stop the worker
        # Records the engine cannot read are routed to the DLQ inside the engine; this is for a
        # bug on a readable one. It is logged loudly and dead-lettered, so it is recorded, not skipped.
        log.exception(
            "handler %s failed on %s/%d/%d; dead-lettered",
            hop.handler.__name__,
            record.topic,
            record.partition,
            record.offset,
        )
        return engine.dead_letter(
            record.value,
            source,
            utcnow(),
            f"the streams worker failed on this record ({exc.__class__.__name__}: {exc}); not decided",
        )


def build_worker(settings: Settings) -> Worker:
    """The worker: its engine over its partition-owned tables, with this deployment's keys and nodes."""
    nodes = Nodes(settings.rpc_url_for)
    worker_key = service_key(settings, "worker")  # its outcomes, stage envelopes, changelog and audit records
    states = WorkerStates(set())
    engine = Engine(
        admins=pinned_admins(settings),
        node_for=nodes.for_chain,
        policies=Table("policies", states),
        decisions=Table("decisions", states),
        idempotency=Table("idempotency", states),
        service_key=worker_key,
        service_keys=PinnedServiceKeys(settings),
        max_record_bytes=settings.max_record_bytes,
        max_age_us=settings.intent_max_age_s * 1_000_000,
        home_partition=lambda agent_id: partition_of(agent_id, topics.PARTITIONS),
    )
    return Worker(settings, engine, states, worker_key, nodes)


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    # A static member (the worker id is its group.instance.id), like the signer (signer.main says
    # what it gains and costs). The range assignor gives a worker partition p of every input topic
    # (the same count, keyed by agent): the one worker holding an agent's tables reads all its records.
    return AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id=topics.CONSUMER_GROUPS["streams"][0],
        group_instance_id=settings.worker_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.worker_session_timeout_s * 1000),
        heartbeat_interval_ms=1_000,
        partition_assignment_strategy=(RangePartitionAssignor,),
        max_partition_fetch_bytes=settings.max_message_bytes,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        **client_options(settings),
    )


async def _until(known: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Until ``known``; raises why, if one of ``tasks`` stopped first."""
    waiting = asyncio.create_task(known.wait())
    while not known.is_set():
        await asyncio.wait({waiting, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                waiting.cancel()
                task.result()  # raises why the topic could not be read
                raise RuntimeError(f"the worker's follower {task.get_name()} ended before it caught up")


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    worker = build_worker(settings)
    try:
        await worker.run(stop)
    finally:
        await worker.nodes.close()


def main() -> None:
    settings = load()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s streams %(levelname)s %(name)s %(message)s")
    stop = asyncio.Event()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
