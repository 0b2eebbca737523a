"""The signer's partition-owned state on a real broker (a private Tansu: these tests write
``warden.signer.changelog`` the way a stalled signer or a hostile writer would).

A signer that lost its partition but still appends (a zombie) must not get its batch committed
or published, and nobody restoring the partition may count what it wrote; a record nobody pinned
signed, or signed for another partition, counts for nobody either. An offset that holds no record
(a hole: compaction, or a number the broker gave and never stored) is read past at once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY

from infra.stack.local import LocalStack, local_settings
from runtime.clock import Clock
from runtime.config import Settings
from runtime.kafka import end_offsets, follow_records, partition_of
from runtime.metrics import metrics_file
from runtime.owner import ChangelogGone, Fenced, PartitionOwner
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_events_of
from schemas.auth import AuditSigner
from schemas.emit import Emit
from schemas.intent import TransactionIntent
from schemas.outcomes import SignedTransaction
from sdk.client import Client, new_intent, wait_outcomes
from sdk.outcomes import Outcome
from signer import service
from signer.changelog import SIGNER_LOG, UnreadableRecord, seal
from signer.main import Trackers
from signer.outcomes import Outcomes
from signer.state import PartitionedState, SignerState
from tests.schemas_support import T0, sample_records
from tests.support import AGENT, KEYS, NOW_US, PINNED, make_agent, one_agent_per_partition, read_topic, sample


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    stack = LocalStack(local_settings(tmp_path_factory.mktemp("changelog-home")))
    stack.start(parts=("broker",))
    yield stack.settings
    stack.stop()


def spend(states: PartitionedState, intent_id: str, wei: int, nonce: int, agent: str = AGENT) -> None:
    """What a signature leaves: its record, nonce and spend."""
    states.agent(agent).record_signed(
        intent_id=intent_id,
        record=b"{}",
        now_us=NOW_US,
        chain="anvil",
        address="0x00000000000000000000000000000000000000aa",
        nonce=nonce,
        spend_wei=wei,
        counts=True,
        policy_version=1,
        idempotency_slot=None,
    )


@contextlib.asynccontextmanager
async def three_signers(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[AIOKafkaProducer, list[Signer]]]:
    """Signers a, b and c on one producer, their owners started; stopped after."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
    await producer.start()
    signers = [Signer(settings, tmp_path, name, producer) for name in KEYS]
    for s in signers:
        await s.owner.start()
    try:
        yield producer, signers
    finally:
        for s in signers:
            await s.owner.stop()
            s.states.close()
        await producer.stop()


def transfer(key: Ed25519PrivateKey, agent: str, value: str) -> TransactionIntent:
    """An intent of ``agent`` moving ``value`` ether on Anvil, at fixed fees."""
    return new_intent(
        key,
        agent_id=agent,
        chain="anvil",
        to="0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        value=value,
        max_fee_per_gas=2 * 10**9,
        max_priority_fee_per_gas=10**9,
        gas_limit=21000,
    )


def spent(states: PartitionedState) -> int:
    return sum(wei for _, wei in states.agent(AGENT).spend_entries(NOW_US).values())


class Signer:
    """A signer's state and its changelog side, without the rest of the signer."""

    def __init__(self, settings: Settings, tmp: Path, name: str, producer: AIOKafkaProducer) -> None:
        self.states = PartitionedState(tmp / name)
        self.owner = PartitionOwner(
            settings,
            self.states,
            producer,
            (name, KEYS[name]),
            PINNED.get,
            on_restored=lambda p: None,
            on_revoked=lambda p: None,
            topic=topics.SIGNER_CHANGELOG,
            log_format=SIGNER_LOG,
        )
        self.partition = self.states.partition_of(AGENT)


def test_a_zombie_is_fenced_and_its_writes_count_for_nobody(broker: Settings, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with three_signers(broker, tmp_path) as (producer, (a, b, c)):
            p = a.partition
            await a.owner.restore(p)
            spend(a.states, "i-1", 10, 0)
            await a.owner.flush()

            # The partition moves to b (a stalled past its session): b restores a's spend.
            await b.owner.restore(p)
            assert spent(b.states) == 10
            spend(b.states, "i-2", 20, 1)
            await b.owner.flush()

            # a resumes and signs with what it knew: its append does not hold, nothing is committed.
            spend(a.states, "i-3", 40, 1)
            with pytest.raises(Fenced, match="another signer appended"):
                await a.owner.flush()
            assert spent(a.states) == 10, "the zombie's batch stayed in its file"
            assert a.states.agent(AGENT).file.writes == []

            # A key nobody pinned, and a pinned signer's record for another partition: void too.
            stranger = Ed25519PrivateKey.generate()
            head = b.states.agent(AGENT).file.changelog_position()[0]
            forged = [(name, tuple(args)) for name, args in [("spend", ("i-forged", AGENT, NOW_US, "-1000"))]]
            await (
                await producer.send(
                    topics.SIGNER_CHANGELOG,
                    seal(partition=p, prev=head, writer="signer-b", writes=forged, key=stranger),
                    partition=p,
                )
            )
            other = (p + 1) % topics.PARTITIONS
            await (
                await producer.send(
                    topics.SIGNER_CHANGELOG,
                    seal(partition=other, prev=head, writer="signer-b", writes=forged, key=KEYS["signer-b"]),
                    partition=p,
                )
            )

            # b still owns the partition: its next append holds over the void records.
            spend(b.states, "i-4", 5, 2)
            await b.owner.flush()

            # A new owner restores exactly what held: a's first, b's two; not the zombie's, not the forgeries.
            await c.owner.restore(p)
            rows = c.states.agent(AGENT).spend_entries(NOW_US)
            assert sorted(rows) == ["i-1", "i-2", "i-4"]
            assert spent(c.states) == 35
            assert c.states.agent(AGENT).last_nonce("anvil", "0x00000000000000000000000000000000000000aa") == 2

    asyncio.run(scenario())


def test_a_restore_stops_at_a_pinned_record_it_cannot_read(broker: Settings, tmp_path: Path) -> None:
    """Skipping it as void would start the new owner without its writes (a spend, a nonce) though
    their signatures may be on the chain: the limit could then be exceeded."""

    async def scenario() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.broker, acks="all")
        await producer.start()
        a, b = Signer(broker, tmp_path, "signer-a", producer), Signer(broker, tmp_path, "signer-b", producer)
        for s in (a, b):
            await s.owner.start()
        try:
            q = (a.partition + 2) % topics.PARTITIONS  # not the zombie test's partition
            await a.owner.restore(q)
            head = a.states.partition(q).changelog_position()[0]
            newer = seal(
                partition=q,
                prev=head,
                writer="signer-a",
                key=KEYS["signer-a"],
                writes=[("spend_in_some_later_version", ("i-9", AGENT, NOW_US, "7"))],
            )
            await (await producer.send(topics.SIGNER_CHANGELOG, newer, partition=q))
            with pytest.raises(UnreadableRecord, match="another version of the signer"):
                await b.owner.restore(q)
            assert q not in b.owner.owned
            assert b.states.partition(q).changelog_position()[0] == head
        finally:
            for s in (a, b):
                await s.owner.stop()
                s.states.close()
            await producer.stop()

    asyncio.run(scenario())


def test_a_new_owner_restores_all_its_partitions_in_one_read_each_from_its_own_log(tmp_path: Path) -> None:
    """A signer given every partition restores them in one call, which reads them together
    (`PartitionOwner.restore`; that it is faster is a figure, not asserted here): each file gets
    exactly its own partition's records, in order, and every agent's spend is there. A broker of
    its own: the other tests here leave a record on one partition that stops restores."""
    stack = LocalStack(local_settings(tmp_path / "home"))
    stack.start(parts=("broker",))

    async def scenario() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.settings.broker, acks="all")
        await producer.start()
        a, b = (
            Signer(stack.settings, tmp_path, "signer-a", producer),
            Signer(stack.settings, tmp_path, "signer-b", producer),
        )
        for s in (a, b):
            await s.owner.start()
        try:
            agents = dict(enumerate(one_agent_per_partition("agent")))  # partition → its agent
            await a.owner.restore(*agents)
            # Two appends per partition, a different amount on each: a record read from the wrong
            # partition's log, or not read, shows as a wrong sum.
            for round_ in range(2):
                for partition, agent in agents.items():
                    a.states.agent(agent).record_signed(
                        intent_id=f"{agent}-{round_}",
                        record=b"{}",
                        now_us=NOW_US,
                        chain="anvil",
                        address="0x00000000000000000000000000000000000000aa",
                        nonce=round_,
                        spend_wei=(partition + 1) * 10**round_,
                        counts=True,
                        policy_version=1,
                        idempotency_slot=None,
                    )
                await a.owner.flush()

            await b.owner.restore(*agents)
            assert b.owner.owned == set(agents)
            for partition, agent in agents.items():
                state = b.states.partition(partition)
                rows = state.agent(agent).spend_entries(NOW_US)
                assert sorted(rows) == [f"{agent}-0", f"{agent}-1"], (partition, rows)
                assert sum(wei for _, wei in rows.values()) == (partition + 1) * 11, (partition, rows)
                assert state.agent(agent).last_nonce("anvil", "0x00000000000000000000000000000000000000aa") == 1
                assert state.changelog_position() == a.states.partition(partition).changelog_position()
        finally:
            for s in (a, b):
                await s.owner.stop()
                s.states.close()
            await producer.stop()

    try:
        asyncio.run(scenario())
    finally:
        stack.stop()


def test_an_approval_on_another_partition_than_its_agents_is_dead_lettered_not_decided(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """Decided there, it would be judged with another partition's state (another signer's, maybe
    one without the agent's spend). Dead-lettered by the signer; the same approval on its
    agent's partition is then signed as usual."""
    from runtime.clock import utcnow
    from schemas.outcomes import DeadLetter, IntentApproved

    settings = stack.settings
    agent = "agent-misplaced"
    key, _, policy = run(make_agent(settings, agent))
    intent = transfer(key, agent, "0.001")
    approved = IntentApproved(
        intent=intent, policy=policy, verdicts=(), approved_at=utcnow(), intent_digest=intent.digest()
    ).to_bytes()
    home = partition_of(agent)
    elsewhere = (home + 1) % topics.PARTITIONS
    start = run(end_offsets(settings, (topics.DLQ, topics.TXS_SIGNED, topics.INTENTS_REJECTED)))

    async def misplaced() -> list[DeadLetter]:
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
        await producer.start()
        try:
            await (await producer.send(topics.INTENTS_APPROVED, approved, key=agent.encode(), partition=elsewhere))
        finally:
            await producer.stop()
        letters: list[DeadLetter] = []
        for _ in range(50):
            letters = [
                DeadLetter.from_bytes(v) for v in await read_topic(settings, topics.DLQ, idle_polls=2, start=start)
            ]
            letters = [d for d in letters if d.source_topic == topics.INTENTS_APPROVED and d.partition == elsewhere]
            if letters:
                break
        return letters

    (letter,) = run(misplaced())
    assert f"belong on partition {home}" in letter.reason and letter.signed_by.startswith("signer")
    assert not run(wait_outcomes(settings, [intent], 2, start)), "the misplaced approval was decided"

    async def in_place() -> dict[str, Outcome]:
        async with Client(settings) as client:
            await client.send(topics.INTENTS_APPROVED, agent, approved)
            await client.flush()
        return await wait_outcomes(settings, [intent], 120, start)

    assert run(in_place())[intent.intent_id].status == "sign_only"


def test_a_status_change_appended_but_not_published_is_published_by_the_next_owner(
    broker: Settings, tmp_path: Path
) -> None:
    """A signer killed between an append and the publish of what it made durable (`Trackers.emit`)
    left the state ahead of the topic: an intent told `mined` whose final record only the
    changelog held, and no tracker to follow it (it is final). Found on the stack: one tracker's
    append carried other trackers' changes too. The next owner publishes what was appended with
    each change (`Outcomes.transition` writes it: the outbox); a status change a newer record
    superseded is not published again, its audit event is. Without the outbox, or with it written
    by the tracker that publishes rather than with the change, the final record is never published."""
    agent = next(a for a in one_agent_per_partition("outbox") if partition_of(a) != partition_of(AGENT))
    (example,) = [e for e in sample_records() if isinstance(e, SignedTransaction)]
    broadcast = example.model_copy(update={"agent_id": agent, "status": "broadcast"})
    signed_us = 1_600_000_000_000_000  # long final: a restore does not look for it on a chain

    async def scenario() -> tuple[list[SignedTransaction], list[AuditEvent]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.broker, acks="all")
        await producer.start()
        a, b = (Signer(broker, tmp_path, name, producer) for name in ("signer-a", "signer-b"))
        for s in (a, b):
            await s.owner.start()
        p = a.states.partition_of(agent)
        trackers: dict[str, Trackers] = {}
        for name, s in (("signer-a", a), ("signer-b", b)):
            trackers[name] = Trackers(
                cast(service.Signer, _NothingToResume()),
                s.states,
                producer,
                broker.max_record_bytes,
                AuditSigner("signer", name, KEYS[name]),
            )
            trackers[name].owner = s.owner
        outcomes = Outcomes(a.states, ("signer-a", KEYS["signer-a"]), "none")
        start = await end_offsets(broker, (topics.TXS_SIGNED, topics.AUDIT_EVENTS))
        try:
            await a.owner.restore(p)
            mined: dict[str, SignedTransaction] = {}
            for nonce, intent_id in enumerate(("i-1", "i-2")):
                record = broadcast.model_copy(update={"intent_id": intent_id, "nonce": nonce})
                a.states.agent(agent).record_signed(
                    intent_id=intent_id, record=record.to_bytes(), now_us=signed_us, chain="anvil", nonce=nonce,
                    address=record.from_, spend_wei=1, counts=True, policy_version=1, idempotency_slot=None,
                )  # fmt: skip
                emits, mined[intent_id] = outcomes.transition(record, {"status": "mined", "block_number": 7}, T0)
                await trackers["signer-a"].emit(emits, p)

            async def killed(emits: list[Emit]) -> None:
                raise RuntimeError("killed before publishing")

            # Two trackers change together; the first to append (i-2's) appends both, and the
            # signer is killed before either is published.
            cast(Any, trackers["signer-a"])._publish = killed  # a test double: the kill before publishing
            outcomes.transition(mined["i-1"], {"status": "mined", "final": True}, T0, action=AuditAction.TX_FINAL)
            emits, final = outcomes.transition(
                mined["i-2"], {"status": "mined", "final": True}, T0, action=AuditAction.TX_FINAL
            )
            with pytest.raises(RuntimeError, match="killed"):
                await trackers["signer-a"].emit(emits, p)
            # A newer record of i-2 (a restore's reconcile publishes its own): i-2's final is stale.
            a.states.agent(agent).replace_record("i-2", final.model_copy(update={"reorgs": 1}).to_bytes())
            async with a.owner.batch:
                await a.owner.flush()

            await b.owner.restore(p)
            async with b.owner.batch:
                await trackers["signer-b"].restored(p)
                assert b.states.partition(p).unpublished() == []
                await b.owner.flush()
            published = [
                SignedTransaction.from_bytes(v) for v in await read_topic(broker, topics.TXS_SIGNED, start=start)
            ]
            events = [e for v in await read_topic(broker, topics.AUDIT_EVENTS, start=start) for e in audit_events_of(v)]
            return published, events
        finally:
            for s in (a, b):
                await s.owner.stop()
                s.states.close()
            await producer.stop()

    published, events = asyncio.run(scenario())
    mine = [(r.intent_id, r.status, r.final) for r in published if r.agent_id == agent]
    assert mine == [("i-1", "mined", False), ("i-2", "mined", False), ("i-1", "mined", True)], mine
    actions = sorted((e.intent_id, e.action) for e in events if e.agent_id == agent)
    assert actions == [
        ("i-1", AuditAction.TX_FINAL),
        ("i-1", AuditAction.TX_MINED),
        ("i-2", AuditAction.TX_FINAL),
        ("i-2", AuditAction.TX_MINED),
    ], actions


async def append_with_a_hole(broker: str, topic: str, partition: int) -> int:
    """A record that holds for nobody (not a changelog record), then an offset with no record: one
    batch whose last offset was numbered and holds nothing, as compaction leaves a batch on Apache
    Kafka and as a power loss leaves an offset on the embedded broker (numbered, never stored).
    aiokafka's producer numbers a batch's records one after another, so the batch is built by hand
    (its Python builder, the last offset set past the record). Returns the hole's offset."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    try:
        batch = producer.create_batch()
        batch._builder = _DefaultRecordBatchBuilderPy(
            2, 0, is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=0, batch_size=16384
        )
        batch.append(timestamp=None, key=None, value=b"a record of nobody's")
        batch._builder._last_offset = 1
        sent = await (await producer.send_batch(batch, topic, partition=partition))
        hole: int = sent.offset + 1
        return hole
    finally:
        await producer.stop()


async def abort_a_transaction(broker: str, topic: str, partition: int) -> int:
    """A record that holds for nobody, in a transaction that is aborted: on Apache Kafka the
    record keeps its offset and the abort marker takes the next, which no consumer is given.
    Returns the marker's offset: the hole."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", transactional_id=f"hole-{partition}")
    await producer.start()
    try:
        await producer.begin_transaction()
        sent = await (await producer.send(topic, b"a record of nobody's", partition=partition))
        await producer.abort_transaction()
        marker: int = sent.offset + 1
        return marker
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    stack = LocalStack(local_settings(tmp_path_factory.mktemp("changelog-kafka"), broker_storage="durable"))
    stack.start(parts=("broker",))
    yield stack.settings
    stack.stop()


def holes_counted(topic: str) -> float:
    return REGISTRY.get_sample_value("warden_offset_holes_total", {"topic": topic}) or 0.0


@pytest.mark.parametrize("on", ["tansu", "kafka"])
def test_an_offset_never_stored_right_before_a_signers_record_is_a_hole_not_an_outage(
    on: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A hole before the signer's own record: offsets 158 and 160 on the partition, 159 never
    stored, 160 the restarted signer's own record. A check that waited for a record at 159 would
    wait for ever (and raise, and the process exit); the append holds at once, the hole is counted
    once, and the next owner restores every spend. On the embedded broker the hole is an offset numbered and never stored (as the
    power loss left it); on Apache Kafka, an aborted transaction's marker."""
    broker = request.getfixturevalue("broker" if on == "tansu" else "kafka")
    make_hole = append_with_a_hole if on == "tansu" else abort_a_transaction

    async def scenario() -> tuple[float, list[str], int]:
        async with three_signers(broker, tmp_path) as (producer, (a, b, c)):
            p = (a.partition + 1) % topics.PARTITIONS  # a partition the other tests here leave alone
            agent = next(x for x in one_agent_per_partition("hole") if partition_of(x) == p)
            await a.owner.restore(p)
            spend(a.states, "h-1", 10, 0, agent)
            await a.owner.flush()
            hole = await make_hole(broker.broker, topics.SIGNER_CHANGELOG, p)

            # b restarts on the partition (its copy empty, so it restores from the start).
            before = holes_counted(topics.SIGNER_CHANGELOG)
            await b.owner.restore(p)
            spend(b.states, "h-2", 20, 1, agent)
            started = time.monotonic()
            await asyncio.wait_for(b.owner.flush(), timeout=8)
            took = time.monotonic() - started
            assert b.states.partition(p).changelog_position()[0] == hole + 1, "b's record is not right after the hole"
            assert holes_counted(topics.SIGNER_CHANGELOG) - before == 1

            await c.owner.restore(p)
            rows = c.states.agent(agent).spend_entries(NOW_US)
            return took, sorted(rows), sum(wei for _, wei in rows.values())

    took, rows, spent_wei = asyncio.run(scenario())
    assert took < 3, f"the append waited {took:.1f} s"
    assert rows == ["h-1", "h-2"] and spent_wei == 30


def test_a_worker_and_a_signer_restarted_on_changelogs_with_holes_decide_at_once(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """Both killed (as a power loss kills them), an offset numbered and never stored put on each
    changelog right after the record each last wrote for the agent's partition, both restarted:
    the agent's next intent is signed within a normal intent's time of the restart, and each
    service counted the hole. Before, each service's first append there waited 30 s for a record
    at the hole, then raised, and the service exited."""
    settings = stack.settings
    agent = "agent-holes"
    key, _, _ = run(make_agent(settings, agent))
    p = partition_of(agent)

    def intent() -> TransactionIntent:
        return transfer(key, agent, "0.000001")

    async def signed(*intents: TransactionIntent) -> float:
        start = await end_offsets(settings, (topics.TXS_SIGNED, topics.INTENTS_REJECTED))
        began = time.monotonic()
        async with Client(settings) as client:
            for i in intents:
                await client.submit(i)
            await client.flush()
        outcomes = await wait_outcomes(settings, list(intents), 30, start, final=False)
        assert all(isinstance(outcomes.get(i.intent_id), SignedTransaction) for i in intents), outcomes
        return time.monotonic() - began

    run(signed(intent()))  # both services have written the agent's partition of their changelogs
    stack.kill("streams", signal.SIGKILL)
    stack.kill("signer", signal.SIGKILL)
    for topic in (topics.STREAMS_CHANGELOG, topics.SIGNER_CHANGELOG):
        run(append_with_a_hole(settings.broker, topic, p))
    stack.start_service("streams", "streams.topology")
    stack.start_service("signer", "signer.main")
    took = run(signed(intent()))
    # Here a restart's first intent takes ~8 s without a hole (the group's rejoin); the old wait
    # alone was 30 s, and then the service exited.
    assert took < 20, f"the first intent after the restart took {took:.1f} s"
    for process, topic in (
        (settings.worker_process, topics.STREAMS_CHANGELOG),
        (settings.signer_process, topics.SIGNER_CHANGELOG),
    ):
        url = metrics_file(settings, process).read_text().strip()
        assert sample(url, "warden_offset_holes_total", topic=topic) == 1, process


def test_a_copy_ahead_of_the_brokers_log_is_not_restored_past_it(broker: Settings, tmp_path: Path) -> None:
    """A copy that applied offsets the broker no longer holds (a new broker, records deleted): the
    restore stops, naming the partition and what to do, rather than read on from wherever the
    broker's log is now, which would start the process without some agent's spend."""

    p = (partition_of(AGENT) + 3) % topics.PARTITIONS

    async def scenario() -> None:
        async with three_signers(broker, tmp_path) as (_, (a, _b, _c)):
            a.states.partition(p).set_changelog_position(40_000, 40_001)
            a.states.partition(p).commit()
            await a.owner.restore(p)

    with pytest.raises(ChangelogGone, match=f"{topics.SIGNER_CHANGELOG} partition {p} no longer holds offset 40000"):
        asyncio.run(scenario())


def test_a_follower_on_kafka_is_caught_up_at_the_listed_end_past_an_abort_marker_at_once(kafka: Settings) -> None:
    """On Apache Kafka a follower is caught up when its positions reach the ends listed when it
    began, with no quiet period after (which grows with the fetch wait, 5 s by default there: 10 s
    of waiting), even where the partition's last offset is an aborted transaction's marker, which
    no consumer is given a record for."""
    settings = dataclasses.replace(kafka, fetch_wait_setting=None)  # Kafka's own wait, not the suite's
    topic = topics.SIMULATIONS_RESULTS  # no other test here writes it (and it is not compacted: no key needed)

    async def scenario() -> float:
        await abort_a_transaction(settings.broker, topic, 0)
        caught_up = asyncio.Event()
        started = time.monotonic()
        following = asyncio.create_task(_drain(follow_records(settings, (topic,), caught_up=caught_up)))
        try:
            await asyncio.wait_for(caught_up.wait(), timeout=15)
            return time.monotonic() - started
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following

    assert settings.fetch_wait_ms >= 5_000
    took = asyncio.run(scenario())
    assert took < 3, f"caught up after {took:.1f} s"


async def _drain(records: AsyncIterator[object]) -> None:
    async for _ in records:
        pass


class _NothingToResume:
    """The signer's part a restore reaches here: its trackers, which find nothing to follow again
    (the one transaction here was final long before the window a restore looks back over)."""

    async def resume(
        self, state: SignerState, clock: Clock, publish: Callable[[list[Emit]], Awaitable[None]]
    ) -> list[SignedTransaction]:
        return []
