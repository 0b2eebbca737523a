"""Adding and removing audit webhooks: an admin's signed `WebhookRequest`, checked by the ledger.

The ledger believes a request only when a pinned admin of the set in force (the configured one
and every change its quorum made on warden.admins since, read to its end for each request) signed its exact
bytes, and it was issued within `MAX_AGE` of now. An added endpoint's id is the digest of its
request, so a request presented again (a replay) adds nothing: the ledger answers that the id is
taken. The secret is made here and answered once, in the reply to the request that added the
endpoint; it is never stored, logged or put on a topic (`ledger.webhook_messages.secret`). Every
add and remove is on the ledger as ``webhook.added`` / ``webhook.removed``, naming the admin and
carrying the request's signature.

The requests arrive over HTTP (``POST /webhooks`` on the sink's endpoint, WARDEN_LEDGER_HTTP);
`register` is the function behind it, for any caller that holds a signed request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from ledger.store import Store, StoreError
from ledger.webhook_messages import secret, whsec
from ledger.webhook_store import WebhookEndpoint, chain_heads, endpoints, write_endpoint
from runtime.admins import Admins
from runtime.clock import utcnow
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, event_id
from schemas.errors import WardenError, explain
from schemas.webhooks import WebhookRequest

log = logging.getLogger("warden.webhooks")

# How far a request's issued_at may be from the ledger's clock, either way.
MAX_AGE = timedelta(minutes=5)
PATH = "/webhooks"
# How long a request waits for warden.admins to be read to its end.
REFRESH_TIMEOUT_S = 30.0


class WebhookRefused(WardenError):
    """A request the ledger does not carry out; ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, problem: str, next_step: str | None = None) -> None:
        super().__init__(problem, next_step)
        self.status = status


@dataclass
class Registrar:
    """What checks and carries out requests: the admin set in force (read by ``refresh`` before
    each request, which sets ``caught_up``), the store, the ledger's webhook key, and the notices
    the sink publishes on warden.audit.events."""

    admins: Admins
    caught_up: asyncio.Event
    store: Store
    key: bytes
    notices: list[AuditEvent]
    # The admin set in force, read before each request is checked (then ``caught_up`` is set).
    refresh: Callable[[], Awaitable[Admins]] | None = None
    # Set once an endpoint was added or removed: the deliverer reads the endpoints again.
    changed: asyncio.Event | None = None
    # One request carried out at a time: each reads the store, then writes it, on the one
    # connection, so concurrent copies of a request find the first one's endpoint (409).
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)

    def register(self, request: WebhookRequest, now: datetime) -> dict[str, Any]:
        """Carry out ``request``: its answer (an added endpoint's ``id`` and ``secret``, once), or
        WebhookRefused saying why not."""
        if not self.caught_up.is_set():
            raise WebhookRefused(503, "the ledger is still reading the admin set in force", "try again in a moment")
        if abs(now - request.issued_at) > MAX_AGE:
            raise WebhookRefused(
                403,
                f"the request was issued at {request.issued_at.isoformat()}, more than {MAX_AGE} from the "
                f"ledger's clock ({now.isoformat()})",
                "sign a new request (and check this machine's clock)",
            )
        problem = self.admins.signature_problem(request.admin_key_id, request.signature, request.signing_bytes())
        if problem is not None:
            raise WebhookRefused(403, f"not an admin's request: {problem}", "sign it with a pinned admin's key")
        if request.op == "add":
            return self._add(request, now)
        return self._remove(request, now)

    def _add(self, request: WebhookRequest, now: datetime) -> dict[str, Any]:
        webhook_id = request.added_id()
        if endpoints(self.store, webhook_id, removed=True):
            raise WebhookRefused(409, f"endpoint {webhook_id} was added by this very request before", "sign a new one")
        endpoint = WebhookEndpoint(
            webhook_id=webhook_id,
            url=request.url,
            events=request.events,
            added_at=now,
            added_by=request.admin_key_id,
            start=chain_heads(self.store),
        )
        write_endpoint(self.store, endpoint)
        self.notices.append(_notice(AuditAction.WEBHOOK_ADDED, endpoint, request, now))
        return {
            "id": webhook_id,
            "secret": whsec(secret(self.key, webhook_id)),
            "url": request.url,
            "events": list(request.events),
        }

    def _remove(self, request: WebhookRequest, now: datetime) -> dict[str, Any]:
        found = endpoints(self.store, request.webhook_id, removed=True)
        if not found:
            raise WebhookRefused(
                404, f"no endpoint {request.webhook_id} is registered", "`warden webhooks list` shows them"
            )
        if found[0].removed_at is not None:
            raise WebhookRefused(
                409,
                f"endpoint {request.webhook_id} was removed before, at {found[0].removed_at.isoformat()} "
                f"by {found[0].removed_by}",
            )
        removed = dataclasses.replace(found[0], removed_at=now, removed_by=request.admin_key_id)
        write_endpoint(self.store, removed)
        self.notices.append(_notice(AuditAction.WEBHOOK_REMOVED, removed, request, now))
        return {"id": request.webhook_id, "removed": True}

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self._handle)]

    async def _refreshed(self) -> None:
        assert self.refresh is not None
        try:
            self.admins = await asyncio.wait_for(self.refresh(), REFRESH_TIMEOUT_S)
        except (asyncio.TimeoutError, KafkaError, OSError) as exc:
            raise WebhookRefused(
                503, f"the ledger could not read the admin set in force ({type(exc).__name__})", "try again in a moment"
            ) from None
        self.caught_up.set()

    async def _handle(self, http: web.Request) -> web.Response:
        try:
            request = WebhookRequest.model_validate_json(await http.read())
        except ValidationError as exc:
            return web.json_response({"error": "; ".join(explain(exc))}, status=400)
        try:
            if self.refresh is not None:
                await self._refreshed()
            async with self.turn:
                answer = await asyncio.to_thread(self.register, request, utcnow())
            if self.changed is not None:
                self.changed.set()
        except WebhookRefused as exc:
            # Said in the log, not on the ledger: anyone who reaches the endpoint can send requests.
            log.warning("webhooks: refused a %s request from %s: %s", request.op, http.remote, exc)
            return web.json_response({"error": str(exc)}, status=exc.status)
        except StoreError as exc:
            log.error("webhooks: the store failed on a %s request: %s", request.op, exc)
            failed = WebhookRefused(503, f"the ledger's store failed ({exc})", "try again in a moment")
            return web.json_response({"error": str(failed)}, status=failed.status)
        return web.json_response(answer, headers={"cache-control": "no-store"})


def shown_url(url: str) -> str:
    """An endpoint's URL as the ledger's events name it: without its query, which may carry a token."""
    parts = urlsplit(url)
    return parts._replace(query="").geturl()


def _notice(action: AuditAction, endpoint: WebhookEndpoint, request: WebhookRequest, now: datetime) -> AuditEvent:
    return AuditEvent(
        event_id=event_id("webhook", action, endpoint.webhook_id),
        actor=f"admin:{request.admin_key_id}",
        action=action,
        resource=f"webhook:{endpoint.webhook_id}",
        ts=now,
        details={
            "webhook_id": endpoint.webhook_id,
            "url": shown_url(endpoint.url),
            "events": list(endpoint.events),
            "admin_key_id": request.admin_key_id,
            "request_sha256": hashlib.sha256(request.signing_bytes()).hexdigest(),
            "request_signature": request.signature,
        },
    )


async def serve(routes: Callable[[], list[web.RouteDef]], host: str, port: int) -> web.AppRunner:
    """The requests' HTTP front where the sink serves no SQL endpoint (a ClickHouse server)."""
    app = web.Application(client_max_size=64 * 1024)
    app.add_routes(routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
