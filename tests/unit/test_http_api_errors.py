"""The HTTP API's errors, in process (no broker): every error is the API's JSON with its code, those
of aiohttp's HTTP parser too (sent as raw bytes over a socket: an oversized URL or header, a body
framed two ways, bytes that are not HTTP); 405 names what the path allows; a body cut short or
never sent is the client's error, not the pipeline's; a broadcast the node refused is 422
BROADCAST_REFUSED, never 201; failed token attempts are limited by address and by the key presented,
on the clock the service is given, and never refuse a valid key."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import http_parser, web, web_protocol
from aiohttp.test_utils import TestClient, TestServer

from gateway.http_api import api_keys
from gateway.http_api.app import ApiRunner, build_app
from gateway.http_api.bodies import MAX_HEADER_BYTES, MAX_URL_BYTES
from gateway.http_api.limits import FailedAttempts, RateLimit
from gateway.http_api.service import ApiService
from runtime import metrics
from runtime.config import Settings
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import SignedTransaction
from sdk.client import load_or_create_agent_key
from tests.http_support import RECIPIENT, Clock

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
T = TypeVar("T")
Parsed = tuple[int, dict[str, str], dict[str, Any]]  # status, headers, JSON body


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    load_or_create_agent_key(tmp_path, "a1")
    return Settings(home=tmp_path)


def _exchange(port: int, data: bytes, close_write: bool = False, wait_s: float = 5.0) -> bytes:
    """What the server at ``port`` answers ``data`` sent as it is, read until it closes (or is quiet
    for ``wait_s``)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(wait_s)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def _parsed(answer: bytes) -> Parsed:
    """(status, headers with lower-case names, JSON body) of one raw HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", len(body)))
    return int(lines[0].split()[1]), headers, json.loads(body[:length])


def serve_raw(service: ApiService, scenario: Callable[[int], T]) -> T:
    """``scenario(port)`` (blocking socket work, in a thread) against the API served as `warden api`
    serves it (`ApiRunner`), on a port of the loopback."""

    async def go() -> T:
        runner = ApiRunner(build_app(service))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            return await asyncio.get_running_loop().run_in_executor(None, scenario, port)
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_the_parsers_refusals_are_json_errors_with_their_code(settings: Settings) -> None:
    requests = {
        "url": b"GET /v1/agents/" + b"a" * MAX_URL_BYTES + b"/transactions HTTP/1.1\r\nHost: x\r\n\r\n",
        "header": b"GET /v1/chains HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * (MAX_HEADER_BYTES + 10) + b"\r\n\r\n",
        "framing": (
            b"POST /v1/auth/agent-token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        "not http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n",
    }

    def scenario(port: int) -> dict[str, Parsed]:
        return {case: _parsed(_exchange(port, data)) for case, data in requests.items()}

    answers = serve_raw(ApiService(settings, now=Clock(T0)), scenario)
    expected = {
        "url": (414, Code.URL_TOO_LONG),
        "header": (431, Code.HEADERS_TOO_LARGE),
        "framing": (400, Code.HTTP_MALFORMED),
        "not http": (400, Code.HTTP_MALFORMED),
    }
    for case, (status, code) in expected.items():
        got, headers, body = answers[case]
        assert (got, body["code"]) == (status, code), (case, body)
        assert headers["content-type"].startswith("application/json") and body["detail"] and body["error"]


@pytest.mark.parametrize("parser", ["C", "pure Python"])
def test_a_url_of_4096_bytes_is_served_and_one_byte_more_is_414(
    settings: Settings, parser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit docs/http-api.md states, counted on the URL as sent (path and query), whichever of
    aiohttp's two HTTP parsers reads the request (the C one counts the URL, the pure-Python one the
    whole request line)."""
    if parser == "pure Python":
        monkeypatch.setattr(web_protocol, "HttpRequestParser", http_parser.HttpRequestParserPy)
    elif http_parser.HttpRequestParserC is http_parser.HttpRequestParserPy:
        raise AssertionError("aiohttp's C parser is not installed: the API's limits are set for it")

    def url(size: int) -> bytes:
        return b"/v1/chains?pad=" + b"a" * (size - len(b"/v1/chains?pad="))

    def scenario(port: int) -> dict[int, Parsed]:
        sizes = (MAX_URL_BYTES, MAX_URL_BYTES + 1, MAX_URL_BYTES + 40, 2 * MAX_URL_BYTES)
        return {
            size: _parsed(_exchange(port, b"GET " + url(size) + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            for size in sizes
        }

    answers = serve_raw(ApiService(settings, now=Clock(T0)), scenario)
    status, _, body = answers[MAX_URL_BYTES]
    assert status == 200 and body["chains"], body
    for size in (MAX_URL_BYTES + 1, MAX_URL_BYTES + 40, 2 * MAX_URL_BYTES):
        status, headers, body = answers[size]
        assert (status, body["code"]) == (414, Code.URL_TOO_LONG), (size, body)
        assert headers["content-type"].startswith("application/json") and "4096 bytes" in body["detail"]


def test_an_unknown_path_is_404_and_a_method_the_path_lacks_is_405_naming_the_methods_it_takes(
    settings: Settings,
) -> None:
    def scenario(port: int) -> tuple[Parsed, Parsed]:
        return (
            _parsed(_exchange(port, b"GET /v1/nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
            _parsed(_exchange(port, b"PUT /v1/chains HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
        )

    (missing, _, not_found), (wrong, headers, not_allowed) = serve_raw(ApiService(settings, now=Clock(T0)), scenario)
    assert (missing, not_found["code"]) == (404, Code.PATH_NOT_FOUND)
    assert (wrong, not_allowed["code"]) == (405, Code.METHOD_NOT_ALLOWED)
    assert set(headers["allow"].split(",")) == {"GET", "HEAD"} and "GET" in not_allowed["detail"]


def _count(route: str, status: int) -> float:
    return float(metrics.API_REQUESTS.labels(route, str(status))._value.get())


def test_a_body_cut_short_is_the_clients_400_and_a_body_never_sent_is_408(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    route = "POST /v1/auth/agent-token"
    before = {status: _count(route, status) for status in (400, 408, 503)}
    head = b"POST /v1/auth/agent-token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"

    def scenario(port: int) -> Parsed:
        # The client sends half its body and closes its side: nothing can answer it, but the server
        # must count it as the client's error.
        _exchange(port, head + b'{"agent_id": "a1", ', close_write=True, wait_s=2)
        stalled = _parsed(_exchange(port, head + b'{"agent_id": ', wait_s=5))
        return stalled

    caplog.set_level(logging.INFO, logger="warden.api")
    stalled, headers, body = serve_raw(ApiService(settings, now=Clock(T0), body_timeout_s=0.5), scenario)
    assert (stalled, body["code"]) == (408, Code.BODY_TIMEOUT) and headers.get("connection") == "close"
    assert _count(route, 400) == before[400] + 1 and _count(route, 408) == before[408] + 1
    assert _count(route, 503) == before[503]
    assert "cut short" in caplog.text and "did not answer" not in caplog.text


def _refused_by_the_node(intent: TransactionIntent) -> SignedTransaction:
    """The signer's outcome for an intent whose broadcast the node refused (`signer.tracking.send`)."""
    return SignedTransaction(
        intent_id=intent.intent_id,
        agent_id=intent.agent_id,
        chain=intent.chain,
        chain_id=31337,
        signed_tx="0x02f8",
        tx_hash="0x" + "ab" * 32,
        **{"from": RECIPIENT},
        to=intent.to,
        nonce=0,
        value_wei=10**17,
        tx_type=2,
        status="failed",
        final=True,
        error="node refused the transaction: insufficient funds for gas * price + value",
        tee="none",
        signed_at=T0,
        max_spend_wei=10**17,
        intent_digest=intent.digest(),
    )


def test_a_broadcast_the_node_refused_is_422_broadcast_refused_and_replayed_so(settings: Settings) -> None:
    key, _ = api_keys.issue_api_key(settings.home, "a1", T0)

    async def submit(settings: Settings, intent: TransactionIntent, *args: Any) -> tuple[SignedTransaction, int]:
        return _refused_by_the_node(intent), 0

    async def go() -> list[tuple[int, dict[str, Any]]]:
        service = ApiService(settings, now=Clock(T0), timeout_s=1, submit=submit)
        async with TestClient(TestServer(build_app(service))) as client:
            issued = await client.post("/v1/auth/agent-token", json={"agent_id": "a1", "api_key": key})
            headers = {"Authorization": f"Bearer {(await issued.json())['access_token']}", "Idempotency-Key": "k1"}
            body = {"chain": "anvil", "to": RECIPIENT, "value": "0.1"}
            answers: list[tuple[int, dict[str, Any]]] = []
            for _ in range(2):
                answer = await client.post("/v1/agents/a1/transactions", json=body, headers=headers)
                answers.append((answer.status, await answer.json()))
            return answers

    (status, body), again = asyncio.run(go())
    assert (status, body["code"], body["status"]) == (422, Code.BROADCAST_REFUSED, "failed"), body
    assert "insufficient funds" in body["detail"] and body["id"].startswith("i-")
    assert again == (status, body)  # the idempotent replay is the same refusal


TokenAnswer = tuple[int, str | None, dict[str, Any]]  # status, Retry-After, JSON body


def _token_exchange(
    settings: Settings, clock: Clock, attempts: FailedAttempts, scenario: Callable[[Any], Awaitable[T]]
) -> T:
    """``scenario(ask)`` against the API on aiohttp's test server, where ``await ask(agent, key)``
    is the token exchange's answer (`TokenAnswer`)."""

    async def go() -> T:
        service = ApiService(settings, now=clock, token_attempts=attempts)
        async with TestClient(TestServer(build_app(service))) as client:

            async def ask(agent: str, api_key: str) -> TokenAnswer:
                answer = await client.post("/v1/auth/agent-token", json={"agent_id": agent, "api_key": api_key})
                return answer.status, answer.headers.get("Retry-After"), await answer.json()

            return await scenario(ask)

    return asyncio.run(go())


def test_failed_token_attempts_are_limited_by_address_and_by_the_key_presented(settings: Settings) -> None:
    load_or_create_agent_key(settings.home, "a2")
    key, _ = api_keys.issue_api_key(settings.home, "a1", T0)
    other, _ = api_keys.issue_api_key(settings.home, "a2", T0)
    wrong = key[:-4] + "AAAA"
    clock = Clock(T0)
    attempts = FailedAttempts(by_source=RateLimit(per_s=0.1, burst=5), by_key=RateLimit(per_s=0.1, burst=3))

    async def scenario(ask: Callable[[str, str], Awaitable[TokenAnswer]]) -> dict[str, Any]:
        seen: dict[str, Any] = {"one wrong key again and again": [await ask("a1", wrong) for _ in range(4)]}
        seen["the right key"] = await ask("a1", key)
        # Other wrong keys: the address's budget (5) is spent by the sixth failure in all.
        seen["other wrong keys"] = [await ask("a2", other[:-4] + f"{n:04d}") for n in range(2)]
        seen["the other agent's right key"] = await ask("a2", other)
        clock.at = T0 + timedelta(seconds=11)  # one attempt back for the address and the key
        seen["the wrong key later"] = await ask("a1", wrong)
        return seen

    seen = _token_exchange(settings, clock, attempts, scenario)
    assert [status for status, _, _ in seen["one wrong key again and again"]] == [401, 401, 401, 429]
    status, retry, body = seen["one wrong key again and again"][3]
    assert body["code"] == Code.TOO_MANY_FAILED_ATTEMPTS and 1 <= int(retry) <= 10, body
    # Checked before anything is counted: a valid key is never the limit's to refuse.
    assert seen["the right key"][0] == 200 and seen["the right key"][2]["access_token"]
    assert [status for status, _, _ in seen["other wrong keys"]] == [401, 429]
    assert seen["the other agent's right key"][0] == 200
    assert seen["the wrong key later"][0] == 401


def test_a_stranger_naming_the_agent_never_refuses_its_right_key(settings: Settings) -> None:
    """The attack: a stranger who knows only the agent's id sends a wrong key every 0.25 s while
    the agent trades its right key 20 times, at the API's own limits. Every one of the agent's is
    answered with a token; the stranger is slowed, with Retry-After."""
    key, _ = api_keys.issue_api_key(settings.home, "a1", T0)
    clock = Clock(T0)

    async def scenario(ask: Callable[[str, str], Awaitable[TokenAnswer]]) -> tuple[list[int], list[int]]:
        stranger, agent = [], []
        for _ in range(20):
            for _every_quarter_second in range(2):
                clock.at += timedelta(seconds=0.25)
                stranger.append((await ask("a1", "wak_0123456789ab.not-the-key"))[0])
            agent.append((await ask("a1", key))[0])
        return stranger, agent

    stranger, agent = _token_exchange(settings, clock, FailedAttempts(), scenario)
    assert agent == [200] * 20
    assert set(stranger) == {401, 429} and stranger[-1] == 429, stranger


def test_a_rate_limit_forgets_refilled_buckets_past_its_size() -> None:
    limit = RateLimit(per_s=1, burst=2, max_keys=3)
    for n in range(3):
        limit.take(f"k{n}", 0.0)
    limit.take("k-new", 10.0)  # the others refilled by now: forgotten, as a full bucket is the default
    assert set(limit.buckets) == {"k-new"}
    assert limit.wait("k0", 10.0) == 0.0
