"""The fused hop decides a burst in lots (`streams.topology.Held`): every intent its consumer has
ready is decided before what they emitted is sent, each agent's audit events of the lot leave as
one record, and no input is acked before its outputs are with the producer (Faust flushes the
producer before it commits an acked offset, so a worker that dies holding a lot has committed
none of it)."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.config import Settings
from runtime.kafka import PRODUCER_BATCH_BYTES
from schemas import topics
from schemas.emit import Emit
from streams.fence import Decided
from streams.topology import Held, Loops, build_app


class _Log:
    """The order things happened in, as a Faust stream's acks and a publish would see them."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, object]] = []

    async def publish(self, decided: list[tuple[Decided, list[Emit]]], once: bool = False) -> None:
        await asyncio.sleep(0)  # a real publish awaits the producer: another flush may try to run meanwhile
        self.entries.append(("published", [e.value for _, emits in decided for e in emits]))

    async def ack(self, event) -> None:
        self.entries.append(("acked", event))


class _Message:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset, self.generation_id = topics.INTENTS_SUBMITTED, 0, offset, 1


class _Event:
    """A Faust event as the hop holds it: where its record was read, in which generation."""

    def __init__(self, name: str, offset: int) -> None:
        self.name, self.message = name, _Message(offset)

    def __eq__(self, other) -> bool:
        return self.name == other


def test_a_lot_is_acked_only_after_it_was_published_and_lots_leave_in_order():
    log = _Log()
    held = Held(log.publish)

    async def scenario() -> None:
        held.add(log, _Event("e1", 1), [Emit(topics.INTENTS_APPROVED, "a", b"1")])
        held.add(log, _Event("e2", 2), [Emit(topics.INTENTS_APPROVED, "a", b"2")])
        assert held.count == 2 and log.entries == []  # decided, nothing sent or acked yet
        first = asyncio.create_task(held.flush())
        await asyncio.sleep(0)  # the first flush is inside its publish now
        held.add(log, _Event("e3", 3), [Emit(topics.INTENTS_APPROVED, "a", b"3")])
        await asyncio.gather(first, held.flush(), held.flush())  # the timer's and the hop's, at once

    asyncio.run(scenario())
    assert log.entries == [
        ("published", [b"1", b"2"]),
        ("acked", "e1"),
        ("acked", "e2"),
        ("published", [b"3"]),
        ("acked", "e3"),
    ]
    assert held.count == 0


def test_a_flush_with_nothing_held_sends_nothing():
    log = _Log()
    asyncio.run(Held(log.publish).flush())
    assert log.entries == []


def test_the_workers_producer_takes_the_same_batches(tmp_path):
    # Faust's producer (the worker's approvals, audit records and table changelogs) is bounded the
    # same way. Its batches fill only under a heavier load than a test's burst: each Faust send
    # gives the event loop three turns (mode's `stampede`), in which aiokafka's sender takes what
    # is waiting unless a request is in flight. So the bound itself is what is checked here.
    assert build_app(Settings(home=tmp_path)).conf.producer_max_batch_size == PRODUCER_BATCH_BYTES


class _App:
    """What `Loops.publish` uses of a Faust app, writing down the order of flushes and sends."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.producer = self

    async def flush(self) -> None:
        self.log.append("flush")

    def topic(self, name: str, **kwargs):
        log = self.log

        class _Topic:
            async def send(self, key, value, headers) -> None:
                log.append(name)

        return _Topic()


def test_a_decision_is_flushed_to_its_changelog_before_its_outcome_is_sent(tmp_path):
    # The table's changelog records wait in Faust's buffer; a worker killed or stalled after sending
    # an outcome but before they left would let the partition's next owner decide the intent again,
    # maybe otherwise: an approval too, or its rejection would stand beside the signed transaction.
    log: list[str] = []
    loops = Loops(_App(log), Settings(home=tmp_path), None, ("k1", Ed25519PrivateKey.generate()))
    where = Decided(topics.INTENTS_SUBMITTED, 0, 1)
    loops.fence.assigned(1, {(where.topic, where.partition)})
    for topic in (topics.INTENTS_REJECTED, topics.INTENTS_APPROVED, topics.INTENTS_AWAITING_APPROVAL):
        log.clear()
        asyncio.run(loops.publish_decided([(where, [Emit(topic, "a", b"{}")])]))
        assert log == ["flush", topic]
    log.clear()
    asyncio.run(loops.publish([Emit(topics.APPROVAL_DEADLINES, "a", b"{}")]))  # no decision: no wait
    assert log == [topics.APPROVAL_DEADLINES]
