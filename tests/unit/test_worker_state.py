"""The streams worker's partition-owned tables (`streams.state`) and its batches
(`streams.topology.Worker.one`).

The tables: what a decision writes goes to the partition of the record being decided and onto
that partition's changelog record, a record that did not hold rolls it back, and a new owner
replaying the record holds the same rows. The batches: nothing a batch emitted is sent before its
writes were appended and held; a partition whose record did not hold publishes nothing, is read
again, and its records are sought back to be decided again; a record of a partition this worker
does not own is not decided. The broker's parts are stand-ins here, which write down what was
asked of them (the real ones are in the stack tests: tests/stack/test_paused_worker.py,
test_worker_changelog.py, test_crash_recovery.py)."""

from __future__ import annotations

import asyncio
from asyncio import Future
from collections.abc import Collection, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.changelog import ChangelogError, UnreadableRecord
from runtime.config import Settings
from schemas import topics
from schemas.auth import AuditSigner
from schemas.emit import Emit, Source
from signer.changelog import SIGNER_LOG
from streams.redelivery import Published
from streams.state import WORKER_LOG, PartitionTables, Table, WorkerStates
from streams.topology import Hop, Worker, input_topics

KEY = Ed25519PrivateKey.generate()


def _states(*owned: int) -> WorkerStates:
    return WorkerStates(set(owned))


def test_a_decision_writes_into_the_partition_it_was_read_from_and_is_read_over_those_owned() -> None:
    states = _states(0, 1)
    decisions = Table("decisions", states)
    with states.deciding(1):
        decisions["i-1"] = {"outcome": "approved"}
    assert states.partition(1).tables["decisions"] == {"i-1": {"outcome": "approved"}}
    assert states.partition(0).tables["decisions"] == {}
    assert decisions["i-1"] == {"outcome": "approved"} and list(decisions) == ["i-1"] and len(decisions) == 1
    assert states.partition(1).writes == [("put", ("decisions", "i-1", '{"outcome":"approved"}'))]
    states.owned.discard(1)  # moved to another worker: no longer read here
    assert "i-1" not in decisions and len(decisions) == 0
    with pytest.raises(RuntimeError, match="outside a record's decision"):
        decisions["i-2"] = {"outcome": "rejected"}
    with pytest.raises(ValueError, match="no table"):
        Table("spend", states)


def test_a_record_that_did_not_hold_rolls_back_and_a_replay_holds_the_same_rows() -> None:
    states = _states(0)
    policies = Table("policies", states)
    with states.deciding(0):
        policies["agent"] = "v1"
    states.partition(0).commit()
    with states.deciding(0):
        policies["agent"] = "v2"
        del policies["agent"]
        policies["other"] = "w1"
    writes = states.partition(0).writes
    states.partition(0).rollback()
    assert states.partition(0).tables["policies"] == {"agent": "v1"} and states.partition(0).writes == []

    copy = PartitionTables(0)
    copy.replay([("put", ("policies", "agent", '"v1"'))])
    copy.replay(writes)
    copy.commit()
    assert copy.tables["policies"] == {"other": "w1"}
    with pytest.raises(ValueError, match="names no table"):
        copy.replay([("put", ("spend", "agent", "1"))])


def test_a_changelog_record_is_the_workers_and_holds_only_puts() -> None:
    value = WORKER_LOG.seal(partition=2, prev=4, writer="w", writes=[("put", ("decisions", "i", None))], key=KEY)
    pinned = {"w": "0x" + KEY.public_key().public_bytes_raw().hex()}.get
    entry = WORKER_LOG.open(value, 2, pinned)
    assert (entry.prev, entry.writes) == (4, [("put", ("decisions", "i", None))])
    nobody: dict[str, str] = {}
    with pytest.raises(ChangelogError, match="not a pinned worker"):
        WORKER_LOG.open(value, 2, nobody.get)
    with pytest.raises(ChangelogError, match="not w's"):  # a signer's record is no worker's: another domain
        forged = SIGNER_LOG.seal(partition=2, prev=4, writer="w", writes=[], key=KEY)
        WORKER_LOG.open(forged, 2, pinned)
    bad = WORKER_LOG.seal(partition=2, prev=4, writer="w", writes=[("exec", ("x", "y", "z"))], key=KEY)
    with pytest.raises(UnreadableRecord, match="not \\[one of \\['put'\\]"):
        WORKER_LOG.open(bad, 2, pinned)


class _Recorder:
    """Stand-ins for the worker's producer, consumer and partitions' owner, writing down in one list
    the order in which they were asked things."""

    def __init__(self, states: WorkerStates, lose: Iterable[int] = frozenset()) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.states = states
        self.owned = states.owned
        self.lose = set(lose)
        self.batch = asyncio.Lock()

    # the owner
    def pending_bytes(self) -> int:
        return 0

    async def flush(self, touched: Collection[int] = ()) -> set[int]:
        written = sorted(p for p, state in self.states.opened() if state.writes)
        self.events.append(("append", written, sorted(touched)))
        lost = self.lose & (set(written) | set(touched))
        for p in lost:
            self.states.partition(p).rollback()
            self.owned.discard(p)
        for p, state in self.states.opened():
            if p not in lost:
                state.commit()
        return lost

    async def restore(self, *partitions: int) -> None:
        self.events.append(("restore", sorted(partitions)))
        self.owned.update(partitions)

    # the producer
    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> Future[Any]:
        self.events.append(("send", topic, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    # the consumer
    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(t, p) for t in input_topics("fused") for p in (0, 1)}

    async def seek_to_committed(self, *tps: TopicPartition) -> dict[TopicPartition, int]:
        self.events.append(("seek", sorted({tp.partition for tp in tps})))
        return dict.fromkeys(tps, 5)


class _Engine:
    """Decides every intent by writing a decision and emitting an approval named after it."""

    def __init__(self, states: WorkerStates) -> None:
        self.decisions = Table("decisions", states)

    def on_intent(self, value: bytes, source: Source, now: datetime) -> list[Emit]:
        self.decisions[value.decode()] = {"outcome": "approved"}
        return [Emit(topics.INTENTS_APPROVED, "agent", value)]

    def rebuild(self) -> None:
        pass


def _worker(tmp_path: Path, states: WorkerStates, recorder: _Recorder) -> Worker:
    worker = Worker.__new__(Worker)  # the loops without their broker connections
    worker.settings = Settings(home=tmp_path)
    worker.engine = _Engine(states)  # type: ignore[assignment]  # a stand-in that records what it is asked
    worker.states = states
    worker.owner = worker.producer = worker.consumer = recorder  # type: ignore[assignment]  # the recorder stands in for all three
    worker.hops = {topics.INTENTS_SUBMITTED: Hop(worker.engine.on_intent)}
    worker.published = Published()
    worker.windows_stale = False
    worker.audit_signer = AuditSigner("worker", "k", KEY)
    return worker


def _batch(*items: tuple[int, bytes]) -> dict[TopicPartition, list[ConsumerRecord]]:
    out: dict[TopicPartition, list[ConsumerRecord]] = {}
    for offset, (partition, value) in enumerate(items):
        tp = TopicPartition(topics.INTENTS_SUBMITTED, partition)
        out.setdefault(tp, []).append(
            ConsumerRecord(tp.topic, partition, offset, 0, 0, b"agent", value, None, 5, len(value), [])
        )
    return out


def test_nothing_a_batch_emitted_is_sent_before_its_writes_were_appended(tmp_path: Path) -> None:
    states = _states(0, 1)
    recorder = _Recorder(states)
    worker = _worker(tmp_path, states, recorder)
    asyncio.run(worker.one(_batch((0, b"i-1"), (1, b"i-2"), (0, b"i-3"))))
    assert recorder.events[0] == ("append", [0, 1], [0, 1])
    assert sorted(e[2] for e in recorder.events[1:]) == [b"i-1", b"i-2", b"i-3"]
    assert all(e[0] == "send" for e in recorder.events[1:])


def test_a_partition_whose_record_did_not_hold_publishes_nothing_and_is_read_and_decided_again(tmp_path: Path) -> None:
    states = _states(0, 1)
    recorder = _Recorder(states, lose={1})
    worker = _worker(tmp_path, states, recorder)
    asyncio.run(worker.one(_batch((0, b"i-1"), (1, b"i-2"))))
    sent = [e[2] for e in recorder.events if e[0] == "send"]
    assert sent == [b"i-1"]  # i-2 was decided by a worker that no longer owned partition 1
    assert ("seek", [1]) in recorder.events and ("restore", [1]) in recorder.events
    assert states.partition(1).tables["decisions"] == {}  # rolled back, not kept
    assert states.partition(0).tables["decisions"] == {"i-1": {"outcome": "approved"}}


def test_a_record_of_a_partition_not_owned_is_not_decided(tmp_path: Path) -> None:
    states = _states(0)
    recorder = _Recorder(states)
    worker = _worker(tmp_path, states, recorder)
    asyncio.run(worker.one(_batch((1, b"i-9"))))
    assert states.partition(1).tables["decisions"] == {}
    assert not [e for e in recorder.events if e[0] == "send"]


def test_a_partition_lost_mid_batch_decides_nothing_more_of_that_batch(tmp_path: Path) -> None:
    """Its records come again from the committed offset, in order: deciding the batch's later
    ones now would decide them before the earlier ones are decided again."""
    states = _states(1)
    recorder = _Recorder(states, lose={1})
    cast(Any, recorder).pending_bytes = lambda: 10**9  # every decision ends a lot, as a wait for the node does
    flush = recorder.flush

    async def lose_once(touched: Collection[int] = ()) -> set[int]:
        lost = await flush(touched)
        recorder.lose.clear()
        return lost

    cast(Any, recorder).flush = lose_once  # the recorder's own flush, then nothing more lost
    worker = _worker(tmp_path, states, recorder)
    asyncio.run(worker.one(_batch((1, b"i-1"), (1, b"i-2"))))
    assert ("seek", [1]) in recorder.events and ("restore", [1]) in recorder.events
    assert not [e for e in recorder.events if e[0] == "send"]  # i-1 lost with its record; i-2 not decided
    assert states.partition(1).tables["decisions"] == {}
