"""The console's web server (`warden console`, and `warden up`'s ``console`` process): aiohttp,
pages drawn here, a little script under ``gateway/console/static``.

Every answer carries the headers of `gateway.console.security`; every change is a POST with the session's
CSRF token and the console's own Origin; sessions live in memory (`gateway.console.sessions`). Admins log
in with a passkey (`gateway.console.login`), enrol one from a one-time link (`gateway.console.enrolment`), and
decide on the decisions page (`gateway.console.decisions`), whose signatures the console relays
(`gateway.console.relay`), and cancel a sign-only transaction from the transactions page
(`gateway.console.cancellations`); what an admin's passkey signs beyond a decision (a policy, a webhook
request, a cancellation) is built, shown and relayed by `gateway.console.drafts`, over the state in
`gateway.console.state`. Each of those is an audit event on the ledger, signed with the console's own
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
from datetime import datetime
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiokafka.errors import KafkaError

from gateway.console import analyst, auditor, cancellations
from gateway.console import decisions as decisions_page
from gateway.console.data import LedgerSource
from gateway.console.drafts import (
    agent_draft,
    agent_form,
    agent_relay,
    agents,
    cancellation_draft,
    cancellation_relay,
    sign_page,
    webhook_draft,
    webhook_relay,
    webhook_removal,
    webhooks,
)
from gateway.console.enrolment import (
    EnrolTicket,
    enrol_key,
    pin_command,
    read_enrol_token,
    registration_options,
    registration_problem,
)
from gateway.console.layout import attr, esc, page
from gateway.console.login import logged_in, passkey_admins, request_options
from gateway.console.relay import RelayRefused, relay_cosignature, relay_decision
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
from gateway.console.sessions import Session
from gateway.console.state import (
    APP_CONSOLE,
    CONSOLE,
    SESSION,
    SESSION_CHANGED,
    Console,
    admin_of,
    html,
    json_body,
    kafka_audit_sink,
    me_block,
)
from gateway.console.throttle import Lockout
from runtime import metrics
from runtime.config import Settings, load
from runtime.readiness import mark_ready
from schemas.actions import AuditAction
from schemas.errors import Problem
from schemas.passkeys import RelyingParty
from sdk.moves import parked_moves
from sdk.pending import open_decisions
from sdk.records import admins_in_force

STATIC = Path(__file__).with_name("static")
_log = logging.getLogger("warden.console")
# What anyone may open: the login, enrolment (its link is its key) and the static files. Every
# other page and change needs a passkey admin logged in.
PUBLIC = ("/", "/login", "/login/options", "/logout", "/enrol", "/enrol/options")
PUBLIC_UNDER = ("/enrol/", "/static/")

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


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/decisions" if request[SESSION].admin_id else "/login")


async def login_page(request: web.Request) -> web.Response:
    session: Session = request[SESSION]
    body = (
        "<p>Log in with the passkey pinned as your admin key. No passwords: an admin without a passkey "
        "decides with <code>warden approvals</code>, and enrols one with <code>warden console enrol</code>.</p>"
        '<button id="login">Log in with my passkey</button><p class="result" id="login-result"></p>'
    )
    return html(page("Log in", body, scripts=("console.js",), csrf=session.csrf))


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
    body = await json_body(request)
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
    return html(page("Register a passkey", body, scripts=("console.js",), csrf=request[SESSION].csrf))


async def enrol_options(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    token = str((await json_body(request)).get("token", ""))
    ticket = _ticket(console, token)
    challenge = console.enrol_challenges[token] = uuid.uuid4().bytes + uuid.uuid4().bytes
    return web.json_response(text=registration_options(ticket.admin_id, console.party, challenge))


async def enrol(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    body = await json_body(request)
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
    admin_id = admin_of(request)
    now = console.now()
    waiting, proposals, in_force = await open_decisions(console.settings, now)
    moves = await parked_moves(console.settings, waiting, in_force.policies, now)
    body = me_block(request, in_force.admins.keys, admin_id) + decisions_page.decisions_body(
        waiting, proposals, in_force, admin_id, now, moves
    )
    return html(page("Decisions", body, who=admin_id, scripts=("console.js",), csrf=request[SESSION].csrf))


async def relay(request: web.Request) -> web.Response:
    console: Console = request[CONSOLE]
    admin_id = admin_of(request)
    body = await json_body(request)
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
    app.router.add_get("/agents/sign/{draft}", sign_page("policy", "/agents/relay"))
    app.router.add_post("/agents/relay", agent_relay)
    app.router.add_get("/webhooks", webhooks)
    app.router.add_post("/webhooks/draft", webhook_draft)
    app.router.add_post("/webhooks/removal", webhook_removal)
    app.router.add_get("/webhooks/sign/{draft}", sign_page("webhook", "/webhooks/relay"))
    app.router.add_post("/webhooks/relay", webhook_relay)
    app.router.add_post("/transactions/cancel", cancellation_draft)
    app.router.add_get("/transactions/cancel/sign/{draft}", sign_page(cancellations.KIND, "/transactions/cancel/relay"))
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
