"""How records move: the Faust app that feeds the engine and writes what it emits.

Two shapes, chosen by ``WARDEN_TOPOLOGY``:

- ``fused``: one agent on ``warden.intents.submitted`` runs intake and every
  guardrail in one hop (fewest round trips, highest throughput);
- ``split``: intake forwards to ``warden.stage.<stage>`` topics, one agent per
  stage, so a deployment can scale one stage alone.

Every topic is keyed by agent_id and has the same partition count, so an
agent's intents, policy, decisions and rejections meet on one worker: the
tables need no locks and the rolling window is serialized per agent.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
import orjson
from aiokafka.protocol.group import HeartbeatRequest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import EventT, StreamT, TableT

from runtime import metrics
from runtime.admins import follow_admin_sets, settled_event
from runtime.chains import follow_chain_sets
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import PRODUCER_BATCH_BYTES, KeyedPartitioner, audit_headers, group_lag, partition_of
from runtime.readiness import mark_ready
from runtime.rpc import Nodes
from runtime.trust import PinnedServiceKeys, pinned_admins, service_key
from schemas import topics
from schemas.auth import AuditSigner
from schemas.emit import Emit, Source, join_audits
from schemas.stages import ALL_GUARDRAIL_STAGES, Stage
from streams import kafka_transport
from streams.decide import SERVICE
from streams.decision import supersedes
from streams.engine import Engine
from streams.fence import Decided, Fence
from streams.redelivery import PUBLISHED_OUTCOMES, Published, run_redelivery

log = logging.getLogger("warden.streams")


def build_app(settings: Settings) -> faust.App:
    """The worker's Faust app: its configuration, the engine over its tables, and each of the
    worker's loops (`Loops`) wired to its topic, timer or signal."""
    kafka_transport.fetch_max_wait_ms = settings.fetch_wait_ms
    app = _faust_app(settings)

    def table(name: str) -> TableT:
        return app.Table(name, partitions=topics.PARTITIONS, key_type=str)

    decisions = DecisionsTable(
        app, name="warden-decisions", beacon=app.tables.beacon, partitions=topics.PARTITIONS, key_type=str
    )
    app.tables.add(decisions)

    nodes = Nodes(settings.rpc_url_for)
    worker_key = service_key(settings, "worker")  # its outcomes, stage envelopes, abandoned intents and audit records
    admins = pinned_admins(settings)
    engine = Engine(
        admins=admins,
        node_for=nodes.for_chain,
        policies=table("warden-policies"),
        decisions=decisions,
        idempotency=table("warden-idempotency"),
        service_key=worker_key,
        service_keys=PinnedServiceKeys(settings),
        max_record_bytes=settings.max_record_bytes,
        max_age_us=settings.intent_max_age_s * 1_000_000,
        home_partition=lambda agent_id: partition_of(agent_id, topics.PARTITIONS),
        generation=lambda: app.consumer_generation_id,
    )
    loops = Loops(app, settings, engine, worker_key)

    @app.on_before_shutdown.connect
    def _close_nodes(app: faust.App, /, *args: Any, **kwargs: Any) -> None:  # the shape mode types a handler with
        app.loop.create_task(nodes.close())

    app.on_partitions_revoked.connect(loops.on_revoked)  # type: ignore[arg-type]  # mode types handlers (sender, *args): not these, given the partitions
    app.on_partitions_assigned.connect(loops.on_assigned)  # type: ignore[arg-type]  # mode types handlers (sender, *args): not these, given the partitions
    app.timer(interval=5.0)(loops.report_lag)
    app.timer(interval=FENCE_CONFIRM_S)(loops.keep_membership)
    app.timer(interval=1.0)(loops.remind_deadlines)
    app.agent(_raw_topic(app, topics.APPROVAL_DEADLINES))(loops.deadlines)
    app.agent(_raw_topic(app, topics.APPROVALS))(loops.approvals)
    app.task(loops.redeliver)
    app.task(loops.follow_admins)
    app.task(loops.follow_chains)
    app.agent(_raw_topic(app, topics.POLICIES))(loops.policies)
    app.agent(_raw_topic(app, topics.INTENTS_ABANDONED))(loops.abandoned)
    app.agent(_raw_topic(app, topics.INTENTS_REJECTED))(loops.releases)
    app.agent(_raw_topic(app, topics.SIMULATIONS_REQUESTED))(loops.simulations)
    if settings.topology == "fused":
        app.timer(interval=HELD_FLUSH_S)(loops.flush_held)
        app.agent(_raw_topic(app, topics.INTENTS_SUBMITTED))(loops.intents)
    elif settings.topology == "split":
        app.agent(_raw_topic(app, topics.INTENTS_SUBMITTED))(loops.intake)
        for stage in ALL_GUARDRAIL_STAGES:
            app.agent(_raw_topic(app, topics.stage_topic(stage)), name=f"stage-{stage}")(loops.stage(stage))
    else:
        raise ValueError(f"WARDEN_TOPOLOGY must be 'fused' or 'split', got {settings.topology!r}")
    return app


def _faust_app(settings: Settings) -> faust.App:
    datadir = settings.state_dir / "faust" / settings.worker_id  # one per worker: several may share a home
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        "warden-streams",
        # Faust's aiokafka transport with a short fetch wait (streams.kafka_transport says why).
        broker=f"{kafka_transport.SCHEME}://{settings.broker}",
        store="memory://",
        topic_partitions=topics.PARTITIONS,
        topic_replication_factor=1,
        web_enabled=False,
        # Tansu refuses InitProducerId: no idempotent producer, no transactions.
        processing_guarantee="at_least_once",
        producer_acks=-1,
        broker_session_timeout=settings.worker_session_timeout_s,
        # Faust refuses to recover a table whose changelog partition it has read past the end the
        # broker reports. Tansu reports one past the first offset of a partition's last batch
        # (docs/known-limits.md), so a worker that read a batch of several changelog records, as a
        # standby or in an earlier recovery, met this check at the next rebalance and crashed
        # (`ConsistencyError`, "persisted offset ... > ..."). The store is in memory: there is no
        # persisted offset that could be ahead of a truncated topic, only what this process read.
        recovery_consistency_check=False,
        # A static member, like the signer (signer.main says what it gains and costs).
        consumer_group_instance_id=settings.worker_id,
        broker_heartbeat_interval=1,
        table_cleanup_interval=3600,
        # Sized with max_record_bytes, so a dead letter of the largest readable record is sendable.
        producer_max_request_size=settings.max_message_bytes,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,  # runtime.kafka says why
        producer_partitioner=KeyedPartitioner(),
        consumer_max_fetch_size=settings.max_message_bytes,
        datadir=str(datadir),
    )


class DecisionsTable(faust.Table):
    """The decisions table, whose changelog records replace what it holds only when they
    `supersedes` it: a stalled worker's late records do not (`streams.decision` says why)."""

    def apply_changelog_batch(self, batch) -> None:
        data = self.data
        for event in batch:
            # One at a time: a batch may hold several records of one intent, each judged against
            # the one before it.
            if supersedes(data.get(self._to_key(event.key)), event.value):
                super().apply_changelog_batch([event])


def _raw_topic(app: faust.App, name: str) -> faust.TopicT:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=topics.PARTITIONS,
    )


class Loops:
    """The worker's control loops: one agent per input topic feeding ``engine`` and publishing
    what it emits, the timers, the redelivery task, and the windows kept fresh after partitions
    move. `build_app` wires each to its topic, timer or signal."""

    def __init__(self, app: faust.App, settings: Settings, engine: Engine, worker_key):
        self.app = app
        self.settings = settings
        self.engine = engine
        self.worker_key = worker_key
        self.audit_signer = AuditSigner("worker", *worker_key)
        self.outputs: dict[str, faust.TopicT] = {}
        self.published = Published()  # what this worker signed and sent, for its own redelivery watch
        self.windows_stale = True
        self.metrics_served = False
        self.fence = Fence(settings.worker_session_timeout_s, self._heartbeat)
        # The fused hop decides every intent its consumer has ready before it sends what they
        # emitted (`Held`): each agent's audit events of the lot leave as one record, and the lot's
        # records share requests and batches on the broker.
        self.held = Held(self.publish_decided)
        # No admin's signature is checked before warden.admins is read to its end (runtime.admins).
        self.admins_known = asyncio.Event()
        # Then warden.chains (runtime.chains): no record that may name a chain (an intent, a
        # policy, an approval, a simulation request) is read before it was read to its end, so
        # every agent on such a topic waits for it, and with it for the admin set.
        self.chains_known = asyncio.Event()

    async def on_revoked(self, app, revoked, **kwargs) -> None:
        # The lot in hand goes out while this worker still owns its partitions (the fence asks the
        # coordinator first if this worker was stalled); after that nothing is published until
        # the coordinator assigns partitions again.
        await self.held.flush(once=True)
        self.fence.revoked()

    async def on_assigned(self, app, assigned, **kwargs) -> None:
        self.fence.assigned(app.consumer_generation_id, {(tp.topic, tp.partition) for tp in assigned})
        # Newly assigned partitions bring decisions recovered from the changelog: rebuild the windows from them.
        self.windows_stale = True
        if not self.metrics_served:
            metrics.serve(self.settings, self.settings.worker_process)
            self.metrics_served = True
        mark_ready(self.settings, self.settings.worker_process)

    def fresh_windows(self) -> None:
        if self.windows_stale:
            self.engine.rebuild()
            self.windows_stale = False

    async def may_decide(self, event) -> bool:
        """Whether this worker may decide ``event`` now: only the owner of its partition, in the
        generation it was read in, decides it (`streams.fence`), because deciding writes the
        decisions table, and its changelog goes out whether or not the outcome does. A worker that
        resumes from a stall past its session and went on deciding what it had fetched put its
        own, unpublished, decisions on the changelog after the new owner's; a later owner restored
        them and replayed them to a redelivered copy: two outcomes for one intent. What fails is
        not decided, logged and counted; its partition's owner decides it."""
        await self.fence.ready()
        where = _decided(event)
        why = self.fence.why_not(where)
        if why is None:
            return True
        metrics.WORKER_FENCED.inc()
        log.warning(
            "not decided: %s/%d/%d read in generation %d: %s; its partition's owner decides it",
            where.topic,
            where.partition,
            event.message.offset,
            where.generation,
            why,
        )
        return False

    async def decide(self, event, handler, *args, windows: bool = True) -> None:
        """One input of a per-record agent: decided if the fence admits it (``may_decide``), with
        the windows fresh when the handler reads them, and what it emitted published."""
        if not await self.may_decide(event):
            return
        if windows:
            self.fresh_windows()
        await self.publish_decided([(_decided(event), await _aguard(event, handler, *args))])

    async def publish_decided(self, decided: list[tuple[Decided, list[Emit]]], once: bool = False) -> None:
        """What each input's decision emitted, published only if the fence (`streams.fence`) admits
        that input; the rest is dropped, logged and counted."""
        if any(emit.topic in PUBLISHED_OUTCOMES for _, emits in decided for emit in emits):
            # A decision is on its partition's changelog before its outcome is announced. Faust
            # sends a table's changelog records from a buffer of its own, after the outcomes sent
            # here: a worker killed or stalled in between leaves an outcome its partition's next
            # owner has no decision for, so the intent is decided again, maybe otherwise (a node
            # that failed a fee quote, a window without this worker's reservations): a rejection
            # beside an approval that gets signed, or a second rejection with other bytes. Flushed
            # first, the next owner replays the first decision byte for byte. It costs each lot
            # with an outcome a round trip to the broker, as the signer's changelog append does.
            await self.app.producer.flush()
        await self.fence.ready(None if once else 0.2)  # after the flush: as close to the sends as it can be
        kept: list[Emit] = []
        for where, emits in decided:
            why = self.fence.why_not(where)
            if why is None:
                kept += emits
                continue
            outcomes = [emit.topic for emit in emits if emit.topic in PUBLISHED_OUTCOMES]
            metrics.WORKER_FENCED.inc()
            log.warning(
                "not published: what %s/%d/g%d decided (%d records, outcomes %s): %s; its partition's owner decides it",
                where.topic,
                where.partition,
                where.generation,
                len(emits),
                outcomes or "none",
                why,
            )
        await self.publish(kept)

    async def publish(self, emits: list[Emit]) -> None:
        """Sent as they are: what no input's decision emitted (reminders), or what the fence admitted."""
        for emit in join_audits(emits, self.settings.max_record_bytes):
            if emit.topic in PUBLISHED_OUTCOMES:
                self.published.add(emit.value)  # before it is sent: the watch may read it back at once
            topic = self.outputs.get(emit.topic)
            if topic is None:
                topic = self.outputs[emit.topic] = _raw_topic(self.app, emit.topic)
            # Faust flushes its producer before it commits the input offsets, so an input is
            # never marked done before what it produced is written (at-least-once).
            await topic.send(key=emit.key.encode(), value=emit.value, headers=audit_headers(emit, self.audit_signer))

    # -- timers and tasks -----------------------------------------------------------------------

    async def keep_membership(self) -> None:
        # The fence's lease kept fresh while the worker runs, so that a publish asks only after a stall.
        if self.fence.generation is not None and self.fence.owned:
            await self.fence.confirm()

    async def _heartbeat(self, generation: int) -> bool:
        """Whether the group coordinator answers a heartbeat of this member at ``generation``
        without error. Sent on the producer's connection: the consumer's runs in its own thread."""
        # The app's consumer and producer are the warden:// transport's (`build_app`), aiokafka's.
        consumer = cast(kafka_transport.Consumer, self.app.consumer)
        thread = cast(kafka_transport.ConsumerThread, consumer._thread)  # made by `Consumer._new_consumer_thread`
        coordinator = thread._ensure_consumer()._coordinator
        node_id, member_id = coordinator.coordinator_id, coordinator.member_id
        if node_id is None or coordinator.generation != generation:
            return False  # the consumer knows it left that generation, or has no coordinator
        producer = cast(faust_aiokafka.Producer, self.app.producer)._producer
        if producer is None:
            raise RuntimeError("the worker's producer is not started")
        client = producer.client
        response = await client.send(node_id, HeartbeatRequest(coordinator.group_id, generation, member_id))
        return response.error_code == 0

    async def report_lag(self) -> None:
        # The worker's group, as `warden status` counts it: records past its committed offsets.
        group, names = topics.CONSUMER_GROUPS["streams"]
        try:
            metrics.CONSUMER_LAG.labels("streams").set(sum((await group_lag(self.settings, group, names)).values()))
        except Exception as exc:  # noqa: BLE001 - a timer that raises would stop the worker for a metric
            log.warning("could not read the consumer lag of %s: %s", group, exc)

    async def remind_deadlines(self) -> None:
        # Intents that waited for an admin past their policy's approval_timeout_s end APPROVAL_EXPIRED.
        # Tables change only inside stream iteration, so the timer writes a reminder on the intent's
        # partition and the deadlines agent expires it there.
        self.fresh_windows()
        for agent_id, intent_id in self.engine.due_parked(utcnow()):
            await self.publish([Emit(topics.APPROVAL_DEADLINES, agent_id, orjson.dumps({"intent_id": intent_id}))])

    async def redeliver(self) -> None:
        await self.chains_known.wait()  # an intent naming a chain not known yet would not be watched
        await run_redelivery(self.settings, self.worker_key, published=self.published)

    async def flush_held(self) -> None:
        # The hop waits for its next record with outputs held only when the records it saw
        # ready were then skipped (stale ones, at a rebalance): those go out within this interval.
        await self.held.flush()

    # -- agents ---------------------------------------------------------------------------------

    async def deadlines(self, stream):
        await self.chains_known.wait()
        async for event in stream.events():
            await self.decide(event, self.engine.on_deadline, event.value, _source_of(event), utcnow())

    async def follow_admins(self) -> None:
        await follow_admin_sets(self.settings, self.engine.admins, self.admins_known)

    async def follow_chains(self) -> None:
        await self.admins_known.wait()
        await follow_chain_sets(
            self.settings, self.engine.admins, self.engine.chains, self.chains_known, self.chain_set_settled
        )

    async def chain_set_settled(self, what: str, text: str, record_id: str) -> None:
        # On the ledger, as the signer records it: when this worker took (or refused) a chain set.
        worker_id = self.settings.worker_id
        await self.publish([settled_event(SERVICE, "chains", what, text, record_id, utcnow(), worker_id=worker_id)])

    async def approvals(self, stream):
        await self.chains_known.wait()
        async for event in stream.events():
            await self.decide(event, self.engine.on_human_approval, event.value, _source_of(event), utcnow())

    async def policies(self, stream):
        await self.chains_known.wait()
        async for event in stream.events():
            await self.decide(event, self.engine.on_policy, event.value, _source_of(event), utcnow(), windows=False)

    async def abandoned(self, stream):
        await self.chains_known.wait()
        async for event in stream.events():
            await self.decide(event, self.engine.on_abandoned, event.value, _source_of(event), utcnow(), windows=False)

    async def releases(self, stream):
        async for event in stream.events():
            await self.decide(event, self.engine.on_rejected, event.value, utcnow())

    async def simulations(self, stream):
        # A request is judged against the windows as the decisions hold them.
        await self.chains_known.wait()
        async for event in stream.events():
            await self.decide(event, self.engine.on_simulation_request, event.value, _source_of(event), utcnow())

    async def intents(self, stream):
        """Fused topology: every intent decided in one hop, its outputs held with its lot."""
        await self.chains_known.wait()
        held = self.held
        manual = stream.noack()  # acked by `Held.flush`, once what the intent emitted is sent
        async for event in manual.events():
            if not await self.may_decide(event):
                # Acked, as Faust acks what it skips: its rebalance waits until every record it
                # handed out is acked. A commit from a worker out of the group is refused
                # (UnknownMemberId), so the partition's owner still reads it from the committed offset.
                await manual.ack(event)
                continue
            self.fresh_windows()
            held.add(
                manual, event, await _aguard(event, self.engine.on_intent, event.value, _source_of(event), utcnow())
            )
            if held.count >= MAX_HELD or manual.channel.empty():
                await held.flush()

    async def intake(self, stream):
        """Split topology, first hop."""
        await self.chains_known.wait()
        async for event in stream.events():
            await self.decide(event, self.engine.on_intake, event.value, _source_of(event), utcnow(), windows=False)

    def stage(self, stage: Stage):
        """Split topology: the agent of one stage's topic."""

        async def run(stream):
            await self.chains_known.wait()
            async for event in stream.events():
                await self.decide(event, self.engine.on_stage, stage, event.value, _source_of(event), utcnow())

        return run


# At most this many decided intents wait for their outputs to be sent (a burst's lot): at ~0.3 ms
# of deciding an intent, the first of a full lot waits ~15 ms (200 measured no faster in a burst).
# And at most this long when the hop waits with some held (`flush_held`).
MAX_HELD = 50
HELD_FLUSH_S = 0.02
# How often the fence's lease is renewed with the coordinator while the worker runs (the
# consumer's own heartbeat interval): well inside the lease, so a running worker never waits on it.
FENCE_CONFIRM_S = 1.0


class Held:
    """Intents a worker has decided and not yet sent what they emitted, with their input events.

    The lot is sent with one `publish` (audit events joined per agent over the whole lot) and only
    then are its inputs acked, in order: Faust flushes its producer before it commits an offset,
    so an input is never committed before its outputs are written. A worker that dies holding a
    lot has acked none of it; its intents are read again and the decisions already in the table
    replayed. One flush at a time, so lots leave in the order they were decided."""

    def __init__(self, publish_decided: Callable[[list[tuple[Decided, list[Emit]]], bool], Awaitable[None]]):
        self._publish_decided = publish_decided
        # (stream, event, what deciding it emitted): acked on the stream it came from
        self._lot: list[tuple[StreamT, EventT, list[Emit]]] = []
        self._flushing = asyncio.Lock()

    @property
    def count(self) -> int:
        return len(self._lot)

    def add(self, stream: StreamT, event: EventT, emits: list[Emit]) -> None:
        self._lot.append((stream, event, emits))

    async def flush(self, once: bool = False) -> None:
        """``once``: the fence asks the coordinator at most once (a rebalance is under way)."""
        async with self._flushing:
            lot, self._lot = self._lot, []
            if not lot:
                return
            await self._publish_decided([(_decided(event), emits) for _, event, emits in lot], once)
            # Acked also when the fence dropped what it emitted, as Faust acks a record it skips for
            # its generation: the partition's owner reads it from the last committed offset.
            for stream, event, _ in lot:
                await stream.ack(event)


def _decided(event) -> Decided:
    msg = event.message
    return Decided(msg.topic, msg.partition, msg.generation_id)


def _source_of(event) -> Source:
    msg = event.message
    return Source(msg.topic, msg.partition, msg.offset, msg.key)


async def _aguard(event, handler, *args) -> list[Emit]:
    try:
        emits = handler(*args)
        return await emits if inspect.isawaitable(emits) else emits
    except Exception as exc:  # noqa: BLE001 - a bug for one record must not stop the worker
        return _failed(event, handler, exc)


def _failed(event, handler, exc: Exception) -> list[Emit]:
    # Records the engine cannot read are routed to the DLQ inside the engine; this is for a bug
    # on a readable one. It is logged loudly and dead-lettered, so it is recorded, not skipped.
    msg = event.message
    log.exception(
        "handler %s failed on %s/%d/%d; dead-lettered", handler.__name__, msg.topic, msg.partition, msg.offset
    )
    engine: Engine = handler.__self__  # every handler is a method of the worker's Engine, which signs
    return engine.dead_letter(
        event.value,
        Source(msg.topic, msg.partition, msg.offset, msg.key),
        utcnow(),
        f"the streams worker failed on this record ({exc.__class__.__name__}: {exc}); not decided",
    )


def main() -> None:
    settings = load()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    # INFO shows assignments, recoveries and rebalances: what an operator needs after a crash.
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
