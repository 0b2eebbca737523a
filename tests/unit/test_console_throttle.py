"""Failed console logins are bounded per client address (`console.throttle`): after five within
five minutes, the address's attempts are answered 429 at once, checked against nothing and not
recorded, until the first of the five is five minutes old; a login that succeeds clears the count.
The app runs in process (aiohttp's test server); time is an argument."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import orjson
from aiohttp.test_utils import TestClient, TestServer

from console.server import Console, build_app
from console.throttle import LoginThrottle
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.emit import Emit
from tests.passkey_support import ORIGIN, PARTY

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_the_fifth_failure_locks_the_address_out_until_the_first_is_five_minutes_old():
    throttle = LoginThrottle()
    locks = [throttle.failed("10.0.0.1", T0 + timedelta(seconds=s)) for s in range(5)]
    assert locks == [None, None, None, None, T0 + timedelta(minutes=5)]  # the first failure's time, 5 minutes on
    assert throttle.locked_until("10.0.0.1", T0 + timedelta(minutes=4)) == T0 + timedelta(minutes=5)
    assert throttle.locked_until("10.0.0.2", T0) is None  # another address is not held
    assert throttle.locked_until("10.0.0.1", T0 + timedelta(minutes=5)) is None  # the first aged out: four left
    # The first aged out, four left: a fifth again locks, until the second is 5 minutes old.
    assert throttle.failed("10.0.0.1", T0 + timedelta(minutes=5)) == T0 + timedelta(minutes=5, seconds=1)


def test_failures_spread_wider_than_the_window_never_lock_and_a_success_clears_the_count():
    throttle = LoginThrottle()
    assert all(throttle.failed("c", T0 + timedelta(minutes=2 * n)) is None for n in range(20))
    for n in range(4):
        throttle.failed("d", T0 + timedelta(seconds=n))
    throttle.succeeded("d")
    assert throttle.failed("d", T0 + timedelta(seconds=5)) is None and throttle.locked_until("d", T0) is None


def test_the_addresses_held_are_bounded_least_recently_failed_dropped_first():
    throttle = LoginThrottle(capacity=100)
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}", T0)
    assert len(throttle) == 100
    for _ in range(4):
        throttle.failed("10.0.3.231", T0)  # the newest: kept, and locked at its fifth
    assert throttle.locked_until("10.0.3.231", T0) is not None


def test_a_locked_out_address_is_answered_429_at_once_and_recorded_once(tmp_path):
    events: list[Emit] = []
    clock = [T0]

    async def sink(event: Emit) -> None:
        events.append(event)

    console = Console(Settings(home=tmp_path, broker="127.0.0.1:9"), PARTY, sink, now=lambda: clock[0])

    async def scenario(client):
        page = await client.get("/login")
        csrf = re.search(r'<meta name="csrf" content="([^"]+)"', await page.text()).group(1)
        headers = {"Origin": ORIGIN, "X-CSRF-Token": csrf}
        # No login was asked for in this session: each try, 10 s apart, is refused; the fifth locks
        # the address out until the first is 5 minutes old.
        for n in range(5):
            clock[0] = T0 + timedelta(seconds=10 * n)
            refused = await client.post("/login", headers=headers, json={"id": "x", "assertion": "y"})
            assert refused.status == 403 and "no login was asked for" in (await refused.json())["error"]
        for _ in range(20):
            held = await client.post("/login", headers=headers, json={"id": "x", "assertion": "y"})
            assert held.status == 429 and held.headers["Retry-After"] == "260"
            assert (await held.json())["error"].startswith("5 failed logins from this address within 0:05:00")
        clock[0] = T0 + timedelta(minutes=5, seconds=40)
        again = await client.post("/login", headers=headers, json={"id": "x", "assertion": "y"})
        assert again.status == 403

    async def main():
        async with TestClient(TestServer(build_app(console))) as client:
            await scenario(client)

    asyncio.run(main())
    refusals = [orjson.loads(e.value) for e in events if AuditAction.CONSOLE_LOGIN_REFUSED.value.encode() in e.value]
    assert len(refusals) == 6  # five, then the one after the lock: none for the twenty held
    assert [("locked_out_until" in r["details"]) for r in refusals] == [False] * 4 + [True, False]
    assert refusals[4]["details"]["locked_out_until"] == (T0 + timedelta(minutes=5)).isoformat()
    assert refusals[0]["details"]["client"] == "127.0.0.1"
