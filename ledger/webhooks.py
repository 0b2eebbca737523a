"""Audit webhooks delivered from the ledger: a task of the sink's process that reads what the sink
appended and sends each endpoint the events of the actions it chose (docs/webhooks.md).

Only rows of ``audit_log`` go out: events whose writer's signature the sink checked and which it
chained. A record nobody pinned signed is a ``dlq.recorded`` row of the ledger's own, never the
event it claims to be, so a keyless topic writer cannot make Warden announce a ``tx.final``.

Each turn: every endpoint's scan reads the rows appended since its cursor (`webhook_store`), each
becomes a delivery owed, written before the cursor moves; the outcomes of the attempts that
finished are written; then each lane (an endpoint and an agent: `webhook_schedule.to_send`) whose
oldest delivery is due gets an attempt of its own, a task the turn does not wait for, at most
`PER_ENDPOINT` of one endpoint at once. So an endpoint that hangs holds its own lanes until its
timeout, and nothing else: another endpoint's events go out as fast as that one answers. Every
read and write of the store is the turn's, one at a time on its connection. The state lives in the
ledger's store, so a restart continues where the last write left it: an event is sent again only
when its acknowledgement was not yet written. A delivery given up on stays in the store and is on
the ledger as ``webhook.gave_up``.

The HTTP client follows no redirect (a 3xx is a failure: the endpoint's URL is what an admin
added), reads no proxy from the environment and gives each attempt `WebhookOptions.timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from ledger import webhook_messages as messages
from ledger import webhook_schedule as schedule
from ledger import webhook_store as stored
from ledger.store import Store, StoreError, open_writer
from ledger.webhook_admin import Registrar, serve, shown_url
from ledger.webhook_schedule import Delivery, Retries
from ledger.webhook_store import WebhookEndpoint
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.trust import admins_in_force, pinned_admins
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, event_id

log = logging.getLogger("warden.webhooks")

# Attempts in flight at once to one endpoint, each another agent's: endpoints never share them.
PER_ENDPOINT = 8
STOP_GRACE = timedelta(seconds=3)
_USER_AGENT = "warden-webhooks/1"


@dataclass(frozen=True)
class WebhookOptions:
    retries: Retries = field(default_factory=Retries)
    timeout: timedelta = timedelta(seconds=15)
    poll: timedelta = timedelta(seconds=1)
    scan_limit: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> "WebhookOptions":
        ledger = settings.ledger
        return cls(
            retries=Retries(
                first=timedelta(seconds=ledger.webhook_retry_first_s),
                cap=timedelta(seconds=ledger.webhook_retry_max_s),
                give_up_after=timedelta(seconds=ledger.webhook_give_up_s),
            ),
            timeout=timedelta(seconds=ledger.webhook_timeout_s),
            poll=timedelta(seconds=ledger.webhook_poll_s),
        )


ENDPOINTS_READ_EVERY_S = 60.0


class Deliverer:
    """The deliveries of every endpoint: those pending held in memory as last written, and each
    lane's attempt in flight as a task of its own."""

    def __init__(self, store: Store, key: bytes, notices: list[AuditEvent], options: WebhookOptions) -> None:
        self.store = store
        self.key = key
        self.notices = notices
        self.options = options
        self.pending: dict[tuple[str, int, int], Delivery] = {}
        self.loaded: set[str] = set()  # endpoints whose pending deliveries were read from the store
        self.loaded_once = False  # whether the deliveries given up on were said again since the start
        self.scanned_at = float("-inf")  # time.monotonic() of the last scan
        self.more_to_scan = False
        # The endpoints, read from the store when the registrar changed them (`endpoints_changed`)
        # and at least once a minute, not at every turn: an idle ledger with no webhooks reads nothing.
        self.active: dict[str, WebhookEndpoint] = {}
        self.endpoints_changed = asyncio.Event()
        self.endpoints_changed.set()
        self.endpoints_read_at = float("-inf")
        # Each busy lane's attempt, from its start until its outcome is written: the lane sends
        # nothing else meanwhile. The attempts touch no store: every read and write is the turn's.
        self.lanes: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.finished: list[tuple[Delivery, WebhookEndpoint]] = []  # outcomes not yet written
        self.woken = asyncio.Event()  # set when an attempt finishes

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=self.options.timeout.total_seconds())
        async with aiohttp.ClientSession(timeout=timeout, headers={"user-agent": _USER_AGENT}) as session:
            try:
                while not stop.is_set():
                    wait = self.options.poll.total_seconds()
                    try:
                        wait = await self.turn(session)
                    except Exception as exc:  # noqa: BLE001 - a failed turn must not end deliveries for good
                        if isinstance(exc, StoreError):
                            log.error("webhooks: the store failed (%s); reading the deliveries from it again", exc)
                        else:
                            log.exception("webhooks: a turn failed; reading the deliveries from the store again")
                        self.pending.clear()
                        self.loaded.clear()
                    await self._rest(stop, wait)
            finally:
                await self.drain()

    async def _rest(self, stop: asyncio.Event, seconds: float) -> None:
        """Until ``stop``, an attempt finished, or ``seconds`` passed."""
        if seconds <= 0:
            return
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.woken.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def drain(self) -> None:
        """At a stop: the attempts in flight given `STOP_GRACE` to end, the rest cancelled (sent
        again after the restart), and every outcome written."""
        if self.lanes:
            await asyncio.wait(list(self.lanes.values()), timeout=STOP_GRACE.total_seconds())
        for task in self.lanes.values():
            task.cancel()
        await asyncio.gather(*self.lanes.values(), return_exceptions=True)
        try:
            await self._write_finished()
        except StoreError as exc:
            log.error("webhooks: the store failed (%s); the last outcomes are sent again after the restart", exc)

    def _say_given_up(self) -> None:
        """Each delivery given up on whose event the ledger does not hold, said again: the store
        holds its state from the moment it was given up, the ledger its event only once the sink
        published it, and a stop can come in between."""
        every = {e.webhook_id: e for e in stored.endpoints(self.store, removed=True)}
        for delivery, when in stored.given_up_unsaid(self.store):
            if delivery.webhook_id in every:
                self.notices.append(gave_up_event(delivery, every[delivery.webhook_id], when))

    async def turn(self, session: aiohttp.ClientSession) -> float:
        """One round: the endpoints read again when they changed, a scan once a poll, the finished
        attempts' outcomes written, and each lane's due delivery started; the seconds until the next
        round has something to do (0: at once), unless an attempt finishes first."""
        self.woken.clear()
        if not self.loaded_once:
            await asyncio.to_thread(self._say_given_up)
            self.loaded_once = True
        if self.endpoints_changed.is_set() or time.monotonic() - self.endpoints_read_at >= ENDPOINTS_READ_EVERY_S:
            self.endpoints_changed.clear()
            self.endpoints_read_at = time.monotonic()
            self.active = {e.webhook_id: e for e in await asyncio.to_thread(stored.endpoints, self.store)}
            self._forget_removed()
        active = self.active
        unloaded = set(active) - self.loaded
        if unloaded:
            for delivery in await asyncio.to_thread(stored.pending, self.store, unloaded):
                self.pending[(delivery.webhook_id, delivery.chain, delivery.seq)] = delivery
            self.loaded |= unloaded
        # Attempts go on as fast as endpoints answer; the scans (each a write when the ledger grew)
        # once a poll, unless the last one stopped at its limit.
        poll = self.options.poll.total_seconds()
        if self.more_to_scan or time.monotonic() - self.scanned_at >= poll:
            self.scanned_at, self.more_to_scan = time.monotonic(), False
            for endpoint in active.values():
                self.more_to_scan |= await asyncio.to_thread(self._scan, endpoint, utcnow())
        await self._write_finished()
        later = await self._start_due(session)
        if self.more_to_scan or self.woken.is_set():
            return 0.0
        wait = poll - (time.monotonic() - self.scanned_at)
        if later is not None:
            wait = min(wait, (later - utcnow()).total_seconds())
        return max(wait, 0.0)

    def _forget_removed(self) -> None:
        """A removed endpoint is sent nothing more: its deliveries dropped, its attempts cancelled."""
        self.pending = {k: d for k, d in self.pending.items() if d.webhook_id in self.active}
        self.loaded &= set(self.active)
        for lane in [lane for lane in self.lanes if lane[0] not in self.active]:
            self.lanes.pop(lane).cancel()

    def _scan(self, endpoint: WebhookEndpoint, now: datetime) -> bool:
        """The rows ``endpoint`` is owed since its cursor, as deliveries written before the cursor
        moves; whether the scan stopped at its limit."""
        heads = stored.chain_heads(self.store)
        reached = stored.cursors(self.store, endpoint)
        rows, moved = stored.owed_rows(self.store, endpoint, reached, heads, self.options.scan_limit)
        owed = [
            Delivery(
                webhook_id=endpoint.webhook_id,
                chain=int(row["chain"]),
                seq=int(row["seq"]),
                event_id=row["event_id"],
                agent_id=row["agent_id"],
                owed_since=now,
                next_at=now,
            )
            for row in rows
        ]
        stored.write_deliveries(self.store, owed, now)
        if moved != reached:
            stored.write_cursors(self.store, endpoint.webhook_id, moved)
        for delivery in owed:
            self.pending.setdefault((delivery.webhook_id, delivery.chain, delivery.seq), delivery)
        return len(rows) >= self.options.scan_limit

    async def _start_due(self, session: aiohttp.ClientSession) -> datetime | None:
        """An attempt started for each lane whose head is due (`webhook_schedule.to_send`); when the
        next head comes due."""
        due, later = schedule.to_send(self.pending.values(), utcnow(), self.lanes.keys(), PER_ENDPOINT)
        if not due:
            return later
        rows = await asyncio.to_thread(stored.rows_at, self.store, [d.position for d in due])
        for delivery in due:
            endpoint = self.active[delivery.webhook_id]
            self.lanes[delivery.lane] = asyncio.create_task(
                self._lane(session, endpoint, delivery, rows[delivery.position])
            )
        return later

    async def _lane(
        self, session: aiohttp.ClientSession, endpoint: WebhookEndpoint, delivery: Delivery, row: dict[str, Any]
    ) -> None:
        """One lane's attempt, its outcome left for the turn to write."""
        try:
            outcome = await self._attempt(session, endpoint, delivery, row)
        except Exception as exc:  # noqa: BLE001 - an attempt that fails in any way is a failed attempt, never a stuck lane
            log.exception("webhook %s: an attempt at event %s failed", endpoint.webhook_id, delivery.event_id)
            error = f"{type(exc).__name__}: {exc}"[:300]
            outcome = schedule.failed(delivery, utcnow(), error, self.options.retries, random.random())
        self.finished.append((outcome, endpoint))
        self.woken.set()

    async def _write_finished(self) -> None:
        """The finished attempts' outcomes, written in one insert; then their lanes are free."""
        finished = list(self.finished)
        if not finished:
            return
        now = utcnow()
        await asyncio.to_thread(stored.write_deliveries, self.store, [outcome for outcome, _ in finished], now)
        del self.finished[: len(finished)]
        for outcome, endpoint in finished:
            self.lanes.pop(outcome.lane, None)
            key = (outcome.webhook_id, outcome.chain, outcome.seq)
            if outcome.state == "pending" and outcome.webhook_id in self.active:
                self.pending[key] = outcome
                continue
            self.pending.pop(key, None)
            if outcome.state == "given_up":
                log.warning(
                    "webhook %s: gave up on event %s after %d attempts (%s)",
                    outcome.webhook_id,
                    outcome.event_id,
                    outcome.attempts,
                    outcome.last_error,
                )
                self.notices.append(gave_up_event(outcome, endpoint, now))

    async def _attempt(
        self, session: aiohttp.ClientSession, endpoint: WebhookEndpoint, delivery: Delivery, row: dict[str, Any]
    ) -> Delivery:
        content = messages.body(row)
        secret = messages.secret(self.key, endpoint.webhook_id)
        wait = None
        try:
            sent = messages.headers(secret, messages.message_id(delivery.event_id), content, utcnow())
            async with session.post(endpoint.url, data=content, headers=sent, allow_redirects=False) as answer:
                if 200 <= answer.status < 300:
                    return schedule.delivered(delivery)
                error = f"HTTP {answer.status}"
                wait = schedule.retry_after(answer.headers.get("retry-after"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        return schedule.failed(delivery, utcnow(), error, self.options.retries, random.random(), wait)


def gave_up_event(delivery: Delivery, endpoint: WebhookEndpoint, now: datetime) -> AuditEvent:
    """The ledger's record that ``delivery`` was given up on."""
    return AuditEvent(
        event_id=event_id("webhook", AuditAction.WEBHOOK_GAVE_UP, delivery.webhook_id, delivery.event_id),
        actor="service:ledger",
        action=AuditAction.WEBHOOK_GAVE_UP,
        resource=f"webhook:{delivery.webhook_id}",
        ts=now,
        details={
            "webhook_id": delivery.webhook_id,
            "url": shown_url(endpoint.url),
            "event_id": delivery.event_id,
            "agent_id": delivery.agent_id,
            "chain": delivery.chain,
            "seq": delivery.seq,
            "attempts": delivery.attempts,
            "owed_since": delivery.owed_since.isoformat(),
            "last_error": delivery.last_error,
        },
    )


class Webhooks:
    """The sink's webhooks: the requests' routes (`webhook_admin.Registrar`), the follower of the
    admin set in force they are checked against, and the `Deliverer`, each on its own connection
    to the store."""

    def __init__(self, settings: Settings, registrar: Registrar, deliverer: Deliverer) -> None:
        self.settings = settings
        self.registrar = registrar
        self.deliverer = deliverer
        self.halt = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.runner: web.AppRunner | None = None

    @classmethod
    async def start(cls, settings: Settings, notices: list[AuditEvent]) -> "Webhooks":
        key = messages.load_or_create_key(settings.home)
        deliverer = Deliverer(
            await asyncio.to_thread(open_writer, settings), key, notices, WebhookOptions.from_settings(settings)
        )
        # warden.admins read for each request, not followed: requests are rare, and a follower is
        # one more consumer polling the broker for the ledger's whole life.
        registrar = Registrar(
            pinned_admins(settings),
            asyncio.Event(),
            await asyncio.to_thread(open_writer, settings),
            key,
            notices,
            refresh=lambda: admins_in_force(settings),
            changed=deliverer.endpoints_changed,
        )
        hooks = cls(settings, registrar, deliverer)
        hooks.tasks = [asyncio.create_task(deliverer.run(hooks.halt))]
        return hooks

    def routes(self) -> list[web.RouteDef]:
        return self.registrar.routes()

    async def serve(self) -> None:
        """Serve the requests on WARDEN_LEDGER_HTTP, where no SQL endpoint does (a ClickHouse server)."""
        host, _, port = self.settings.ledger_http.rpartition(":")
        self.runner = await serve(self.routes, host, int(port))

    async def stop(self) -> None:
        self.halt.set()
        (deliverer,) = self.tasks
        # The deliverer gives its attempts in flight STOP_GRACE and writes what they answered; an
        # endpoint that hangs does not hold the ledger's stop for long: its attempt is sent again
        # after the restart. The store's write gets a grace of its own.
        await asyncio.wait([deliverer], timeout=2 * STOP_GRACE.total_seconds())
        deliverer.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.runner is not None:
            await self.runner.cleanup()
        for store in (self.registrar.store, self.deliverer.store):
            store.close()
