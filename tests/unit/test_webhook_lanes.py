"""Webhook lanes: an endpoint that hangs beside one that answers, on a real chDB ledger, with the
deliverer's own loop (`Deliverer.run`) and real HTTP receivers in this process; and the pure
choice of what each lane sends (`webhook_schedule.to_send`)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from infra.stack.local import free_port
from ledger import webhook_schedule as schedule
from ledger import webhook_store as stored
from ledger.store import ChdbStore
from ledger.webhook_schedule import Delivery, Retries
from ledger.webhooks import PER_ENDPOINT, Deliverer, WebhookOptions
from schemas.actions import AuditAction
from schemas.audit import AuditEvent
from tests.ledger_support import chdb_ledger, pipeline_events

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
AGENTS = PER_ENDPOINT + 2  # more agents than one endpoint may have in flight


def _delivery(webhook_id: str, seq: int, agent: str, **changes: Any) -> Delivery:
    base = Delivery(webhook_id, 0, seq, f"event-{seq}", agent, owed_since=NOW, next_at=NOW)
    return dataclasses.replace(base, **changes)


def test_a_busy_lane_sends_nothing_else_and_an_endpoint_at_its_limit_holds_only_its_own_lanes() -> None:
    # Endpoint "slow" has three lanes in flight (its limit here); "fast" has one lane busy.
    busy = {("slow", "a"), ("slow", "b"), ("slow", "c"), ("fast", "a")}
    pending = [
        _delivery("slow", 1, "d"),  # due, but its endpoint is at its limit
        _delivery("slow", 2, "a"),  # its lane is busy
        _delivery("fast", 3, "a"),  # its lane is busy
        _delivery("fast", 4, "b"),
        _delivery("fast", 5, "c", next_at=NOW + timedelta(seconds=3)),  # backing off
        _delivery("fast", 6, "b"),  # behind fast/b's head
        _delivery("other", 7, "a", next_at=NOW + timedelta(seconds=9)),
    ]
    chosen, later = schedule.to_send(pending, NOW, busy, per_endpoint=3)
    assert [d.seq for d in chosen] == [4]
    assert later == NOW + timedelta(seconds=3)
    # With nothing busy, each lane's head, the longest due first, at most the limit per endpoint
    # (fast/c, due now, waits for one of its endpoint's attempts, not for a time).
    chosen, later = schedule.to_send(pending, NOW + timedelta(seconds=3), (), per_endpoint=2)
    assert [d.seq for d in chosen] == [1, 2, 3, 4] and later == NOW + timedelta(seconds=9)
    chosen, _ = schedule.to_send(pending, NOW + timedelta(seconds=3), (), per_endpoint=1)
    assert [d.seq for d in chosen] == [1, 3]
    # A lane's next event once its head was acknowledged, and no time to wait when none waits.
    assert schedule.to_send([schedule.delivered(pending[3]), pending[5]], NOW, (), 3) == ([pending[5]], None)


class _Receivers:
    """Two webhook receivers on loopback: ``/fast`` answers 204 at once; ``/slow`` holds every
    request until ``release`` is set. Each keeps the ids it took, in arrival order."""

    def __init__(self) -> None:
        self.port = free_port()
        self.release = asyncio.Event()
        self.fast: list[str] = []
        self.slow: list[str] = []
        self.slow_held = 0
        self.slow_held_most = 0
        self.runner: web.AppRunner | None = None

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/fast", self._fast)
        app.router.add_post("/slow", self._slow)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _fast(self, request: web.Request) -> web.Response:
        self.fast.append(request.headers["webhook-id"])
        return web.Response(status=204)

    async def _slow(self, request: web.Request) -> web.Response:
        self.slow_held += 1
        self.slow_held_most = max(self.slow_held_most, self.slow_held)
        try:
            await self.release.wait()
        finally:
            self.slow_held -= 1
        self.slow.append(request.headers["webhook-id"])
        return web.Response(status=204)


def _in_order(taken: list[str], owed: list[AuditEvent]) -> dict[str | None, list[str]]:
    """Each agent's events in the order first taken."""
    firsts = list(dict.fromkeys(taken))
    agent_of = {e.event_id: e.agent_id for e in owed}
    by_agent: dict[str | None, list[str]] = {}
    for event_id in firsts:
        by_agent.setdefault(agent_of[event_id], []).append(event_id)
    return by_agent


def test_an_endpoint_that_hangs_delays_no_other_and_gets_its_events_in_order_once_it_answers(tmp_path: Path) -> None:
    """Two endpoints on one ledger: one answers at once, the other holds every request (its
    attempts' timeout is ten minutes). The one that answers gets every event it chose, each agent's
    in ledger order, while the other still holds its first requests, at most `PER_ENDPOINT` of
    them; once released, the other gets all of its own, in order too, and nothing is left pending."""
    events = pipeline_events(250, agents=AGENTS)
    with chdb_ledger(tmp_path / "home", events) as store:
        _hang_beside(store, events)


def _hang_beside(store: ChdbStore, events: list[AuditEvent]) -> None:
    receivers = _Receivers()
    chosen = {
        "wh_fast": (AuditAction.INTENT_SUBMITTED, AuditAction.STAGE_PASSED),
        "wh_slow": (AuditAction.INTENT_SUBMITTED,),
    }
    for webhook_id, actions in chosen.items():
        url = f"http://127.0.0.1:{receivers.port}/{webhook_id.removeprefix('wh_')}"
        stored.write_endpoint(store, stored.WebhookEndpoint(webhook_id, url, actions, NOW, "alice", start={}))
    owed = {webhook_id: [e for e in events if e.action in actions] for webhook_id, actions in chosen.items()}
    quick = Retries(timedelta(milliseconds=50), timedelta(milliseconds=200), give_up_after=timedelta(days=1))
    options = WebhookOptions(retries=quick, timeout=timedelta(minutes=10), poll=timedelta(milliseconds=100))

    async def scenario() -> tuple[int, int]:
        await receivers.up()
        stop = asyncio.Event()
        deliverer = Deliverer(store, b"k" * 32, [], options)
        running = asyncio.create_task(deliverer.run(stop))
        try:
            fast_ids = {e.event_id for e in owed["wh_fast"]}
            await _until(
                lambda: fast_ids <= set(receivers.fast),
                60,
                lambda: (
                    f"the endpoint that answers to get all {len(fast_ids)} events (it has {len(set(receivers.fast))})"
                ),
            )
            held_then = receivers.slow_held
            receivers.release.set()
            slow_ids = {e.event_id for e in owed["wh_slow"]}
            await _until(
                lambda: slow_ids <= set(receivers.slow) and not deliverer.lanes,  # each answer written too
                60,
                lambda: f"the released endpoint to get all {len(slow_ids)} events (it has {len(set(receivers.slow))})",
            )
            await asyncio.sleep(0.5)  # whatever more it would send
        finally:
            receivers.release.set()  # a deliverer waiting on a held request would wait for its timeout
            stop.set()
            await running
            assert receivers.runner is not None
            await receivers.runner.cleanup()
        return held_then, receivers.slow_held_most

    held_then, held_most = asyncio.run(scenario())
    # The endpoint that answered got all of its events while the other still held its first ones.
    assert held_then == PER_ENDPOINT and held_most == PER_ENDPOINT
    for webhook_id, taken in (("wh_fast", receivers.fast), ("wh_slow", receivers.slow)):
        by_agent = _in_order(taken, owed[webhook_id])
        assert by_agent == {
            agent: [e.event_id for e in owed[webhook_id] if e.agent_id == agent]
            for agent in {e.agent_id for e in owed[webhook_id]}
        }, webhook_id
    assert Counter(receivers.fast).most_common(1)[0][1] == 1, "an acknowledged event is not sent again"
    listed = {row["webhook_id"]: (row["delivered"], row["pending"]) for row in stored.summaries(store)}
    assert listed == {webhook_id: (len(owed[webhook_id]), 0) for webhook_id in chosen}


async def _until(done: Callable[[], bool], seconds: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what()}"
        await asyncio.sleep(0.05)
