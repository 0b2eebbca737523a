"""Audit webhooks without a broker: the schedule (backoff, jitter, order per agent, giving up),
the signature as the `standardwebhooks` package verifies it, the rules on URLs and events, the
ledger's check of an admin's request, the scan of a real chDB ledger into deliveries, and an event
given up on against a receiver in this process."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from infra.cli import main
from infra.stack.local import free_port
from ledger import webhook_messages as messages
from ledger import webhook_schedule as schedule
from ledger import webhook_store as stored
from ledger.schema import WEBHOOK_CURSORS, WEBHOOK_DELIVERIES, WEBHOOK_ENDPOINTS
from ledger.store import ChdbStore, sql_string
from ledger.webhook_admin import Registrar, WebhookRefused, serve
from ledger.webhook_schedule import Delivery, Retries
from ledger.webhooks import Deliverer, WebhookOptions
from runtime.admins import Admins
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.audit import AuditEvent
from schemas.auth import public_key_hex
from schemas.webhooks import WebhookEventsError, WebhookRequest, WebhookUrlError, checked_events, checked_url
from sdk.webhooks import WebhookError, removal_request, send, signed_request
from tests.ledger_support import chdb_ledger, intent_digest_of, pipeline_events
from tests.passkey_support import PARTY, SoftPasskey

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RETRIES = Retries(first=timedelta(seconds=5), cap=timedelta(hours=1), give_up_after=timedelta(days=1))


def _delivery(seq: int, agent: str = "agent-1", **changes: Any) -> Delivery:
    base = Delivery("wh_a", 0, seq, f"event-{seq}", agent, owed_since=NOW, next_at=NOW)
    return dataclasses.replace(base, **changes)


def test_the_wait_doubles_from_the_first_with_jitter_and_stops_at_the_cap() -> None:
    assert [RETRIES.delay(n, jitter=0.999999) for n in (1, 2, 3)] == [
        timedelta(seconds=5) * (0.5 + 0.999999 / 2),
        timedelta(seconds=10) * (0.5 + 0.999999 / 2),
        timedelta(seconds=20) * (0.5 + 0.999999 / 2),
    ]
    assert RETRIES.delay(1, jitter=0.0) == timedelta(seconds=2.5)
    assert RETRIES.delay(30, jitter=0.5) == timedelta(hours=1) * 0.75
    assert RETRIES.delay(10_000, jitter=0.0) == timedelta(minutes=30)
    # A Retry-After is waited for, but never past the cap.
    assert RETRIES.delay(1, 0.0, retry_after=timedelta(seconds=120)) == timedelta(seconds=120)
    assert RETRIES.delay(1, 0.0, retry_after=timedelta(days=9)) == timedelta(hours=1)
    assert schedule.retry_after("120") == timedelta(seconds=120)
    assert schedule.retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert schedule.retry_after(None) is None


def test_one_agents_later_event_waits_for_its_earlier_one_and_other_agents_do_not() -> None:
    first = _delivery(1, next_at=NOW + timedelta(minutes=5), attempts=2)  # backing off
    later = _delivery(4)  # due, but behind agent-1's first
    other = _delivery(2, agent="agent-2")
    elsewhere = dataclasses.replace(_delivery(3), webhook_id="wh_b")  # another endpoint: its own lane
    pending = [later, first, other, elsewhere]

    def due(pending: list[Delivery], now: datetime) -> list[Delivery]:
        return schedule.to_send(pending, now, busy=(), per_endpoint=4)[0]

    assert due(pending, NOW) == [other, elsewhere]
    assert due(pending, NOW + timedelta(minutes=5)) == [other, elsewhere, first]  # the longest due first
    # Once the first is acknowledged, the later one is the head.
    assert due([schedule.delivered(first), later], NOW) == [later]
    # And once it is given up on, too: a dead event does not hold an agent's lane for ever.
    given_up = dataclasses.replace(first, state="given_up")
    assert due([given_up, later], NOW) == [later]


def test_a_failed_attempt_backs_off_until_a_day_passed_since_the_event_was_owed_then_gives_up() -> None:
    delivery = _delivery(1)
    after = schedule.failed(delivery, NOW, "HTTP 503", RETRIES, jitter=0.0)
    assert (after.state, after.attempts, after.next_at, after.last_error) == (
        "pending",
        1,
        NOW + timedelta(seconds=2.5),
        "HTTP 503",
    )
    assert after.version > delivery.version
    almost = schedule.failed(after, NOW + timedelta(days=1, seconds=-1), "HTTP 503", RETRIES, 0.0)
    assert almost.state == "pending"
    gone = schedule.failed(almost, NOW + timedelta(days=1), "refused", RETRIES, 0.0)
    assert (gone.state, gone.attempts, gone.last_error) == ("given_up", 3, "refused")
    assert gone.version > almost.version
    assert schedule.delivered(after).version > after.version


def _row(**changes: Any) -> dict[str, Any]:
    row = {
        "chain": 1,
        "seq": 41,
        "event_id": "e0c3a1",
        "actor": "service:streams",
        "action": AuditAction.INTENT_PARKED.value,
        "resource": "intent:i-1",
        "ts": NOW,
        "intent_id": "i-1",
        "agent_id": "agent-1",
        "details": orjson.dumps({"intent_digest": "ab" * 32, "code": "X"}).decode(),
        "integrity_hash": "cd" * 32,
        "appended_at": NOW + timedelta(seconds=1),
    }
    return row | changes


def test_a_delivery_is_signed_as_standard_webhooks_verifies_it_and_nothing_else_verifies() -> None:
    secret = messages.secret(b"k" * 32, "wh_a")
    assert secret != messages.secret(b"k" * 32, "wh_b") and len(secret) == 32
    whsec = messages.whsec(secret)
    assert whsec.startswith("whsec_")
    body = messages.body(_row())
    now = datetime.now(UTC)
    headers = messages.headers(secret, "e0c3a1", body, now)
    assert headers["webhook-id"] == "e0c3a1" and headers["webhook-timestamp"] == str(int(now.timestamp()))
    payload = Webhook(whsec).verify(body, headers)
    assert payload["type"] == AuditAction.INTENT_PARKED
    data = payload["data"]
    assert (data["event_id"], data["agent_id"], data["intent_id"], data["intent_digest"]) == (
        "e0c3a1",
        "agent-1",
        "i-1",
        "ab" * 32,
    )
    assert data["ledger"] == {
        "chain": 1,
        "seq": 41,
        "integrity_hash": "cd" * 32,
        "appended_at": "2026-11-28T12:00:01.000000Z",
    }
    assert data["details"] == {"intent_digest": "ab" * 32, "code": "X"}
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec).verify(body.replace(b"agent-1", b"agent-2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(messages.whsec(messages.secret(b"k" * 32, "wh_b"))).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(whsec).verify(body, {**headers, "webhook-id": "another-event"})
    stale = messages.headers(secret, "e0c3a1", body, now - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(whsec).verify(body, stale)


def test_an_event_id_that_is_not_plain_is_sent_as_its_digest_so_the_signed_content_stays_unambiguous() -> None:
    assert messages.message_id("e0c3a1") == "e0c3a1"
    for odd in ("a.b", "a\nb", "", "x" * 129):
        sent = messages.message_id(odd)
        assert sent.startswith("evt_") and sent == messages.message_id(odd) and "." not in sent


def test_large_details_are_left_out_with_their_digest_and_an_event_without_an_agent_says_so() -> None:
    big = orjson.dumps({"payload_b64": "A" * (messages.MAX_DETAILS_BYTES + 1)}).decode()
    data = orjson.loads(messages.body(_row(details=big, agent_id="", intent_id="")))["data"]
    assert "details" not in data and len(data["details_sha256"]) == 64
    assert data["agent_id"] is None and data["intent_id"] is None and data["intent_digest"] is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.com/hook", "plain http is allowed only to a loopback host"),
        ("http://10.0.0.5/hook", "plain http is allowed only to a loopback host"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://token@example.com/hook", "credentials"),
        ("ftp://example.com/hook", "the scheme is 'ftp'"),
        ("example.com/hook", "the scheme is 'missing'"),
        ("https:///hook", "names no host"),
        ("https://example.com:99999/hook", "the port"),
        ("https://example.com/hook#x", "fragment"),
        ("https://example.com/ hook", "whitespace"),
    ],
)
def test_an_endpoint_url_is_https_or_loopback_http_with_no_credentials(url: str, problem: str) -> None:
    with pytest.raises(WebhookUrlError, match=problem):
        checked_url(url)


def test_urls_an_endpoint_may_have_and_events_it_may_choose() -> None:
    for url in (
        "https://hooks.example.com/warden?k=1",
        "http://127.0.0.1:8080/h",
        "http://localhost/h",
        "http://[::1]/h",
    ):
        assert checked_url(url) == url
    assert checked_events([AuditAction.TX_FINAL.value]) == (AuditAction.TX_FINAL,)
    with pytest.raises(WebhookEventsError, match=r"'tx.finalised' is not an audit action; .*tx\.final, "):
        checked_events([AuditAction.TX_FINAL.value, "tx.finalised"])
    with pytest.raises(WebhookEventsError, match="at least one"):
        checked_events([])
    with pytest.raises(WebhookEventsError, match="twice"):
        checked_events([AuditAction.TX_FINAL.value] * 2)


@pytest.fixture
def ledger_store(tmp_path: Path) -> Iterator[ChdbStore]:
    with chdb_ledger(tmp_path / "home", pipeline_events(60, agents=3)) as store:
        yield store


class _CaughtUp(asyncio.Event):
    def is_set(self) -> bool:
        return True


def _registrar(store: ChdbStore, admin: Ed25519PrivateKey) -> Registrar:
    admins = Admins.with_threshold({"alice": public_key_hex(admin)}, 1)
    return Registrar(admins, _CaughtUp(), store, b"k" * 32, [])  # an Event's is_set alone


def _add(admin: Ed25519PrivateKey, key_id: str = "alice", issued_at: datetime = NOW) -> WebhookRequest:
    request = WebhookRequest(
        op="add",
        url="https://hooks.example.com/warden?token=t0k3n",
        events=(AuditAction.INTENT_REJECTED, AuditAction.TX_SIGNED),
        issued_at=issued_at,
    )
    return signed_request(request, admin, key_id)


def test_only_a_pinned_admins_fresh_request_adds_once_and_the_store_holds_no_secret(ledger_store: ChdbStore) -> None:
    alice, mallory = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    registrar = _registrar(ledger_store, alice)
    for request, status, why in [
        (_add(mallory, "mallory"), 403, "'mallory' is not a pinned admin"),
        (_add(mallory, "alice"), 403, "alice's signature does not verify"),
        (_add(alice, issued_at=NOW - timedelta(minutes=6)), 403, "more than 0:05:00 from the ledger's clock"),
        (_add(alice).model_copy(update={"url": "https://evil.example.com/"}), 403, "signature does not verify"),
    ]:
        with pytest.raises(WebhookRefused, match=why) as refused:
            registrar.register(request, NOW)
        assert refused.value.status == status
    assert not registrar.notices and not stored.endpoints(ledger_store, removed=True)

    request = _add(alice)
    answer = registrar.register(request, NOW)
    assert answer["id"] == request.added_id() and answer["id"].startswith("wh_")
    assert answer["secret"] == messages.whsec(messages.secret(b"k" * 32, answer["id"]))
    with pytest.raises(WebhookRefused, match="added by this very request before") as replayed:
        registrar.register(request, NOW + timedelta(seconds=1))
    assert replayed.value.status == 409
    (endpoint,) = stored.endpoints(ledger_store)
    # It is owed what is appended from now on: each chain's scan starts at its head.
    assert endpoint.start == stored.chain_heads(ledger_store) and endpoint.start
    (added,) = registrar.notices
    assert (added.action, added.actor, added.resource) == (
        AuditAction.WEBHOOK_ADDED,
        "admin:alice",
        f"webhook:{answer['id']}",
    )
    assert added.details["url"] == "https://hooks.example.com/warden" and added.details["request_signature"]
    held = b"".join(
        ledger_store.raw(f"SELECT * FROM {table} FORMAT JSONEachRow", "JSONEachRow")
        for table in (WEBHOOK_ENDPOINTS, WEBHOOK_CURSORS, WEBHOOK_DELIVERIES)
    )
    secret_bytes = messages.secret(b"k" * 32, answer["id"])
    assert answer["secret"].encode() not in held and secret_bytes.hex().encode() not in held
    assert answer["secret"].removeprefix("whsec_").encode() not in held

    # As `warden webhooks remove` builds it (the console's page builds the same request).
    remove = signed_request(removal_request(answer["id"], "alice", NOW), alice, "alice")
    assert registrar.register(remove, NOW) == {"id": answer["id"], "removed": True}
    assert not stored.endpoints(ledger_store) and registrar.notices[-1].action == AuditAction.WEBHOOK_REMOVED
    with pytest.raises(WebhookRefused, match="was removed before, at .* by alice") as again:
        registrar.register(remove, NOW)
    assert again.value.status == 409
    unknown = signed_request(removal_request("wh_0123456789abcdef01234567", "alice", NOW), alice, "alice")
    with pytest.raises(WebhookRefused, match="no endpoint") as never:
        registrar.register(unknown, NOW)
    assert never.value.status == 404


def test_a_scan_owes_each_chosen_event_once_in_ledger_order_and_moves_its_cursor(ledger_store: ChdbStore) -> None:
    endpoint = stored.WebhookEndpoint(
        "wh_scan", "https://h.example.com/", (AuditAction.TX_SIGNED,), NOW, "alice", start={0: 0, 1: 3}
    )
    heads = stored.chain_heads(ledger_store)
    rows, reached = stored.owed_rows(ledger_store, endpoint, stored.cursors(ledger_store, endpoint), heads, 4)
    assert len(rows) == 4 and [(r["chain"], r["seq"]) for r in rows] == sorted((r["chain"], r["seq"]) for r in rows)
    assert {r["action"] for r in rows} == {AuditAction.TX_SIGNED}
    assert reached[rows[-1]["chain"]] == rows[-1]["seq"] + 1
    every, at_end = stored.owed_rows(ledger_store, endpoint, endpoint.start, heads, 1000)
    assert at_end == heads
    signed = {
        (r["chain"], r["seq"])
        for r in ledger_store.arrow("SELECT chain, seq, action FROM audit_log").to_pylist()
        if r["action"] == AuditAction.TX_SIGNED and r["seq"] >= endpoint.start[r["chain"]]
    }
    assert {(r["chain"], r["seq"]) for r in every} == signed
    assert all(
        r["details"] and orjson.loads(r["details"])["intent_digest"] == intent_digest_of(r["intent_id"]) for r in every
    )
    stored.write_cursors(ledger_store, endpoint.webhook_id, reached)
    assert stored.cursors(ledger_store, endpoint) == {**endpoint.start, **reached}
    rest, _ = stored.owed_rows(ledger_store, endpoint, stored.cursors(ledger_store, endpoint), heads, 1000)
    assert [(r["chain"], r["seq"]) for r in rows + rest] == sorted((r["chain"], r["seq"]) for r in every)


def test_an_event_given_up_is_stored_listed_and_on_the_ledger_and_its_agents_next_events_go_on(tmp_path: Path) -> None:
    """A receiver that answers 500 to one event for ever: after ``give_up_after`` that event is
    given up (stored, listed, said as ``webhook.gave_up``), the agent's later events are delivered,
    and a restarted deliverer says the given-up event again under the same id and re-sends nothing."""
    events = pipeline_events(200, agents=2)
    with chdb_ledger(tmp_path / "home", events) as store:
        _given_up(store, events)


def _given_up(store: ChdbStore, events: list[AuditEvent]) -> None:
    rejected = [e for e in events if e.action == AuditAction.INTENT_REJECTED]
    doomed = rejected[0]
    port = free_port()
    endpoint = stored.WebhookEndpoint(
        "wh_t", f"http://127.0.0.1:{port}/h", (AuditAction.INTENT_REJECTED,), NOW, "alice", start={}
    )
    stored.write_endpoint(store, endpoint)
    # Given up 1.5 s after it is owed, retried every 20-50 ms: several attempts even on a busy machine.
    quick = Retries(timedelta(milliseconds=20), timedelta(milliseconds=50), give_up_after=timedelta(milliseconds=1500))
    options = WebhookOptions(retries=quick)
    taken: list[str] = []

    async def take(request: web.Request) -> web.Response:
        if request.headers["webhook-id"] == doomed.event_id:
            return web.Response(status=500)
        taken.append(request.headers["webhook-id"])
        return web.Response(status=204)

    async def scenario() -> tuple[list[AuditEvent], list[AuditEvent]]:
        app = web.Application()
        app.router.add_post("/h", take)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        notices: list[AuditEvent] = []
        deliverer = Deliverer(store, b"k" * 32, notices, options)
        try:
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 60
                # Until every answer is written too: a lane is busy until its outcome is.
                while (len(taken) < len(rejected) - 1 or deliverer.lanes) and time.monotonic() < deadline:
                    await deliverer.turn(session)
                    await asyncio.sleep(0.01)
                await deliverer.drain()
                again: list[AuditEvent] = []
                restarted = Deliverer(store, b"k" * 32, again, options)
                await restarted.turn(session)
                await restarted.drain()
        finally:
            await runner.cleanup()
        return notices, again

    notices, again = asyncio.run(scenario())
    for agent in ("agent-0", "agent-1"):
        assert [t for t in taken if t in {e.event_id for e in rejected if e.agent_id == agent}] == [
            e.event_id for e in rejected if e.agent_id == agent and e is not doomed
        ]
    (said,) = notices
    assert (said.action, said.resource, said.details["event_id"]) == (
        AuditAction.WEBHOOK_GAVE_UP,
        "webhook:wh_t",
        doomed.event_id,
    )
    assert said.details["last_error"] == "HTTP 500" and said.details["attempts"] >= 2
    assert [n.event_id for n in again] == [said.event_id] and len(taken) == len(rejected) - 1
    # Once the ledger holds it, a start says it no more.
    details = sql_string(orjson.dumps(said.details).decode())
    store.execute(
        "INSERT INTO audit_log (chain, seq, event_id, actor, action, resource, ts, details) VALUES "
        f"(9, 0, {sql_string(said.event_id)}, {sql_string(said.actor)}, {sql_string(said.action)}, "
        f"{sql_string(said.resource)}, now64(6), {details})"
    )

    async def restarted() -> list[AuditEvent]:
        said_again: list[AuditEvent] = []
        async with aiohttp.ClientSession() as session:
            restarted = Deliverer(store, b"k" * 32, said_again, options)
            await restarted.turn(session)
            await restarted.drain()
        return said_again

    assert asyncio.run(restarted()) == []
    (listed,) = stored.summaries(store)
    assert (listed["delivered"], listed["pending"], listed["given_up"], listed["given_up_events"]) == (
        len(rejected) - 1,
        0,
        1,
        [doomed.event_id],
    )


def test_the_command_says_what_is_wrong_before_it_reads_a_key_and_when_no_ledger_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WARDEN_HOME", str(tmp_path))
    monkeypatch.setenv("WARDEN_LEDGER_HTTP", f"127.0.0.1:{free_port()}")  # nothing listens
    final = AuditAction.TX_FINAL.value
    assert main(["webhooks", "add", "http://hooks.example.com/h", "--events", final]) == 1
    assert "warden webhooks: plain http is allowed only to a loopback host" in capsys.readouterr().err
    assert main(["webhooks", "add", "https://hooks.example.com/h", "--events", f"{final},tx.finalised"]) == 1
    said = capsys.readouterr().err
    assert "'tx.finalised' is not an audit action; the events are the ledger's audit actions: " in said
    assert AuditAction.INTENT_PARKED.value in said
    assert not (tmp_path / "admin").exists()
    assert main(["webhooks", "add", "https://hooks.example.com/h", "--events", final]) == 1
    assert "no ledger answers at http://" in capsys.readouterr().err


def test_over_http_a_request_not_an_admins_is_refused_with_why_and_a_malformed_one_field_by_field(
    ledger_store: ChdbStore,
) -> None:
    alice = Ed25519PrivateKey.generate()
    registrar = _registrar(ledger_store, alice)
    port = free_port()
    settings = dataclasses.replace(Settings(), ledger_http=f"127.0.0.1:{port}")

    async def scenario() -> list[Any]:
        runner = await serve(registrar.routes, "127.0.0.1", port)
        try:
            now = datetime.now(UTC)
            said: list[Any] = []
            for request in (_add(Ed25519PrivateKey.generate(), "mallory", now), _add(alice, issued_at=now)):
                try:
                    said.append(await asyncio.to_thread(send, settings, request))
                except WebhookError as exc:
                    said.append(str(exc))
            async with aiohttp.ClientSession() as session:
                junk = b'{"op": "add", "url": "http://example.com/", "events": [], "issued_at": "2026-11-28T12:00:00Z"}'
                async with session.post(f"http://127.0.0.1:{port}/webhooks", data=junk) as answer:
                    said.append((answer.status, await answer.json()))
            return said
        finally:
            await runner.cleanup()

    refused, added, junk = asyncio.run(scenario())
    assert (
        refused
        == "the ledger refused the request (HTTP 403): not an admin's request: 'mallory' is not a pinned admin; sign it with a pinned admin's key"
    )
    assert added["id"].startswith("wh_") and added["secret"].startswith("whsec_")
    assert junk[0] == 400 and "url: plain http is allowed only to a loopback host" in junk[1]["error"]


def test_concurrent_copies_of_one_signed_request_are_carried_out_once_and_the_others_answered_409(
    ledger_store: ChdbStore,
) -> None:
    """Copies of one admin's signed request sent at once over HTTP, as a retrying client or a
    replaying attacker sends them: one adds (or removes) the endpoint, every other is a 409, and
    none meets a store that another request is using (a 500)."""
    alice = Ed25519PrivateKey.generate()
    registrar = _registrar(ledger_store, alice)
    port = free_port()
    now = datetime.now(UTC)
    added = _add(alice, issued_at=now)
    removal = signed_request(removal_request(added.added_id(), "alice", now), alice, "alice")

    async def copies(request: WebhookRequest, session: aiohttp.ClientSession) -> list[tuple[int, str]]:
        async def one() -> tuple[int, str]:
            async with session.post(f"http://127.0.0.1:{port}/webhooks", data=request.to_bytes()) as answer:
                return answer.status, await answer.text()

        return sorted(await asyncio.gather(*(one() for _ in range(8))), key=lambda said: said[0])

    async def scenario() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        runner = await serve(registrar.routes, "127.0.0.1", port)
        try:
            async with aiohttp.ClientSession() as session:
                return await copies(added, session), await copies(removal, session)
        finally:
            await runner.cleanup()

    adds, removes = asyncio.run(scenario())
    assert [status for status, _ in adds] == [200] + [409] * 7, adds
    assert orjson.loads(adds[0][1])["id"] == added.added_id()
    assert all("added by this very request before" in orjson.loads(said)["error"] for _, said in adds[1:])
    assert [status for status, _ in removes] == [200] + [409] * 7, removes
    assert all("was removed before" in orjson.loads(said)["error"] for _, said in removes[1:])
    assert [n.action for n in registrar.notices] == [AuditAction.WEBHOOK_ADDED, AuditAction.WEBHOOK_REMOVED]


def test_a_passkey_admins_request_is_checked_for_the_consoles_relying_party_over_its_exact_bytes(
    ledger_store: ChdbStore,
) -> None:
    passkey = SoftPasskey()
    admins = Admins.with_threshold({"alice": passkey.pinned()}, 1, party=PARTY)
    registrar = Registrar(admins, _CaughtUp(), ledger_store, b"k" * 32, [])  # an Event's is_set alone
    request = WebhookRequest(
        op="add",
        url="https://hooks.example.com/",
        events=(AuditAction.INTENT_REJECTED,),
        issued_at=NOW,
        admin_key_id="alice",
    )
    forgeries: list[tuple[dict[str, Any], str]] = [
        ({"origin": "https://evil.example.com"}, "origin"),
        ({"challenge": hashlib.sha256(b"other bytes").digest()}, "challenge"),
    ]
    for made, why in forgeries:
        forged = request.model_copy(update={"signature": passkey.sign(request.signing_bytes(), **made)})
        with pytest.raises(WebhookRefused, match=why):
            registrar.register(forged, NOW)
    signed = request.model_copy(update={"signature": passkey.sign(request.signing_bytes())})
    assert len(signed.signature) > 128  # an assertion: longer than an Ed25519 signature's hex
    assert registrar.register(WebhookRequest.model_validate_json(signed.to_bytes()), NOW)["id"] == request.added_id()
    # The console's removal, as its page builds it and the passkey signs it: taken as the CLI's is.
    removal = removal_request(request.added_id(), "alice", NOW)
    signed = removal.model_copy(update={"signature": passkey.sign(removal.signing_bytes())})
    assert registrar.register(WebhookRequest.model_validate_json(signed.to_bytes()), NOW) == {
        "id": request.added_id(),
        "removed": True,
    }
    assert not stored.endpoints(ledger_store) and registrar.notices[-1].action == AuditAction.WEBHOOK_REMOVED
