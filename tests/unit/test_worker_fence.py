"""The streams worker's fence (`streams.fence`, used by `streams.topology.Loops.publish_decided`):
what a worker decided is published only while the coordinator's confirmation of its membership is
fresh, in the generation the input was read in, from a partition it still owns; a stalled worker
asks the coordinator again before it publishes, and what fails is dropped, not sent."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.config import Settings
from schemas import topics
from schemas.emit import Emit
from streams.fence import Decided, Fence
from streams.topology import Loops

SUBMITTED = topics.INTENTS_SUBMITTED


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Coordinator:
    """Answers `confirm(generation)` as a group coordinator would, and counts the questions."""

    def __init__(self, generation: int | None) -> None:
        self.generation = generation  # None: this member is not in the group (its session expired)
        self.asked: list[int] = []
        self.fence: Fence | None = None  # told of the rebalance when it refuses, as the consumer is

    async def __call__(self, generation: int) -> bool:
        self.asked.append(generation)
        if generation != self.generation and self.fence is not None:
            self.fence.revoked()  # the consumer's own heartbeat met the same answer: it rejoins
        return generation == self.generation


def _fence(coordinator: _Coordinator, clock: _Clock, session_s: float = 10.0) -> Fence:
    fence = coordinator.fence = Fence(session_s, coordinator, clock)
    fence.assigned(3, {(SUBMITTED, 0), (SUBMITTED, 2)})
    return fence


def test_an_owned_partition_in_the_current_generation_is_published_without_asking():
    coordinator, clock = _Coordinator(3), _Clock()
    fence = _fence(coordinator, clock)
    clock.now += 4.9  # inside the lease: half the 10 s session
    asyncio.run(fence.ready())
    assert fence.why_not(Decided(SUBMITTED, 2, 3)) is None
    assert coordinator.asked == []  # the running worker pays no round trip


def test_a_partition_that_moved_or_a_record_of_an_older_generation_is_not_published():
    fence = _fence(_Coordinator(3), _Clock())
    assert "partition 1 is no longer this worker's" in fence.why_not(Decided(SUBMITTED, 1, 3))
    assert "generation 2, the group is at 3" in fence.why_not(Decided(SUBMITTED, 0, 2))


def test_a_worker_stalled_past_its_lease_asks_and_drops_everything_if_it_is_out_of_the_group():
    coordinator, clock = _Coordinator(None), _Clock()  # the session expired while it was stopped
    fence = _fence(coordinator, clock)
    clock.now += 30.0  # SIGSTOP, then SIGCONT: nothing in the process ran meanwhile
    asyncio.run(fence.ready())
    assert coordinator.asked == [3]
    assert fence.why_not(Decided(SUBMITTED, 0, 3)) is not None


def test_a_worker_whose_membership_is_in_doubt_asks_again_until_the_coordinator_answers():
    """Refusing a record of a partition that may still be this worker's would lose it: the owner
    itself skips it. So the fence asks until it is confirmed or the partitions are taken."""
    clock = _Clock()
    answers = [False, False, True]

    async def busy(generation: int) -> bool:
        return answers.pop(0)  # the coordinator was rebalancing another member, then answered

    fence = Fence(10.0, busy, clock)
    fence.assigned(3, {(SUBMITTED, 0)})
    clock.now += 6.0
    asyncio.run(fence.ready(retry_s=0.0))
    assert answers == [] and fence.why_not(Decided(SUBMITTED, 0, 3)) is None

    async def never(generation: int) -> bool:
        clock.now += 1.0
        return False  # Faust tells this worker of the rebalance only once its agents are idle

    fence = Fence(10.0, never, clock)
    fence.assigned(3, {(SUBMITTED, 0)})
    clock.now += 6.0
    asyncio.run(fence.ready(retry_s=0.0))  # gives up after a lease, refused
    assert fence.why_not(Decided(SUBMITTED, 0, 3)) is not None


def test_a_worker_stalled_but_still_a_member_publishes_after_asking():
    coordinator, clock = _Coordinator(3), _Clock()
    fence = _fence(coordinator, clock)
    clock.now += 6.0
    assert "not confirmed" in fence.why_not(Decided(SUBMITTED, 0, 3))  # not without asking
    asyncio.run(fence.ready())
    assert coordinator.asked == [3] and fence.why_not(Decided(SUBMITTED, 0, 3)) is None


def test_a_question_that_fails_is_no_confirmation():
    clock = _Clock()

    async def unreachable(generation: int) -> bool:
        raise ConnectionError("coordinator gone")

    fence = Fence(10.0, unreachable, clock)
    fence.assigned(3, {(SUBMITTED, 0)})
    clock.now += 6.0
    assert asyncio.run(fence.confirm()) is False
    assert fence.why_not(Decided(SUBMITTED, 0, 3)) is not None


def test_the_lease_runs_from_when_the_question_was_sent():
    clock = _Clock()

    async def slow(generation: int) -> bool:
        clock.now += 4.0  # the answer took 4 s
        return True

    fence = Fence(10.0, slow, clock)
    fence.assigned(3, {(SUBMITTED, 0)})
    clock.now += 6.0
    asyncio.run(fence.confirm())
    clock.now += 1.5  # 5.5 s after the question was sent, 1.5 s after the answer came
    assert fence.why_not(Decided(SUBMITTED, 0, 3)) is not None


def test_nothing_is_published_between_a_revoke_and_the_next_assignment():
    coordinator, clock = _Coordinator(3), _Clock()
    fence = _fence(coordinator, clock)
    fence.revoked()
    asyncio.run(fence.ready())  # asked: a member still, but it owns nothing now
    assert fence.why_not(Decided(SUBMITTED, 0, 3)) is not None
    fence.assigned(4, {(SUBMITTED, 0)})
    assert fence.why_not(Decided(SUBMITTED, 0, 4)) is None
    assert fence.why_not(Decided(SUBMITTED, 0, 3)) is not None  # read before the rebalance


class _App:
    """What `Loops.publish_decided` uses of a Faust app: the producer's flush and the sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.producer = self

    async def flush(self) -> None:
        pass

    def topic(self, name: str, **kwargs):
        sent = self.sent

        class _Topic:
            async def send(self, key, value, headers) -> None:
                sent.append((name, value))

        return _Topic()


def test_the_worker_sends_only_what_the_fence_admits(tmp_path):
    app = _App()
    loops = Loops(app, Settings(home=tmp_path), None, ("k1", Ed25519PrivateKey.generate()))
    coordinator, clock = _Coordinator(7), _Clock()
    loops.fence = coordinator.fence = Fence(10.0, coordinator, clock)
    loops.fence.assigned(7, {(SUBMITTED, 0)})
    mine = [Emit(topics.INTENTS_APPROVED, "a", b'{"mine": 1}')]
    moved = [Emit(topics.INTENTS_REJECTED, "b", b'{"moved": 1}')]
    old = [Emit(topics.INTENTS_REJECTED, "c", b'{"old": 1}')]
    decided = [(Decided(SUBMITTED, 0, 7), mine), (Decided(SUBMITTED, 1, 7), moved), (Decided(SUBMITTED, 0, 6), old)]
    asyncio.run(loops.publish_decided(decided))
    assert app.sent == [(topics.INTENTS_APPROVED, b'{"mine": 1}')]
    app.sent.clear()
    coordinator.generation = None  # stalled: the group went on without it
    clock.now += 60.0
    asyncio.run(loops.publish_decided(decided[:1]))
    assert app.sent == [] and coordinator.asked == [7]


class _Message:
    def __init__(self, partition: int, generation: int) -> None:
        self.topic, self.partition, self.generation_id, self.offset, self.key = (
            SUBMITTED,
            partition,
            generation,
            9,
            b"a",
        )


class _Event:
    def __init__(self, partition: int, generation: int) -> None:
        self.message = _Message(partition, generation)
        self.value = b"{}"


def test_only_the_owner_decides_and_a_stalled_worker_decides_nothing_it_had_fetched(tmp_path):
    """Deciding writes the decisions table, whose changelog goes out whether or not the outcome
    does: a worker that no longer owns an input must not decide it at all, not only not publish."""
    app = _App()
    loops = Loops(app, Settings(home=tmp_path), None, ("k1", Ed25519PrivateKey.generate()))
    coordinator, clock = _Coordinator(7), _Clock()
    loops.fence = coordinator.fence = Fence(10.0, coordinator, clock)
    loops.fence.assigned(7, {(SUBMITTED, 0)})
    decided: list[int] = []

    def handler(raw, partition):
        decided.append(partition)
        return [Emit(topics.INTENTS_REJECTED, "a", b'{"rejected": %d}' % partition)]

    async def feed(*events):
        for event in events:
            await loops.decide(event, handler, event.value, event.message.partition, windows=False)

    asyncio.run(feed(_Event(0, 7), _Event(1, 7), _Event(0, 6)))  # owned; moved; read before a rebalance
    assert decided == [0] and app.sent == [(topics.INTENTS_REJECTED, b'{"rejected": 0}')]
    coordinator.generation = None  # SIGSTOP past the session: the group went on without it
    clock.now += 60.0
    asyncio.run(feed(_Event(0, 7)))
    assert decided == [0] and len(app.sent) == 1 and coordinator.asked == [7]
