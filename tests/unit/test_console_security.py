"""The console as a security product's console: its headers on every answer, CSRF (token and
Origin) on every change, sessions that end (time as an argument), every shown value escaped,
passkey logins checked against the admin set, and enrolment links that cannot be forged or reused.
The app runs in process (aiohttp's test server): no broker, no browser."""

from __future__ import annotations

import asyncio
import re
import stat
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.client_reqrep import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from gateway.console.decisions import decisions_body
from gateway.console.enrolment import (
    Enrolled,
    EnrolTicket,
    UsedLinks,
    enrol_key,
    enrol_token,
    pin_command,
    read_enrol_token,
)
from gateway.console.layout import attr, esc, plain
from gateway.console.login import Counters, logged_in
from gateway.console.security import CSP, change_problem, cookie_attributes, cookie_name
from gateway.console.server import build_app
from gateway.console.sessions import IDLE, LIFETIME, Sessions
from gateway.console.state import Console
from runtime.admins import Admins
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.admins import Action
from schemas.emit import Emit
from schemas.errors import Problem
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentParked
from schemas.passkeys import assertion_problem, b64url
from sdk.changes import InForce
from tests.passkey_support import ORIGIN, PARTY, SoftPasskey

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ConsoleClient = TestClient[web.Request, web.Application]


def test_a_session_ends_when_idle_too_long_or_too_old_and_a_login_gets_a_new_id() -> None:
    sessions = Sessions()
    anonymous = sessions.new(T0)
    assert sessions.get(anonymous.id, T0 + IDLE) is anonymous  # just within: its idle time restarts
    assert sessions.get(anonymous.id, T0 + 2 * IDLE + timedelta(seconds=1)) is None  # idle past 15 min
    assert sessions.get(anonymous.id, T0) is None  # and gone for good

    planted = sessions.new(T0)
    admin = sessions.log_in(planted, "alice", T0)
    assert admin.id != planted.id and admin.csrf != planted.csrf and admin.admin_id == "alice"
    assert sessions.get(planted.id, T0) is None  # the id someone planted before the login is worthless
    now = T0
    while now < T0 + LIFETIME - IDLE:  # kept busy, it still ends 8 h after it began
        now += IDLE - timedelta(seconds=1)
        assert sessions.get(admin.id, now) is admin
    assert sessions.get(admin.id, T0 + LIFETIME + timedelta(seconds=1)) is None


def test_a_login_challenge_is_answered_once_and_only_while_fresh() -> None:
    session = Sessions().new(T0)
    session.login_challenge(T0)
    assert session.take_login_message(T0 + timedelta(seconds=10)) is not None
    assert session.take_login_message(T0 + timedelta(seconds=11)) is None  # once
    session.login_challenge(T0)
    assert session.take_login_message(T0 + timedelta(minutes=3)) is None  # stale


def test_the_session_store_is_bounded() -> None:
    sessions = Sessions(limit=3)
    admin = sessions.log_in(sessions.new(T0), "alice", T0)
    for n in range(5):
        sessions.new(T0 + timedelta(seconds=n + 1))
    assert len(sessions) == 3 and sessions.get(admin.id, T0 + timedelta(seconds=9)) is admin  # the anonymous went


def test_a_change_needs_post_the_consoles_origin_a_session_and_its_token() -> None:
    session = Sessions().new(T0)
    assert change_problem("POST", ORIGIN, session.csrf, session, ORIGIN) is None
    refused = [
        change_problem("PUT", ORIGIN, session.csrf, session, ORIGIN),
        change_problem("POST", "https://evil.example", session.csrf, session, ORIGIN),
        change_problem("POST", None, session.csrf, session, ORIGIN),
        change_problem("POST", ORIGIN, session.csrf, None, ORIGIN),
        change_problem("POST", ORIGIN, "guessed", session, ORIGIN),
        change_problem("POST", ORIGIN, None, session, ORIGIN),
    ]
    assert all(isinstance(p, Problem) for p in refused)


def _console(tmp_path: Path, events: list[Emit]) -> Console:
    async def sink(event: Emit) -> None:
        events.append(event)

    return Console(Settings(home=tmp_path), PARTY, sink, now=lambda: T0)


def _run_app(console: Console, scenario: Callable[[ConsoleClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(build_app(console))) as client:
            await scenario(client)

    asyncio.run(main())


def _assert_headers(response: ClientResponse) -> None:
    assert response.headers["Content-Security-Policy"] == CSP
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP and "unsafe" not in CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_every_answer_carries_the_headers_and_a_page_has_no_inline_script_or_style(tmp_path: Path) -> None:
    async def scenario(client: ConsoleClient) -> None:
        page = await client.get("/login")
        _assert_headers(page)
        html = await page.text()
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # every script is a file
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html)
        cookie = page.headers["Set-Cookie"]
        assert cookie.startswith(cookie_name(ORIGIN)) and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # http://localhost; over https it is Secure and __Host- prefixed
        assert cookie_attributes("https://console.example.com")["secure"] is True
        assert cookie_name("https://console.example.com") == "__Host-warden_session"
        for path in ("/static/console.js", "/decisions", "/nowhere", "/enrol/forged.token"):
            _assert_headers(await client.get(path, allow_redirects=False))
        _assert_headers(await client.post("/logout", allow_redirects=False))

    _run_app(_console(tmp_path, []), scenario)


def test_a_change_without_the_token_or_from_another_origin_is_refused_and_with_both_goes_through(
    tmp_path: Path,
) -> None:
    events: list[Emit] = []
    console = _console(tmp_path, events)
    admin = console.sessions.log_in(console.sessions.new(T0), "alice", T0)

    async def scenario(client: ConsoleClient) -> None:
        client.session.cookie_jar.update_cookies({cookie_name(ORIGIN): admin.id})
        tries = [
            ({"Origin": ORIGIN}, {}),  # no token
            ({"Origin": ORIGIN}, {"csrf": "guessed"}),
            ({"Origin": "http://localhost:1"}, {"csrf": admin.csrf}),  # another origin
            ({}, {"csrf": admin.csrf}),  # no Origin
        ]
        for headers, form in tries:
            refused = await client.post("/logout", headers=headers, data=form, allow_redirects=False)
            assert refused.status == 403, await refused.text()
        assert console.sessions.get(admin.id, T0) is admin and events == []
        done = await client.post(
            "/logout", headers={"Origin": ORIGIN}, data={"csrf": admin.csrf}, allow_redirects=False
        )
        assert done.status == 303 and done.headers["Location"] == "/login"
        assert console.sessions.get(admin.id, T0) is None

    _run_app(console, scenario)
    (event,) = events
    assert AuditAction.CONSOLE_LOGGED_OUT.value.encode() in event.value and b"service:console" in event.value


def _decisions_with(hostile: str, intent_id: str, to: str) -> str:
    """The decisions page with one parked intent whose ids, recipient and reason someone chose
    (built past validation, as a forged record would be)."""
    intent = TransactionIntent.model_construct(  # type: ignore[call-arg]  # partial on purpose; pydantic's plugin types it as __init__
        intent_id=intent_id, intent_type="transaction", chain="anvil", to=to, value="1"
    )
    parked = IntentParked.model_construct(
        intent_id=intent_id,
        agent_id=intent_id,
        intent_digest="0" * 64,
        reason=hostile,
        intent=intent,
        verdicts=(),
        parked_at=T0,
        expires_at=T0 + timedelta(hours=1),
    )
    return decisions_body([parked], [], InForce(Admins({}, {})), "alice", T0)


def test_every_value_a_page_shows_is_escaped() -> None:
    hostile = '<script>alert("x")</script>'
    html = _decisions_with(hostile, hostile, hostile)
    assert "<script" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


def test_characters_that_draw_nothing_are_shown_as_what_they_are() -> None:
    """A bidi override, a zero-width space, a zero byte or a no-break space in text someone else
    wrote is drawn as a marked box naming it (as text where no markup is drawn); an attribute a
    form sends back keeps it; and a page drawing a parked intent's reason shows it."""
    hostile = "pay\u202egnp.exe\u200b\x00\u00a0<b>"
    shown = esc(hostile)
    assert re.findall(r'<span class="cc" data-cp="([0-9A-F]+)"', shown) == ["202E", "200B", "0", "A0"]
    assert ">U+202E</span>" in shown and "&lt;b&gt;" in shown and "\u202e" not in shown
    assert plain(hostile) == "pay[U+202E]gnp.exe[U+200B][U+0000][U+00A0]&lt;b&gt;"
    assert attr(hostile) == "pay\u202egnp.exe\u200b\x00\u00a0&lt;b&gt;"
    assert esc("a b\nc\td") == "a b\nc\td"  # the space, a line break and a tab are drawn
    html = _decisions_with(hostile, "i-1", "0x" + "11" * 20)
    assert 'data-cp="202E"' in html and "\u202e" not in html


def test_a_login_is_the_pinned_passkeys_assertion_over_the_challenge_for_this_origin_once() -> None:
    passkey, other = SoftPasskey(), SoftPasskey()
    keys = {"alice": passkey.pinned(), "bob": "0x" + "11" * 32}
    credential, counters, message = b64url(passkey.credential_id), Counters(), b"login bytes"
    assert logged_in(keys, credential, passkey.sign(message), message, PARTY, counters) == "alice"
    replayed = passkey.sign(message, count=passkey.counter)  # the counter does not move on
    refusals = [
        logged_in(keys, credential, replayed, message, PARTY, counters),
        logged_in(keys, credential, passkey.sign(b"other bytes"), message, PARTY, counters),
        logged_in(keys, credential, passkey.sign(message, origin="https://evil.example"), message, PARTY, counters),
        logged_in(keys, credential, passkey.sign(message, flags=0x01), message, PARTY, counters),  # not verified
        logged_in(keys, b64url(other.credential_id), other.sign(message), message, PARTY, counters),  # not pinned
        logged_in(keys, credential, other.sign(message), message, PARTY, counters),  # another device's
    ]
    assert all(isinstance(r, Problem) for r in refusals), refusals


def test_a_login_made_in_another_sites_frame_or_whose_counter_falls_back_to_0_is_refused() -> None:
    """An assertion made in a frame on another site's page (``crossOrigin: true``) is refused
    (py_webauthn does not look), at login as by the worker and the signer (`assertion_problem`);
    so is a login whose counter says 0 after a passkey counted: a clone of a device that counts."""
    passkey = SoftPasskey()
    keys, credential, message = {"alice": passkey.pinned()}, b64url(passkey.credential_id), b"login bytes"
    framed = passkey.sign(message, framed_by="https://evil.example")
    refused = logged_in(keys, credential, framed, message, PARTY, Counters())
    assert isinstance(refused, Problem) and "crossOrigin: true" in str(refused), refused
    assert isinstance(assertion_problem(passkey.pinned(), framed, message, PARTY), Problem)

    counters = Counters()
    assert logged_in(keys, credential, passkey.sign(message, count=0), message, PARTY, counters) == "alice"
    assert (
        logged_in(keys, credential, passkey.sign(message, count=0), message, PARTY, counters) == "alice"
    )  # keeps none
    assert logged_in(keys, credential, passkey.sign(message, count=5), message, PARTY, counters) == "alice"
    clone = logged_in(keys, credential, passkey.sign(message, count=0), message, PARTY, counters)
    assert isinstance(clone, Problem) and "clone" in str(clone), clone
    assert logged_in(keys, credential, passkey.sign(message, count=6), message, PARTY, counters) == "alice"


def test_a_500_carries_every_header(tmp_path: Path) -> None:
    """A request the console fails on (here: its home is a file, so the enrolment key cannot be
    made) is answered 500 with the same headers as every other answer, its reason in the log."""
    home = tmp_path / "home"
    home.write_text("not a directory")

    async def scenario(client: ConsoleClient) -> None:
        answer = await client.get("/enrol/any.token")
        assert answer.status == 500, await answer.text()
        _assert_headers(answer)
        assert "a bug" in await answer.text() and "Traceback" not in await answer.text()

    _run_app(_console(home, []), scenario)


def test_an_enrolment_link_used_stays_used_after_a_restart(tmp_path: Path) -> None:
    """A link taken by a console is refused by the next console on the same home (a restart),
    until it expires; the home keeps the link's digest, not the link."""
    token = enrol_token(enrol_key(tmp_path), "alice", T0)
    before = _console(tmp_path, [])
    ticket = read_enrol_token(enrol_key(tmp_path), token, T0)
    assert isinstance(ticket, EnrolTicket)
    before.enrol_used.add(token, ticket.expires_at, T0)  # what a registration that verifies does
    kept = (tmp_path / "console" / "enrol.used").read_text()
    assert token not in kept and stat.S_IMODE((tmp_path / "console" / "enrol.used").stat().st_mode) == 0o600

    async def scenario(client: ConsoleClient) -> None:
        answer = await client.get(f"/enrol/{token}")
        assert answer.status == 403 and "used already" in await answer.text()
        assert (await client.get(f"/enrol/{enrol_token(enrol_key(tmp_path), 'bob', T0)}")).status == 200

    _run_app(_console(tmp_path, []), scenario)  # another console: the restarted one
    later = UsedLinks(tmp_path)
    later.add("another", ticket.expires_at + 600, T0 + timedelta(minutes=11))  # the first link has expired
    assert token not in later and "another" in later


def test_an_enrolment_link_is_the_consoles_own_and_short_lived(tmp_path: Path) -> None:
    key = b"k" * 32
    token = enrol_token(key, "alice", T0)
    ticket = read_enrol_token(key, token, T0 + timedelta(minutes=9))
    assert isinstance(ticket, EnrolTicket) and ticket.admin_id == "alice"
    assert isinstance(read_enrol_token(key, token, T0 + timedelta(minutes=11)), Problem)
    assert isinstance(read_enrol_token(b"x" * 32, token, T0), Problem)
    encoded, _, mac = token.partition(".")
    forged = f"{b64url(b'mallory.9999999999')}.{mac}"
    assert isinstance(read_enrol_token(key, forged, T0), Problem)


def test_the_pin_command_proposes_the_set_in_force_with_the_passkey_in_the_admins_place() -> None:
    enrolled = Enrolled("alice", SoftPasskey().pinned())
    command = pin_command(enrolled, {"alice": "0x" + "aa" * 32, "bob": "0x" + "bb" * 32}, {"policy": 1, "admins": 2})
    assert command.startswith("WARDEN_ADMIN_ID=alice warden admins propose --admins alice=passkey:")
    assert f"alice={enrolled.key}" in command and "bob=0x" in command and command.endswith("--quorum policy=1,admins=2")
    new_admin = pin_command(Enrolled("carol", enrolled.key), {"bob": "0x" + "bb" * 32}, {"policy": 1})
    assert new_admin.startswith("warden admins propose --admins ")  # any admin in force proposes a new one


def test_the_pin_commands_docs_console_shows_are_the_ones_the_enrolment_page_shows() -> None:
    """docs/console.md shows the command the enrolment page shows, for a new admin and for one whose
    key changes (its keys elided as the page's are not): the same words, the same quoting."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text()
    shown = re.findall(r"^  ((?:WARDEN_ADMIN_ID=\S+ )?warden admins propose .*)$", docs, re.M)
    thresholds: dict[Action, int] = {"policy": 1, "approval": 1, "keys": 1, "chains": 1, "admins": 2}
    new_admin = pin_command(Enrolled("alice", "passkey:…"), {"local-admin": "0x…"}, thresholds)
    changed_key = pin_command(Enrolled("alice", "passkey:…"), {"local-admin": "0x…", "alice": "0x…"}, thresholds)
    assert shown == [new_admin, changed_key], shown


def test_every_page_but_the_login_and_enrolment_needs_an_admin_logged_in(tmp_path: Path) -> None:
    console = _console(tmp_path, [])
    anonymous = console.sessions.new(T0)

    async def scenario(client: ConsoleClient) -> None:
        client.session.cookie_jar.update_cookies({cookie_name(ORIGIN): anonymous.id})
        for path in ("/decisions", "/transactions", "/ledger", "/anything"):
            answer = await client.get(path, allow_redirects=False)
            assert answer.status == 303 and answer.headers["Location"] == "/login", path
        relayed = await client.post(
            "/decisions/relay", headers={"Origin": ORIGIN, "X-CSRF-Token": anonymous.csrf}, json={}
        )
        assert relayed.status == 403 and "log in" in await relayed.text()
        assert (await client.get("/login")).status == 200

    _run_app(console, scenario)
