"""The console's state (its sessions, passkey counters, enrolment links, the records it built for a
passkey to sign) and what each request reads of it: the console, the session, the admin logged in,
the JSON body; shared by the server's handlers and the pages that build what an admin signs
(`gateway.console.drafts`)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.console.enrolment import UsedLinks
from gateway.console.layout import attr
from gateway.console.login import Counters, passkey_admins
from gateway.console.relay import RelayRefused
from gateway.console.sessions import Session, Sessions
from gateway.console.throttle import LoginThrottle
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import publish, service_producer
from runtime.trust import console_audit_signer
from schemas.actions import AuditAction
from schemas.emit import Emit, audit
from schemas.passkeys import RelyingParty

_log = logging.getLogger("warden.console")
ACTOR = "service:console"

AuditSink = Callable[[Emit], Awaitable[None]]
# How long a record the console built (an agent's next policy, a webhook request) waits for the
# passkey's signature before the admin must fill the form again.
DRAFT_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class Draft:
    """A record the console built for ``admin_id`` to sign: its kind (``policy``, ``webhook``) and
    its exact signing bytes, the only bytes the console relays a signature over for it."""

    admin_id: str
    kind: str
    message: bytes
    made_at: datetime
    title: str = ""
    intro: str = ""  # markup (escaped) the signing page shows above the bytes


@dataclass
class Console:
    """The console's state: its settings and origin, the sessions, the passkeys' counters, the
    enrolment links taken, and where its audit events go."""

    settings: Settings
    party: RelyingParty  # its pages' origin the first of its origins
    audit_sink: AuditSink
    now: Callable[[], datetime] = utcnow
    sessions: Sessions = field(default_factory=Sessions)
    counters: Counters = field(default_factory=Counters)
    # Enrolment: each link's registration challenge while it is open, and the links used (kept in
    # the home, so a link used stays used after a restart).
    enrol_challenges: dict[str, bytes] = field(default_factory=dict)
    enrol_used: UsedLinks = field(init=False)
    # The records built for a passkey to sign, by a random id the page sends back; each taken once.
    drafts: dict[str, Draft] = field(default_factory=dict)
    # Failed logins per client address, which lock that address out for a while.
    throttle: LoginThrottle = field(default_factory=LoginThrottle)

    def __post_init__(self) -> None:
        self.enrol_used = UsedLinks(self.settings.home)

    @property
    def origin(self) -> str:
        return self.party.origins[0]

    def draft(self, admin_id: str, kind: str, message: bytes, title: str = "", intro: str = "") -> str:
        """Keep ``message``, built for ``admin_id`` to sign, and return the id its page sends back."""
        now = self.now()
        for old in [k for k, d in self.drafts.items() if now - d.made_at > DRAFT_TTL]:
            del self.drafts[old]
        draft_id = uuid.uuid4().hex
        self.drafts[draft_id] = Draft(admin_id, kind, message, now, title, intro)
        return draft_id

    def shown_draft(self, draft_id: str, admin_id: str, kind: str) -> Draft | None:
        """Draft ``draft_id`` for its signing page, while it waits (not taken), when it is ``admin_id``'s."""
        draft = self.drafts.get(draft_id)
        if draft is None or draft.kind != kind or draft.admin_id != admin_id:
            return None
        return None if self.now() - draft.made_at > DRAFT_TTL else draft

    def take_draft(self, draft_id: str, admin_id: str, kind: str, shown: bytes) -> bytes:
        """The bytes of draft ``draft_id`` (taken: a draft is relayed or refused once) when
        ``admin_id`` asks for it and ``shown``, what the page's passkey signed, is exactly them;
        RelayRefused otherwise."""
        draft = self.drafts.pop(draft_id, None)
        if draft is None or draft.kind != kind or self.now() - draft.made_at > DRAFT_TTL:
            raise RelayRefused(
                f"no {kind} built by the console waits under this id (over {DRAFT_TTL.seconds // 60} minutes old, "
                "or relayed or refused already): fill the form again"
            )
        if draft.admin_id != admin_id:
            raise RelayRefused(f"this {kind} was built for {draft.admin_id}, not {admin_id}, who is logged in")
        if shown != draft.message:
            raise RelayRefused(
                f"the bytes signed are not the {kind} the console built and showed: nothing was relayed; "
                "fill the form again"
            )
        return draft.message

    async def record(self, action: AuditAction, resource: str, agent_id: str | None = None, **details: Any) -> None:
        """One audit event of the console's (its id unique: each login, each relay is its own)."""
        event = audit(ACTOR, action, resource, self.now(), uuid.uuid4().hex, agent_id=agent_id, **details)
        try:
            await self.audit_sink(event)
        except Exception as exc:  # noqa: BLE001 - a broker hiccup must not undo what the admin did; it is logged
            _log.error("could not record %s on the audit topic: %s", action, exc)


# What each request carries: the console, its session, and whether the session changed (a login).
CONSOLE = web.RequestKey("console", Console)
SESSION = web.RequestKey("session", Session)
SESSION_CHANGED = web.RequestKey("session_changed", bool)
APP_CONSOLE = web.AppKey("console", Console)


def kafka_audit_sink(
    settings: Settings,
) -> tuple[AuditSink, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """Audit events published on warden.audit.events, signed with the console's key: (sink, start, stop)."""
    producer, signer = service_producer(settings), console_audit_signer(settings)

    async def sink(event: Emit) -> None:
        await asyncio.gather(*await publish(producer, [event], settings.max_record_bytes, signer))

    return sink, producer.start, producer.stop


# -- what a request reads ---------------------------------------------------------------------------


def html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def admin_of(request: web.Request) -> str:
    """The admin logged in; a redirect to the login page when nobody is."""
    admin_id = request[SESSION].admin_id
    if admin_id is None:
        raise web.HTTPSeeOther("/login")
    return admin_id


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="the body is not JSON", content_type="text/plain") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body is not a JSON object", content_type="text/plain")
    return body


def me_block(request: web.Request, keys: dict[str, str], admin_id: str) -> str:
    """What the page's script asks the passkey with: the admin's credential and the relying party.
    An admin who is no longer a passkey admin in force is logged out."""
    console: Console = request[CONSOLE]
    credential = passkey_admins(keys).get(admin_id)
    if credential is None:
        console.sessions.end(request[SESSION].id)
        raise web.HTTPSeeOther("/login")
    return f'<div id="me" data-credential="{attr(credential)}" data-rp="{attr(console.party.rp_id)}"></div>'


def csrf_of(request: web.Request) -> str:
    return request[SESSION].csrf
