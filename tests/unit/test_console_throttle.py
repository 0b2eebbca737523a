"""Failed console logins are bounded per client address (`gateway.console.throttle`): after five within
five minutes, the address's attempts are answered 429 at once, checked against nothing, the first
of them recorded and no other, until the first of the five is five minutes old; a login that
succeeds clears the count. The app runs in process (aiohttp's test server); time is an argument."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.console.security import cookie_name
from gateway.console.server import build_app
from gateway.console.state import Console
from gateway.console.throttle import LoginThrottle
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.emit import Emit
from tests.passkey_support import ORIGIN, PARTY

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_the_fifth_failure_locks_the_address_out_until_the_first_is_five_minutes_old() -> None:
    throttle = LoginThrottle()
    locks = [throttle.failed("10.0.0.1", T0 + timedelta(minutes=m)) for m in range(5)]
    assert locks == [None] * 4 + [T0 + timedelta(minutes=5)]  # until the first is five minutes old
    assert throttle.locked_until("10.0.0.1", T0 + timedelta(minutes=4)) == T0 + timedelta(minutes=5)
    assert throttle.locked_until("10.0.0.2", T0) is None  # another address is not held
    assert throttle.locked_until("10.0.0.1", T0 + timedelta(minutes=5)) is None  # the first aged out: four left
    assert throttle.failed("10.0.0.1", T0 + timedelta(minutes=5)) == T0 + timedelta(minutes=6)  # a fifth again


def test_each_lockout_has_one_first_refusal() -> None:
    throttle = LoginThrottle()
    for s in range(5):
        throttle.failed("10.0.0.1", T0 + timedelta(seconds=s))
    held = [throttle.held("10.0.0.1", T0 + timedelta(seconds=10 + s)) for s in range(4)]
    assert [(h.until, h.first) for h in held if h] == [(T0 + timedelta(minutes=5), True)] + [
        (T0 + timedelta(minutes=5), False)
    ] * 3
    # The first failure ages out; a new one locks the address out again: another lockout, recorded again.
    assert throttle.held("10.0.0.1", T0 + timedelta(minutes=5)) is None
    throttle.failed("10.0.0.1", T0 + timedelta(minutes=5))
    again = throttle.held("10.0.0.1", T0 + timedelta(minutes=5))
    assert again is not None and again.first and again.until == T0 + timedelta(minutes=5, seconds=1)


def test_failures_spread_wider_than_the_window_never_lock_and_a_success_clears_the_count() -> None:
    throttle = LoginThrottle()
    assert not any(throttle.failed("c", T0 + timedelta(minutes=2 * n)) for n in range(20))
    for n in range(4):
        throttle.failed("d", T0 + timedelta(seconds=n))
    throttle.succeeded("d")
    assert not throttle.failed("d", T0 + timedelta(seconds=5)) and throttle.locked_until("d", T0) is None
    for n in range(4):
        throttle.failed("d", T0 + timedelta(seconds=6 + n))
    assert throttle.locked_until("d", T0 + timedelta(seconds=10)) is not None  # uncleared, the count goes on


def test_the_addresses_held_are_bounded_least_recently_failed_dropped_first() -> None:
    throttle = LoginThrottle(capacity=100)
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}", T0)
    assert len(throttle) == 100
    for _ in range(4):
        throttle.failed("10.0.3.231", T0)  # the newest: kept, and locked at its fifth
    assert throttle.locked_until("10.0.3.231", T0) is not None
    # An address whose last failure is five minutes old is forgotten at the next failure, cap or not.
    throttle.failed("10.9.9.9", T0 + timedelta(minutes=5))
    assert len(throttle) == 1 and throttle.locked_until("10.9.9.9", T0 + timedelta(minutes=5)) is None


def test_a_locked_out_address_is_answered_429_at_once_and_recorded_once(tmp_path: Path) -> None:
    events: list[Emit] = []
    clock = [T0]

    async def sink(event: Emit) -> None:
        events.append(event)

    console = Console(Settings(home=tmp_path, broker="127.0.0.1:9"), PARTY, sink, now=lambda: clock[0])

    async def scenario(client: TestClient[web.Request, web.Application]) -> None:
        page = await client.get("/login")
        meta = re.search(r'<meta name="csrf" content="([^"]+)"', await page.text())
        assert meta is not None
        csrf = meta.group(1)
        headers = {"Origin": ORIGIN, "X-CSRF-Token": csrf}
        # No login was asked for in this session: each try is refused, the fifth locks the address out.
        for _ in range(5):
            refused = await client.post("/login", headers=headers, json={"id": "x", "assertion": "y"})
            assert refused.status == 403 and "no login was asked for" in (await refused.json())["error"]
        # A login is asked for now: an attempt checked would take it and read the admins from the
        # broker (none answers here: 503). A held one is answered 429 and leaves it.
        session = console.sessions.get(
            client.session.cookie_jar.filter_cookies(client.make_url("/"))[cookie_name(ORIGIN)].value, T0
        )
        assert session is not None
        session.login_challenge(T0)
        for n in range(20):
            clock[0] = T0 + timedelta(seconds=n)
            held = await client.post("/login", headers=headers, json={"id": "x", "assertion": "y"})
            assert held.status == 429 and held.headers["Retry-After"] == str(300 - n)
            assert (await held.json())["error"] == (
                f"5 failed logins from this address within 5 minutes: try again in {300 - n} s (at 12:05:00 UTC)"
            )
        assert session.take_login_message(clock[0]) is not None
        clock[0] = T0 + timedelta(minutes=5)
        again = await client.post("/login", headers=headers, json={"id": "x", "assertion": "y"})
        assert again.status == 403

    async def main() -> None:
        async with TestClient(TestServer(build_app(console))) as client:
            await scenario(client)

    asyncio.run(main())
    refusals = [orjson.loads(e.value) for e in events if AuditAction.CONSOLE_LOGIN_REFUSED.value.encode() in e.value]
    assert len(refusals) == 7  # five, the first of the twenty held (one lockout) and the one after it
    details = [r["details"] for r in refusals]
    assert [("locked_out_until" in d) for d in details] == [False] * 4 + [True, True, False]
    assert details[4]["locked_out_until"] == details[5]["locked_out_until"] == (T0 + timedelta(minutes=5)).isoformat()
    assert details[5]["reason"] == (
        "locked out: 5 failed logins from this address within 5 minutes: try again in 300 s (at 12:05:00 UTC)"
    )
    assert details[0]["client"] == details[5]["client"] == "127.0.0.1"
