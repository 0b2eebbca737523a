"""The console's web server (`warden console`, and `warden up`'s ``console`` process): aiohttp,
pages drawn here, a little script under ``gateway/console/static``.

Every answer carries the headers of `gateway.console.security`; every change is a POST with the session's
CSRF token and the console's own Origin; sessions live in memory (`gateway.console.sessions`). Admins log
in with a passkey (`gateway.console.login`), enrol one from a one-time link (`gateway.console.enrolment`), and
decide on the decisions page (`gateway.console.decisions`), whose signatures the console relays
(`gateway.console.relay`), and cancel a sign-only transaction from the transactions page
(`gateway.console.cancellations`). Each of those is an audit event on the ledger, signed with the console's own
key (`runtime.trust.console_audit_signer`). The analysts' and auditors' pages are mounted from
`gateway.console.analyst` and `gateway.console.auditor`, over one `gateway.console.data.LedgerSource`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from gateway.console import agents as agents_page
from gateway.console import analyst, auditor, cancellations
from gateway.console import decisions as decisions_page
from gateway.console import webhooks as webhooks_page
from gateway.console.data import LedgerSource
from gateway.console.enrolment import (
    EnrolTicket,
    UsedLinks,
    enrol_key,
    pin_command,
    read_enrol_token,
    registration_options,
    registration_problem,
)
from gateway.console.layout import attr, esc, page
from gateway.console.login import Counters, logged_in, passkey_admins, request_options
from gateway.console.pages import SOURCE
from gateway.console.relay import RelayRefused, relay_cosignature, relay_decision, relay_policy, relay_webhook
from gateway.console.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    HEADERS,
    SAFE_METHODS,
    change_problem,
    cookie_attributes,
    cookie_name,
    page_party,
)
from gateway.console.sessions import Session, Sessions
from gateway.console.throttle import Lockout, LoginThrottle
from runtime import metrics
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import publish, service_producer
from runtime.readiness import mark_ready
from runtime.trust import console_audit_signer
from schemas.actions import AuditAction
from schemas.emit import Emit, audit
from schemas.errors import Problem, WardenError
from schemas.passkeys import RelyingParty
from schemas.webhooks import WEBHOOK_ID_PREFIX, WebhookEventsError, WebhookUrlError
from sdk.changes import policy_change
from sdk.moves import parked_moves
from sdk.pending import change_lines, open_decisions
from sdk.policies import PolicyInvalid, unsigned_policy
from sdk.records import admins_in_force, policy_in_force
from sdk.webhooks import addition_request, removal_request

STATIC = Path(__file__).with_name("static")
ACTOR = "service:console"
_log = logging.getLogger("warden.console")
# What anyone may open: the login, enrolment (its link is its key) and the static files. Every
# other page and change needs a passkey admin logged in.
PUBLIC = ("/", "/login", "/login/options", "/logout", "/enrol", "/enrol/options")
PUBLIC_UNDER = ("/enrol/", "/static/")

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


# -- middlewares -----------------------------------------------------------------------------------


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(HEADERS)
        raise
    except KafkaError as exc:
        # The admin set, the decisions waiting and the proposals are read from the broker: a page
        # that cannot read them shows nothing rather than a guess, and says what to do.
        _log.warning("%s %s: the broker does not answer (%s)", request.method, request.path, exc)
        broker = request.app[APP_CONSOLE].settings.broker
        raise web.HTTPServiceUnavailable(
            text=f"The broker at {broker} does not answer ({type(exc).__name__}); this page reads what it shows from it. "
            "Check the stack with `warden status`, then reload.",
            content_type="text/plain",
            headers=HEADERS,
        ) from None
    except Exception:  # noqa: BLE001 - a bug answers 500 with every header (aiohttp's own 500 carries none); logged
        _log.exception("%s %s failed", request.method, request.path)
        return web.Response(
            status=500,
            text="The console failed to answer this request (a bug, written to its log); nothing was changed by it. "
            "Reload, and report it if it stays.",
            content_type="text/plain",
            headers=HEADERS,
        )
    response.headers.update(HEADERS)
    return response


def _session_middleware(console: Console) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        now = console.now()
        name = cookie_name(console.origin)
        session = console.sessions.get(request.cookies.get(name), now)
        request[CONSOLE] = console
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER)
            if sent is None and request.content_type == "application/x-www-form-urlencoded":
                sent = (await request.post()).get(CSRF_FIELD)  # type: ignore[assignment]  # a form field is str here
            problem = change_problem(request.method, request.headers.get("Origin"), sent, session, console.origin)
            if problem is not None:
                raise web.HTTPForbidden(text=str(problem), content_type="text/plain")
        fresh = session is None
        if session is None:
            session = console.sessions.new(now)
        request[SESSION] = session
        if session.admin_id is None and not _public(request.path):
            if request.method in SAFE_METHODS:
                raise web.HTTPSeeOther("/login")
            raise web.HTTPForbidden(text="log in with your passkey first", content_type="text/plain")
        # What the analysts' and auditors' pages (gateway.console.pages) draw their frame with.
        request["who"], request["csrf"] = session.admin_id, session.csrf
        response = await handler(request)
        if fresh or request.get(SESSION_CHANGED):
            current: Session | None = request.get(SESSION)
            if current is None:
                response.del_cookie(name, path="/")
            else:
                response.set_cookie(name, current.id, **cookie_attributes(console.origin))
        return response

    return middleware


def _public(path: str) -> bool:
    return path in PUBLIC or path.startswith(PUBLIC_UNDER)


# -- pages -----------------------------------------------------------------------------------------


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _admin(request: web.Request) -> str:
    """The admin logged in; a redirect to the login page when nobody is."""
    admin_id = request[SESSION].admin_id
    if admin_id is None:
        raise web.HTTPSeeOther("/login")
    return admin_id


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/decisions" if request[SESSION].admin_id else "/login")


async def login_page(request: web.Request) -> web.Response:
    session: Session = request[SESSION]
    body = (
        "<p>Log in with the passkey pinned as your admin key. No passwords: an admin without a passkey "
        "decides with <code>warden approvals</code>, and enrols one with <code>warden console enrol</code>.</p>"
        '<button id="login">Log in with my passkey</button><p class="result" id="login-result"></p>'
    )
    return _html(page("Log in", body, scripts=("console.js",), csrf=session.csrf))


async def login_options(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    admins = await admins_in_force(console.settings)
    credentials = list(passkey_admins(admins.keys).values())
    if not credentials:
        return web.json_response({"error": "no admin in force has a passkey: enrol one and have it pinned"}, status=409)
    message = request[SESSION].login_challenge(console.now())
    return web.json_response(text=request_options(console.party, message, credentials))


async def login(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    session: Session = request[SESSION]
    now, client = console.now(), request.remote or "unknown"
    held = console.throttle.held(client, now)
    if held is not None:
        return await _login_held(console, client, held, now)
    body = await _json(request)
    credential_id, assertion = str(body.get("id", "")), str(body.get("assertion", ""))
    message = session.take_login_message(now)
    who: str | Problem = Problem("no login was asked for in this session, or it is over 2 minutes old: try again")
    if message is not None:
        admins = await admins_in_force(console.settings)
        who = logged_in(admins.keys, credential_id, assertion, message, console.party, console.counters)
    if isinstance(who, Problem):
        # Recorded each time; the one that locks the address out says until when.
        until = console.throttle.failed(client, now)
        locked = {} if until is None else {"locked_out_until": until.isoformat()}
        await console.record(
            AuditAction.CONSOLE_LOGIN_REFUSED,
            "console:login",
            credential_id=credential_id[:64],
            reason=str(who),
            client=client,
            **locked,
        )
        return web.json_response({"error": str(who)}, status=403)
    console.throttle.succeeded(client)
    request[SESSION] = console.sessions.log_in(session, who, console.now())
    request[SESSION_CHANGED] = True
    await console.record(AuditAction.CONSOLE_LOGGED_IN, f"admin:{who}", admin_id=who)
    return web.json_response({"admin_id": who, "next": "/decisions"})


async def _login_held(console: Console, client: str, held: Lockout, now: datetime) -> web.Response:
    """429 for an address locked out, checked against nothing; recorded for the lockout's first."""
    wait_s = math.ceil((held.until - now).total_seconds())
    minutes = console.throttle.window.total_seconds() / 60
    said = (
        f"{console.throttle.limit} failed logins from this address within {minutes:g} minutes: "
        f"try again in {wait_s} s (at {held.until:%H:%M:%S} UTC)"
    )
    if held.first:
        await console.record(
            AuditAction.CONSOLE_LOGIN_REFUSED,
            "console:login",
            reason=f"locked out: {said}",
            client=client,
            locked_out_until=held.until.isoformat(),
        )
    return web.json_response({"error": said}, status=429, headers={"Retry-After": str(wait_s)})


async def logout(request: web.Request) -> web.StreamResponse:
    console: Console = request[CONSOLE]
    session: Session = request[SESSION]
    console.sessions.end(session.id)
    if session.admin_id is not None:
        await console.record(AuditAction.CONSOLE_LOGGED_OUT, f"admin:{session.admin_id}", admin_id=session.admin_id)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(cookie_name(console.origin), path="/")
    raise response


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="the body is not JSON", content_type="text/plain") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body is not a JSON object", content_type="text/plain")
    return body


# -- enrolment -------------------------------------------------------------------------------------


def _ticket(console: Console, token: str) -> EnrolTicket:
    if token in console.enrol_used:
        raise web.HTTPForbidden(
            text="this enrolment link was used already; ask for a new one", content_type="text/plain"
        )
    ticket = read_enrol_token(enrol_key(console.settings.home), token, console.now())
    if not isinstance(ticket, EnrolTicket):
        raise web.HTTPForbidden(text=str(ticket), content_type="text/plain")
    return ticket


async def enrol_page(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    token = request.match_info["token"]
    ticket = _ticket(console, token)
    body = (
        f"<p>Register a passkey as the admin key of <strong>{esc(ticket.admin_id)}</strong>. Registering pins "
        "nothing: the page then shows the key and the command that proposes it to the admins' quorum.</p>"
        f'<button id="enrol" data-token="{attr(token)}">Register a passkey</button>'
        '<p class="result" id="enrol-result"></p>'
        '<div id="enrolled" hidden><p>The admin key (fingerprint <code id="fingerprint"></code>):</p>'
        '<pre id="passkey"></pre><p>To pin it, run (the admin set in force, with this key for this admin, '
        "the same thresholds; signed by the key in force of the admin whose key changes):</p>"
        '<pre id="command"></pre></div>'
    )
    return _html(page("Register a passkey", body, scripts=("console.js",), csrf=request[SESSION].csrf))


async def enrol_options(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    token = str((await _json(request)).get("token", ""))
    ticket = _ticket(console, token)
    challenge = console.enrol_challenges[token] = uuid.uuid4().bytes + uuid.uuid4().bytes
    return web.json_response(text=registration_options(ticket.admin_id, console.party, challenge))


async def enrol(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    body = await _json(request)
    token = str(body.get("token", ""))
    ticket = _ticket(console, token)
    challenge = console.enrol_challenges.pop(token, None)
    if challenge is None:
        return web.json_response({"error": "ask for the registration options first"}, status=409)
    enrolled = registration_problem(json.dumps(body.get("credential")), challenge, console.party, ticket.admin_id)
    if isinstance(enrolled, Problem):
        return web.json_response({"error": str(enrolled)}, status=403)
    console.enrol_used.add(token, ticket.expires_at, console.now())
    admins = await admins_in_force(console.settings)
    await console.record(
        AuditAction.CONSOLE_PASSKEY_REGISTERED,
        f"admin:{ticket.admin_id}",
        admin_id=ticket.admin_id,
        fingerprint=enrolled.fingerprint,
    )
    return web.json_response(
        {
            "admin_id": ticket.admin_id,
            "key": enrolled.key,
            "fingerprint": enrolled.fingerprint,
            "command": pin_command(enrolled, admins.keys, admins.thresholds),
        }
    )


# -- decisions -------------------------------------------------------------------------------------


async def decisions(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    admin_id = _admin(request)
    now = console.now()
    waiting, proposals, in_force = await open_decisions(console.settings, now)
    moves = await parked_moves(console.settings, waiting, in_force.policies, now)
    body = _me(request, in_force.admins.keys, admin_id) + decisions_page.decisions_body(
        waiting, proposals, in_force, admin_id, now, moves
    )
    return _html(page("Decisions", body, who=admin_id, scripts=("console.js",), csrf=request[SESSION].csrf))


def _me(request: web.Request, keys: dict[str, str], admin_id: str) -> str:
    """What the page's script asks the passkey with: the admin's credential and the relying party.
    An admin who is no longer a passkey admin in force is logged out."""
    console: Console = request[CONSOLE]
    credential = passkey_admins(keys).get(admin_id)
    if credential is None:
        console.sessions.end(request[SESSION].id)
        raise web.HTTPSeeOther("/login")
    return f'<div id="me" data-credential="{attr(credential)}" data-rp="{attr(console.party.rp_id)}"></div>'


async def relay(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    admin_id = _admin(request)
    body = await _json(request)
    shown, assertion = str(body.get("bytes", "")), str(body.get("assertion", ""))
    proposal = body.get("proposal")
    try:
        if proposal:
            done = await relay_cosignature(console.settings, str(proposal), shown, assertion, admin_id, console.party)
            action, resource, agent = AuditAction.CONSOLE_SIGNATURE_RELAYED, f"proposal:{proposal}", None
        else:
            done = await relay_decision(console.settings, shown, assertion, admin_id, console.party)
            record = json.loads(shown)
            action, resource, agent = (
                AuditAction.CONSOLE_DECISION_RELAYED,
                f"intent:{record['intent_id']}",
                record["agent_id"],
            )
    except RelayRefused as exc:
        await console.record(AuditAction.CONSOLE_RELAY_REFUSED, f"admin:{admin_id}", admin_id=admin_id, reason=str(exc))
        return web.json_response({"error": str(exc)}, status=403)
    await console.record(action, resource, agent, admin_id=admin_id, **{k: v for k, v in done.as_dict().items() if v})
    return web.json_response(done.as_dict())


# -- agents ----------------------------------------------------------------------------------------


def _version_pair(request: web.Request) -> tuple[str, int, int] | None:
    """The two versions of one agent the page is asked to compare (``?agent=&from=&to=``)."""
    agent, old, new = (request.query.get(k, "") for k in ("agent", "from", "to"))
    if not (agent and old.isdigit() and new.isdigit()):
        return None
    return agent, int(old), int(new)


async def agents(request: web.Request) -> web.Response:
    admin_id = _admin(request)
    source = request.app[SOURCE]
    try:
        history = await source.policy_history()
    except WardenError as exc:
        history = {}
        _log.warning("the agents page cannot read the ledger's policy versions: %s", exc)
    chosen = _version_pair(request)
    names = sorted(set(history) | ({chosen[0]} if chosen else set()))
    policies = await source.policies(names) if names else {}
    body = agents_page.agents_body(policies, history, chosen)
    return _html(page("Agents", body, who=admin_id, csrf=_csrf(request)))


def _csrf(request: web.Request) -> str:
    return request[SESSION].csrf


async def agent_form(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    admin_id = _admin(request)
    agent = request.query.get("agent") or None
    current = None if agent is None else await policy_in_force(console.settings, agent)
    values = {"agent": agent or "", **agents_page.form_values(current)}
    form = agents_page.policy_form(agent if current is not None else None, values, _csrf(request))
    title = "Create an agent" if current is None else f"Change the policy of {agent}"
    return _html(page(title, form, who=admin_id, scripts=("console.js",), csrf=_csrf(request)))


async def agent_draft(request: web.Request) -> web.Response:
    """The policy the form asks for (sent by the page's script), built unsigned and kept with its
    change against the one in force: where its signing page is; or 400 saying what is wrong."""
    console: Console = request[CONSOLE]
    admin_id = _admin(request)
    sent = {k: str(v) for k, v in (await _json(request)).items() if k != CSRF_FIELD}
    try:
        form = agents_page.read_form(sent)
        current = await policy_in_force(console.settings, form.agent_id)
        if form.create and current is not None:
            raise PolicyInvalid(f"agent: {form.agent_id!r} exists (policy v{current.version}); change it on its page")
        policy = unsigned_policy(form.agent_id, current, form.public_key, form.fields, console.now(), admin_id)
    except PolicyInvalid as exc:
        return web.json_response({"error": str(exc)}, status=400)
    lines = "\n".join(change_lines(policy_change(current, policy)))
    title = f"Sign policy v{policy.version} of {form.agent_id}"
    change = f'<p>What it changes against the policy in force:</p><pre class="change">{esc(lines)}</pre>'
    draft = console.draft(admin_id, "policy", policy.signing_bytes(), title, change)
    return web.json_response({"next": f"/agents/sign/{draft}"})


Relay = Callable[[Settings, bytes, str, str, RelyingParty], Awaitable[Any]]


async def _relay_draft(request: web.Request, kind: str, relay: Relay) -> tuple[str, bytes, Any] | web.Response:
    """The passkey's signature over the ``kind`` the console built and showed, relayed by ``relay``:
    (the admin, the bytes, what ``relay`` answered); a refusal is recorded and answered with 403."""
    console: Console = request[CONSOLE]
    admin_id = _admin(request)
    body = await _json(request)
    try:
        shown = decisions_page.shown_bytes(str(body.get("bytes", "")))
        message = console.take_draft(str(body.get("draft", "")), admin_id, kind, shown)
        done = await relay(console.settings, message, str(body.get("assertion", "")), admin_id, console.party)
    except RelayRefused as exc:
        await console.record(AuditAction.CONSOLE_RELAY_REFUSED, f"admin:{admin_id}", admin_id=admin_id, reason=str(exc))
        return web.json_response({"error": str(exc)}, status=403)
    return admin_id, message, done


def _sign_page(kind: str, relay_path: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The page that shows a ``kind`` the console built (``/.../sign/{draft}``) for the admin's
    passkey to sign, relayed to ``relay_path``."""

    async def handler(request: web.Request) -> web.Response:
        console: Console = request[CONSOLE]
        admin_id = _admin(request)
        draft_id = request.match_info["draft"]
        draft = console.shown_draft(draft_id, admin_id, kind)
        if draft is None:
            raise web.HTTPNotFound(
                text=f"no {kind} waits for your signature under this id: fill the form again", content_type="text/plain"
            )
        admins = await admins_in_force(console.settings)
        fields = {"draft": draft_id, "relay": relay_path}
        block = decisions_page.signing_block(kind, f"sign this {kind}", draft.message, fields)
        body = _me(request, admins.keys, admin_id) + draft.intro + block
        return _html(page(draft.title, body, who=admin_id, scripts=("console.js",), csrf=_csrf(request)))

    return handler


async def _relayed_and_recorded(
    request: web.Request, kind: str, relay: Relay, action: AuditAction, what: Callable[[dict[str, Any]], dict[str, Any]]
) -> web.Response:
    """The ``kind`` the console built, relayed by ``relay`` and recorded as ``action`` on the
    intent's or the agent's resource (``what``: the resource and the details of its record)."""
    relayed = await _relay_draft(request, kind, relay)
    if isinstance(relayed, web.Response):
        return relayed
    admin_id, message, done = relayed
    record = orjson.loads(message)
    details = what(record)
    await request[CONSOLE].record(
        action,
        details.pop("resource"),
        record["agent_id"],
        admin_id=admin_id,
        **details,
        **{k: v for k, v in done.as_dict().items() if v},
    )
    return web.json_response(done.as_dict())


async def agent_relay(request: web.Request) -> web.Response:
    return await _relayed_and_recorded(
        request,
        "policy",
        relay_policy,
        AuditAction.CONSOLE_POLICY_RELAYED,
        lambda record: {"resource": f"policy:{record['agent_id']}", "version": record["version"]},
    )


# -- webhooks --------------------------------------------------------------------------------------


async def webhooks(request: web.Request) -> web.Response:
    admin_id = _admin(request)
    try:
        listed = webhooks_page.webhooks_table(await request.app[SOURCE].webhooks(), _csrf(request))
    except WardenError as exc:
        listed = f'<p class="flag">Cannot read the ledger: {esc(exc)}</p>'
    body = listed + webhooks_page.webhook_form(_csrf(request))
    return _html(page("Webhooks", body, who=admin_id, scripts=("console.js",), csrf=_csrf(request)))


async def webhook_draft(request: web.Request) -> web.Response:
    """The request that adds the endpoint the form names (sent by the page's script), built
    unsigned and kept: where its signing page is; or 400 saying what is wrong."""
    console: Console = request[CONSOLE]
    admin_id = _admin(request)
    sent = await _json(request)
    chosen = sent.get("events", [])
    url, events = str(sent.get("url", "")), [str(e) for e in ([chosen] if isinstance(chosen, str) else chosen)]
    try:
        webhook = addition_request(url, events, admin_id, console.now())
    except (WebhookUrlError, WebhookEventsError) as exc:
        return web.json_response(
            {"error": f"{'url' if isinstance(exc, WebhookUrlError) else 'events'}: {exc}"}, status=400
        )
    secret = (
        '<div id="secret" hidden><p>The endpoint\'s signing secret, shown only now: keep it where the receiver '
        'verifies signatures.</p><pre class="secret"></pre></div>'
    )
    draft = console.draft(admin_id, "webhook", webhook.signing_bytes(), "Sign the webhook request", secret)
    return web.json_response({"next": f"/webhooks/sign/{draft}"})


async def webhook_removal(request: web.Request) -> web.Response:
    """The request that removes the endpoint the row's form names, built unsigned and kept: where
    its signing page is; or 400 saying what is wrong."""
    console: Console = request[CONSOLE]
    admin_id = _admin(request)
    webhook_id = str((await _json(request)).get("webhook_id", ""))
    try:
        removal = removal_request(webhook_id, admin_id, console.now())
    except ValidationError:
        return web.json_response(
            {
                "error": f"webhook_id: {webhook_id[:80]!r} is not an endpoint's id (one starts {WEBHOOK_ID_PREFIX}, as listed)"
            },
            status=400,
        )
    intro = f"<p>Removing webhook <code>{esc(removal.webhook_id)}</code>: it is sent nothing more.</p>"
    draft = console.draft(admin_id, "webhook", removal.signing_bytes(), "Sign the webhook's removal", intro)
    return web.json_response({"next": f"/webhooks/sign/{draft}"})


async def webhook_relay(request: web.Request) -> web.Response:
    relayed = await _relay_draft(request, "webhook", relay_webhook)
    if isinstance(relayed, web.Response):
        return relayed
    admin_id, _, answer = relayed
    if answer.get("removed"):
        await request[CONSOLE].record(
            AuditAction.CONSOLE_WEBHOOK_RELAYED,
            f"webhook:{answer['id']}",
            admin_id=admin_id,
            webhook_id=answer["id"],
            op="remove",
        )
        return web.json_response({"what": f"webhook {answer['id']} removed", "id": answer["id"]})
    await request[CONSOLE].record(
        AuditAction.CONSOLE_WEBHOOK_RELAYED,
        f"webhook:{answer['id']}",
        admin_id=admin_id,
        webhook_id=answer["id"],
        op="add",
        url=answer["url"],
        events=answer["events"],
    )
    return web.json_response({"what": f"webhook {answer['id']} added", "id": answer["id"], "secret": answer["secret"]})


# -- cancellations -----------------------------------------------------------------------------------


async def cancellation_draft(request: web.Request) -> web.Response:
    """The denial that cancels the sign-only transaction the row's form names, built unsigned for
    the admin logged in once the signer's records say it is that agent's and still sign-only, and
    kept: where its signing page is; or 400 saying what is wrong."""
    console: Console = request[CONSOLE]
    admin_id = _admin(request)
    try:
        message, title, intro = await cancellations.build(
            console.settings, admin_id, await _json(request), console.now()
        )
    except cancellations.CancelInvalid as exc:
        return web.json_response({"error": str(exc)}, status=400)
    draft = console.draft(admin_id, cancellations.KIND, message, title, intro)
    return web.json_response({"next": f"/transactions/cancel/sign/{draft}"})


async def cancellation_relay(request: web.Request) -> web.Response:
    return await _relayed_and_recorded(
        request,
        cancellations.KIND,
        cancellations.relay_cancellation,
        AuditAction.CONSOLE_CANCELLATION_RELAYED,
        lambda record: {"resource": f"intent:{record['intent_id']}", "reason": record.get("reason", "")},
    )


# -- the application -------------------------------------------------------------------------------


def build_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[_headers, _session_middleware(console)], client_max_size=64 * 1024)
    app[APP_CONSOLE] = console
    app.router.add_get("/", index)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login/options", login_options)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/enrol/{token}", enrol_page)
    app.router.add_post("/enrol/options", enrol_options)
    app.router.add_post("/enrol", enrol)
    app.router.add_get("/decisions", decisions)
    app.router.add_post("/decisions/relay", relay)
    app.router.add_get("/agents", agents)
    app.router.add_get("/agents/edit", agent_form)
    app.router.add_post("/agents/draft", agent_draft)
    app.router.add_get("/agents/sign/{draft}", _sign_page("policy", "/agents/relay"))
    app.router.add_post("/agents/relay", agent_relay)
    app.router.add_get("/webhooks", webhooks)
    app.router.add_post("/webhooks/draft", webhook_draft)
    app.router.add_post("/webhooks/removal", webhook_removal)
    app.router.add_get("/webhooks/sign/{draft}", _sign_page("webhook", "/webhooks/relay"))
    app.router.add_post("/webhooks/relay", webhook_relay)
    app.router.add_post("/transactions/cancel", cancellation_draft)
    app.router.add_get(
        "/transactions/cancel/sign/{draft}", _sign_page(cancellations.KIND, "/transactions/cancel/relay")
    )
    app.router.add_post("/transactions/cancel/relay", cancellation_relay)
    app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
    _mount_role_pages(app, console.settings)
    return app


def _mount_role_pages(app: web.Application, settings: Settings) -> None:
    """The analysts' and auditors' pages, over one source of the ledger's reads, behind the same
    headers, login and CSRF rule."""
    source = LedgerSource.from_settings(settings)
    analyst.add_routes(app, source)
    auditor.add_routes(app, source)


async def serve(settings: Settings, listen: str, party: RelyingParty) -> None:
    """Serve the console at ``listen`` until cancelled; the ready file says it listens."""
    metrics.serve(settings, "console")
    if settings.console_origin is None:
        _log.warning(
            "WARDEN_CONSOLE_ORIGIN is not set: the streams worker and the signer believe no passkey, so a decision "
            "made here is refused; set it to %s for them (warden up does)",
            party.origins[0],
        )
    sink, start, stop = kafka_audit_sink(settings)
    await start()
    runner = web.AppRunner(build_app(Console(settings, party, sink)), access_log=None)
    try:
        await runner.setup()
        host, _, port = listen.rpartition(":")
        await web.TCPSite(runner, host.strip("[]"), int(port)).start()
        mark_ready(settings, "console")
        print(f"warden console: open {party.origins[0]} (listening on {listen})", file=sys.stderr, flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: WARDEN_CONSOLE_HTTP)")
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load()
    listen = args.listen or settings.console_http
    try:
        asyncio.run(serve(settings, listen, page_party(settings, listen)))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        _log.error("cannot serve the console at %s (%s): free the port, or set WARDEN_CONSOLE_HTTP", listen, exc)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden console", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
