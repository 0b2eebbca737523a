"""The HTTP API's credentials and input checks, in process (aiohttp's test server, no broker): an
API key is kept only as a hash and trades for a token; a token expired, revoked, forged or for
another agent is refused before anything is signed; malformed bodies are 4xx naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import jwt
import orjson
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.http_api import api_keys
from gateway.http_api.app import build_app
from gateway.http_api.bodies import MAX_BODY_BYTES
from gateway.http_api.limits import RateLimit
from gateway.http_api.service import ApiService
from runtime.config import Settings
from schemas.codes import Code
from sdk.client import load_or_create_agent_key
from tests.http_support import BAD_BODIES, BAD_SIGN_BODIES, RECIPIENT, Clock

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ApiClient = TestClient[web.Request, web.Application]
T = TypeVar("T")


def run(
    settings: Settings, clock: Clock, scenario: Callable[[ApiClient], Awaitable[T]], rate: RateLimit | None = None
) -> tuple[T, list[Any]]:
    """What ``scenario`` returned, and the intents that reached the pipeline."""

    async def go() -> tuple[T, list[Any]]:
        submitted: list[Any] = []

        async def submit(
            *args: Any,
        ) -> tuple[None, int]:  # the pipeline is not here: a request that gets this far is recorded, unanswered
            submitted.append(args[1])
            return None, 0

        service = ApiService(settings, now=clock, timeout_s=1, submit=submit)
        if rate is not None:
            service.rate = rate
        async with TestClient(TestServer(build_app(service))) as client:
            return await scenario(client), submitted

    return asyncio.run(go())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    load_or_create_agent_key(tmp_path, "a1")
    load_or_create_agent_key(tmp_path, "a2")
    return Settings(home=tmp_path)


async def token(client: ApiClient, agent: str, key: str) -> tuple[int, dict[str, Any]]:
    answer = await client.post("/v1/auth/agent-token", json={"agent_id": agent, "api_key": key})
    body: dict[str, Any] = await answer.json()
    return answer.status, body


def bearer(value: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {value}"}


def test_an_api_key_is_kept_only_as_a_hash_and_trades_for_a_token_bound_to_its_agent(settings: Settings) -> None:
    key, record = api_keys.issue_api_key(settings.home, "a1", T0)
    stored = api_keys.keys_file(settings.home, "a1").read_text()
    assert key.split(".", 1)[1] not in stored and record.sha256 in stored
    assert oct(api_keys.keys_file(settings.home, "a1").stat().st_mode & 0o777) == "0o600"

    async def scenario(client: ApiClient) -> tuple[int, dict[str, Any], int, dict[str, Any], int, int, Any]:
        ok, body = await token(client, "a1", key)
        wrong_agent, refused = await token(client, "a2", key)
        mine = await client.get("/v1/agents/a1/transactions/x", headers=bearer(body["access_token"]))
        theirs = await client.post(
            "/v1/agents/a2/transactions",
            json={"chain": "anvil", "to": RECIPIENT, "value": "0.1"},
            headers=bearer(body["access_token"]),
        )
        return ok, body, wrong_agent, refused, mine.status, theirs.status, await theirs.json()

    (ok, body, wrong_agent, refused, mine, theirs, why), submitted = run(settings, Clock(T0), scenario)
    assert ok == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    assert wrong_agent == 401 and "a2" in refused["detail"]
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["sub"] == "a1"
    assert mine != 403  # its own agent's path goes through
    assert theirs == 403 and "'a1'" in why["detail"] and submitted == []


def test_expired_revoked_and_forged_tokens_are_refused_before_anything_is_submitted(settings: Settings) -> None:
    key, record = api_keys.issue_api_key(settings.home, "a1", T0, expires_at=T0 + timedelta(hours=1))
    clock = Clock(T0)
    body = {"chain": "anvil", "to": RECIPIENT, "value": "0.1"}

    async def scenario(client: ApiClient) -> dict[str, int]:
        _, issued = await token(client, "a1", key)
        access = issued["access_token"]
        statuses = {}
        statuses["good"] = (await client.post("/v1/agents/a1/transactions", json=body, headers=bearer(access))).status
        forged = jwt.encode({"sub": "a1", "key": record.key_id, "aud": "warden-api", "iat": 0, "exp": 2**31}, b"x" * 32)
        statuses["forged"] = (await client.post("/v1/agents/a1/transactions", json=body, headers=bearer(forged))).status
        statuses["none"] = (await client.post("/v1/agents/a1/transactions", json=body)).status
        clock.at = T0 + timedelta(minutes=16)
        statuses["expired"] = (
            await client.post("/v1/agents/a1/transactions", json=body, headers=bearer(access))
        ).status
        clock.at = T0 + timedelta(minutes=5)
        api_keys.revoke_api_key(settings.home, "a1", record.key_id, clock.at)
        statuses["revoked"] = (
            await client.post("/v1/agents/a1/transactions", json=body, headers=bearer(access))
        ).status
        statuses["token_from_revoked"] = (await token(client, "a1", key))[0]
        return statuses

    statuses, submitted = run(settings, clock, scenario)
    assert statuses == {
        "good": 202,  # submitted; no pipeline here, so no outcome yet
        "forged": 401,
        "none": 401,
        "expired": 401,
        "revoked": 401,
        "token_from_revoked": 401,
    }
    assert len(submitted) == 1


def test_a_key_past_its_expiry_gets_no_token(settings: Settings) -> None:
    key, _ = api_keys.issue_api_key(settings.home, "a1", T0, expires_at=T0 + timedelta(minutes=1))

    async def scenario(client: ApiClient) -> tuple[int, dict[str, Any]]:
        return await token(client, "a1", key)

    (status, body), _ = run(settings, Clock(T0 + timedelta(minutes=2)), scenario)
    assert status == 401 and "expired" in body["detail"]


# Each bad body with the path it is sent to: the transactions endpoint's, and the sign endpoint's.
BAD_REQUESTS = {
    **{case: ("transactions", doc, field) for case, (doc, field) in BAD_BODIES.items()},
    **{f"sign: {case}": ("sign", doc, field) for case, (doc, field) in BAD_SIGN_BODIES.items()},
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_bad_body_is_400_naming_the_field_and_nothing_is_signed(settings: Settings, case: str) -> None:
    """Named as the body names it: on the sign endpoint, without the `intent_type` pydantic puts before it."""
    key, _ = api_keys.issue_api_key(settings.home, "a1", T0)
    path, doc, field = BAD_REQUESTS[case]

    async def scenario(client: ApiClient) -> tuple[int, Any]:
        _, issued = await token(client, "a1", key)
        answer = await client.post(f"/v1/agents/a1/{path}", json=doc, headers=bearer(issued["access_token"]))
        return answer.status, await answer.json()

    (status, body), submitted = run(settings, Clock(T0), scenario)
    assert status == 400, body
    assert field in [f["field"] for f in body["fields"]] and f"{field}: " in body["detail"], body
    assert submitted == []


def test_malformed_json_an_oversized_body_and_a_non_object_are_4xx(settings: Settings) -> None:
    key, _ = api_keys.issue_api_key(settings.home, "a1", T0)

    async def scenario(client: ApiClient) -> list[tuple[int, str]]:
        _, issued = await token(client, "a1", key)
        headers = {**bearer(issued["access_token"]), "Content-Type": "application/json"}

        def post(data: bytes) -> Awaitable[ClientResponse]:
            return client.post("/v1/agents/a1/transactions", data=data, headers=headers)

        return [
            (r.status, (await r.json())["error"])
            for r in [
                await post(b"{not json"),
                await post(b"[1, 2]"),
                await post(
                    orjson.dumps(
                        {"chain": "anvil", "to": RECIPIENT, "value": "1", "data": "0x" + "00" * MAX_BODY_BYTES}
                    )
                ),
                await client.get("/v1/nowhere"),
            ]
        ]

    answers, submitted = run(settings, Clock(T0), scenario)
    assert answers == [(400, "invalid_json"), (400, "invalid_request"), (413, "body_too_large"), (404, "not_found")]
    assert submitted == []


def test_an_agent_over_its_rate_is_answered_429_with_retry_after(settings: Settings) -> None:
    key, _ = api_keys.issue_api_key(settings.home, "a1", T0)

    async def scenario(client: ApiClient) -> list[tuple[int, str | None]]:
        _, issued = await token(client, "a1", key)
        answers = [
            await client.get("/v1/agents/a1/transactions/x", headers=bearer(issued["access_token"])) for _ in range(4)
        ]
        return [(a.status, a.headers.get("Retry-After")) for a in answers]

    answers, _ = run(settings, Clock(T0), scenario, rate=RateLimit(per_s=0.1, burst=2))
    assert [status for status, _ in answers[2:]] == [429, 429]
    assert all(retry is not None and int(retry) >= 1 for _, retry in answers[2:])


def test_the_openapi_document_names_every_route_and_its_models(settings: Settings) -> None:
    async def scenario(client: ApiClient) -> Any:
        answer = await client.get("/v1/openapi.json")
        return await answer.json()

    doc, _ = run(settings, Clock(T0), scenario)
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/auth/agent-token", "/v1/agents/{agent_id}/transactions", "/v1/chains"} <= set(doc["paths"])
    assert {"TransactionRequest", "TransactionResponse", "ErrorResponse"} <= set(doc["components"]["schemas"])
    request = doc["components"]["schemas"]["TransactionRequest"]
    assert request["additionalProperties"] is False and set(request["required"]) == {"chain", "to", "value"}


def test_a_typed_document_without_its_domain_type_gets_the_one_eth_account_derives() -> None:
    from eth_account.messages import _hash_eip191_message, encode_typed_data

    from evm.typed_data import hash_typed_data
    from gateway.http_api.service import with_domain_type

    domain = {
        "name": "USD Coin",
        "version": "2",
        "chainId": 1,
        "verifyingContract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
    }
    types = {"Mail": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}]}
    message = {"to": RECIPIENT, "amount": 5}
    completed = with_domain_type({"types": types, "primaryType": "Mail", "domain": domain, "message": message})
    assert [f["name"] for f in completed["types"]["EIP712Domain"]] == [
        "name",
        "version",
        "chainId",
        "verifyingContract",
    ]
    # eth-account derives the domain type itself from the domain's fields: the digests must agree.
    expected = _hash_eip191_message(encode_typed_data(domain, types, message))
    assert hash_typed_data(completed).digest == expected
    assert with_domain_type(completed) == completed  # a declared domain type is left as it is


def test_the_typescript_clients_document_is_the_one_the_server_serves() -> None:
    from gateway.http_api.openapi import openapi_text
    from infra.stack.local import REPO

    committed = (REPO / "sdk" / "typescript" / "openapi.json").read_text()
    assert committed == openapi_text(), (
        "sdk/typescript/openapi.json is out of date: run `warden api --openapi > sdk/typescript/openapi.json` "
        "and `npm run schema --prefix sdk/typescript`"
    )


def test_no_property_the_document_requires_can_be_null() -> None:
    """The server leaves a value that is None out of its answers (``exclude_none``), so a nullable
    property must be optional in the document: a required one is a promise the answer breaks (a
    simulation whose node named no block answered without ``block_number``, which schemathesis
    reported as a response that violates its schema)."""
    from gateway.http_api.openapi import openapi_document

    def nullable(prop: dict[str, Any]) -> bool:
        return any(option.get("type") == "null" for option in prop.get("anyOf", ()))

    broken = [
        f"{name}.{field}"
        for name, schema in openapi_document()["components"]["schemas"].items()
        for field, prop in schema.get("properties", {}).items()
        if field in schema.get("required", ()) and nullable(prop)
    ]
    assert broken == []


def test_idempotency_replays_refuses_another_body_and_forgets_past_its_window_and_cap() -> None:
    from gateway.http_api.errors import Refused
    from gateway.http_api.limits import Idempotency

    memory = Idempotency(window_s=100, per_agent=3)
    assert memory.begin("a1", "k", "body-1", 0) is None
    with pytest.raises(Refused) as busy:
        memory.begin("a1", "k", "body-1", 1)
    assert busy.value.status == 409
    memory.finish("a1", "k", (201, b"{}"))
    assert memory.begin("a1", "k", "body-1", 2) == (201, b"{}")
    with pytest.raises(Refused) as other:
        memory.begin("a1", "k", "body-2", 3)
    assert other.value.status == 422 and other.value.extra["code"] == Code.IDEMPOTENCY_KEY_REUSED
    assert memory.begin("a2", "k", "body-2", 3) is None  # another agent's key of the same name
    # Past the window the key is new again.
    assert memory.begin("a1", "k", "body-2", 200) is None
    # Past the cap the agent's oldest finished keys go first; one in progress stays.
    for n, key in enumerate(("x", "y", "z", "w")):
        memory.finish("a1", "k", (201, b"{}"))
        memory.begin("a1", key, "b", 201 + n)
        memory.finish("a1", key, (201, b"{}"))
    assert len(memory.seen["a1"]) <= 3 and "w" in memory.seen["a1"] and "k" not in memory.seen["a1"]
