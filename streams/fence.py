"""The streams worker's fence: what it decided is published only while it still owns where the
input came from.

A worker stalled past its session (paused, swapped out, a stopped VM) loses its partitions to the
others, and the new owner decides their intents again. When the stalled worker resumes it does
not know yet: its consumer learns it at its next heartbeat, while the worker may already be
publishing what it decided before the stall, or deciding records it had fetched. Published, those
would be a second decision for an intent another worker decided: a rejection beside the other's
approval that gets signed, or two rejections with different bytes.

So before it decides an input (deciding writes the decisions table, whose changelog goes out
whatever happens to the outcome), and again before it publishes what it decided, the worker checks:

- its membership: the group coordinator confirmed it (a heartbeat answered without error, at this
  worker's generation) less than ``lease_s`` ago, counted from when that heartbeat was sent. The
  coordinator keeps a member's partitions at least a session after its last heartbeat, so within
  half a session of one nothing has moved. Older than that (after a stall), the worker asks again
  before it publishes anything;
- the generation: the input was read in the group generation the worker is in now (a record read
  before a rebalance may have been decided by another owner since);
- ownership: the input's partition is still assigned to this worker.

What fails a check is dropped, logged and counted (``warden_worker_fenced_total``): its partition's
owner decides that intent, or replays the decision it finds on the changelog. Nothing Kafka here:
the caller passes the generation, the assignment and a coroutine that asks the coordinator.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

log = logging.getLogger("warden.streams.fence")

# The part of a session a confirmed membership is trusted for: the coordinator keeps a member's
# partitions a whole session after its last heartbeat; half leaves the other half for the publish
# itself and for the broker's and this process's clocks to differ in rate.
LEASE_SHARE = 0.5


@dataclass(frozen=True)
class Decided:
    """Where a decided input came from: its topic and partition, and the group generation in which
    this worker read it."""

    topic: str
    partition: int
    generation: int


class Fence:
    """This worker's membership as the coordinator last confirmed it, and its assignment."""

    def __init__(
        self,
        session_timeout_s: float,
        confirm: Callable[[int], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
    ):
        # ``confirm(generation)``: True only if the coordinator answered that this worker is a
        # member at that generation (no error); anything else, raised or returned, is False.
        self.lease_s = session_timeout_s * LEASE_SHARE
        self._confirm = confirm
        self._clock = clock
        self.generation: int | None = None
        self.owned: frozenset[tuple[str, int]] = frozenset()
        self._confirmed_at: float | None = None

    def assigned(self, generation: int, partitions: Collection[tuple[str, int]]) -> None:
        """A rebalance gave this worker ``partitions`` in ``generation``: the coordinator answered
        the join just now, so the membership is confirmed as of now."""
        self.generation = generation
        self.owned = frozenset(partitions)
        self._confirmed_at = self._clock()

    def revoked(self) -> None:
        """A rebalance began: nothing is this worker's until the coordinator assigns it again."""
        self.owned = frozenset()
        self._confirmed_at = None

    def fresh(self) -> bool:
        return self._confirmed_at is not None and self._clock() - self._confirmed_at < self.lease_s

    async def confirm(self) -> bool:
        """Ask the coordinator; the lease runs from when the question was sent."""
        generation = self.generation
        if generation is None:
            return False
        sent = self._clock()
        try:
            # Bounded: an answer later than the lease would confirm nothing, and a question the
            # coordinator holds (as Tansu may, mid-rebalance) must not hold every agent with it.
            confirmed = await asyncio.wait_for(self._confirm(generation), self.lease_s)
        except Exception as exc:  # noqa: BLE001 - not knowing is not confirmed: fail closed
            log.warning("could not confirm this worker's group membership: %s %s", type(exc).__name__, exc)
            confirmed = False
        if confirmed and generation == self.generation:
            self._confirmed_at = max(sent, self._confirmed_at or sent)
        return confirmed

    async def ready(self, retry_s: float | None = 0.2) -> None:
        """Before a decision or a publish: confirmed again if the lease lapsed (a stall, a starved
        loop), asking until the coordinator confirms this worker or a rebalance takes its
        partitions (`revoked`): a membership in doubt for a moment (a coordinator busy with
        another member) does not refuse records. At most one lease: Faust waits for its agents before it tells
        this worker of a rebalance, so waiting for that would never end. ``retry_s`` None: ask once
        (a rebalance is already under way)."""
        began = self._clock()
        while not self.fresh() and self.owned:
            if await self.confirm() or retry_s is None or self._clock() - began > self.lease_s:
                return
            await asyncio.sleep(retry_s)

    def why_not(self, decided: Decided) -> str | None:
        """None if what was decided from ``decided`` may be published now; else why not."""
        if not self.fresh():
            return "this worker's group membership is not confirmed (stalled past its lease, or rebalancing)"
        if decided.generation != self.generation:
            return f"read in group generation {decided.generation}, the group is at {self.generation}"
        if (decided.topic, decided.partition) not in self.owned:
            return f"{decided.topic} partition {decided.partition} is no longer this worker's"
        return None
