"""`warden mcp --http` driven by the SDK's streamable HTTP client against the real stack: the server
runs as `python -m infra.cli mcp --agent A --http --port P` in a child process. With the bearer
token from the file it wrote, a client lists the tools and reads the policy; without it, or with a
wrong one, the SDK's 401 refuses the request before any MCP message is handled.

With `--auth-issuer` and `--introspection-endpoint` it takes access tokens from an authorization
server instead. No real one (Keycloak, Auth0, ...) can run on the test machine: the one here is a
small aiohttp app in the test process (tests/oauth_support.py) whose introspection endpoint knows a
few tokens and wants client credentials, which the server reads from its settings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from gateway.mcp_server.auth import token_file
from infra.stack.local import LocalStack, free_port
from runtime.config import Settings
from tests.oauth_support import AuthorizationServer, authorization_server
from tests.support import make_agent, serving

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
}


@contextlib.contextmanager
def _serving(
    settings: Settings, agent: str, options: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """`warden mcp --agent AGENT --http` with ``options`` (and ``env`` added to its environment) on a
    free port, logging to ``log``: its MCP URL."""
    port = free_port()
    env = dict(env or {})
    argv = ["mcp", "--agent", agent, "--http", "--port", str(port), *options]
    # The server generates its token: no WARDEN_MCP_TOKEN_FILE from the environment.
    with serving(settings, argv, port, log, "warden mcp --http", env | {"WARDEN_MCP_TOKEN_FILE": ""}):
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
def agent(stack: LocalStack) -> str:
    """An agent whose policy allows DEST."""
    name = f"agent-mcp-http-{os.urandom(3).hex()}"
    asyncio.run(make_agent(stack.settings, name, tx_to_allowlist=(DEST,), tx_max_value_eth="1", tx_daily_limit_eth="2"))
    return name


@pytest.fixture(scope="module")
def server(
    stack: LocalStack, agent: str, tmp_path_factory: pytest.TempPathFactory
) -> typing.Iterator[tuple[str, str, Path, Path]]:
    """The running HTTP server: (its MCP URL, its token, its stderr file, its token file)."""
    log = tmp_path_factory.mktemp("mcp-http") / "server.log"
    with _serving(stack.settings, agent, [], log) as url:
        path = token_file(stack.settings.home, agent)
        yield url, path.read_text().strip(), log, path


async def _session_calls(url: str, token: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    got: dict[str, Any] = {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=150)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        got["tools"] = (await session.list_tools()).tools
        got["policy"] = await session.call_tool("get_policy", {}, read_timeout_seconds=60)
    return got


def _post_initialize(url: str, authorization: str | None) -> urllib.error.HTTPError | int:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, json.dumps(INITIALIZE).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as refused:
        return refused


def test_with_the_token_a_client_lists_the_tools_and_reads_the_policy(server: tuple[str, str, Path, Path]) -> None:
    url, token, log, _ = server
    got = asyncio.run(_session_calls(url, token))
    assert "get_policy" in {tool.name for tool in got["tools"]}
    policy = got["policy"]
    assert not policy.is_error and policy.structured_content is not None, (policy.content, log.read_text()[-4000:])
    assert policy.structured_content["tx_to_allowlist"] == [DEST]


def test_the_token_file_is_private_and_its_path_not_the_token_is_logged(server: tuple[str, str, Path, Path]) -> None:
    url, token, log, path = server
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = log.read_text()
    assert str(path) in text and url in text
    assert token not in text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Bearer ", "Basic dXNlcjpwYXNz"], ids=repr)
def test_a_request_without_the_right_token_gets_401(
    server: tuple[str, str, Path, Path], authorization: str | None
) -> None:
    url, _, _, _ = server
    refused = _post_initialize(url, authorization)
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 401
    challenge = refused.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge


def test_a_prefix_of_the_token_gets_401_and_the_token_itself_gets_through(server: tuple[str, str, Path, Path]) -> None:
    url, token, _, _ = server
    refused = _post_initialize(url, f"Bearer {token[:-1]}")
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 401
    assert _post_initialize(url, f"Bearer {token}") == 200


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=repr)
def test_the_sdk_client_cannot_initialize_without_the_right_token(
    server: tuple[str, str, Path, Path], token: str | None
) -> None:
    url, _, _, _ = server
    # The SDK's client reports the 401 as an MCPError without its status (the status is checked by
    # the plain POSTs above), raised out of its task groups.
    with pytest.raises(BaseException) as raised:  # noqa: PT011
        asyncio.run(asyncio.wait_for(_session_calls(url, token), 60))
    assert any(isinstance(exc, MCPError) for exc in _flattened(raised.value)), repr(raised.value)


def _flattened(exc: BaseException) -> list[BaseException]:
    """An exception and those of the groups it is made of."""
    return [exc, *(inner for group in getattr(exc, "exceptions", ()) for inner in _flattened(group))]


# The tokens the authorization server knows, each a test of one rule (filled once the URL is known).
GOOD, OTHER_AUDIENCE, INACTIVE, EXPIRED, NO_SCOPE = (
    f"tok-{name}-{os.urandom(8).hex()}" for name in ("good", "other-audience", "inactive", "expired", "no-scope")
)
SCOPE = "warden:agent"


@pytest.fixture(scope="module")
def oauth_server(
    stack: LocalStack, agent: str, tmp_path_factory: pytest.TempPathFactory
) -> typing.Iterator[tuple[str, AuthorizationServer, Path]]:
    """The server taking the authorization server's tokens: (its MCP URL, the authorization server, its log)."""
    tmp = tmp_path_factory.mktemp("mcp-oauth")
    secret = tmp / "introspection-secret"
    secret.write_text("introspection-s3cret\n")
    credentials = {
        "WARDEN_MCP_INTROSPECTION_CLIENT_ID": "warden-mcp",
        "WARDEN_MCP_INTROSPECTION_SECRET_FILE": str(secret),
    }
    tokens: dict[str, dict[str, Any]] = {}
    with authorization_server(tokens, client=("warden-mcp", "introspection-s3cret")) as issuer:
        options = [
            *("--auth-issuer", issuer.issuer),
            *("--introspection-endpoint", issuer.introspection_endpoint),
            *("--required-scope", SCOPE),
        ]
        with _serving(stack.settings, agent, options, tmp / "server.log", credentials) as url:
            now = int(time.time())
            valid = {"active": True, "aud": ["https://other.example/mcp", url], "exp": now + 3600, "scope": SCOPE}
            tokens.update(
                {
                    GOOD: valid | {"client_id": "agent-app", "sub": "user-7", "iss": issuer.issuer},
                    OTHER_AUDIENCE: valid | {"aud": "https://other.example/mcp"},
                    INACTIVE: {"active": False},
                    EXPIRED: valid | {"exp": now - 60},
                    NO_SCOPE: valid | {"scope": "openid"},
                }
            )
            yield url, issuer, tmp / "server.log"


def test_an_access_token_for_this_server_lists_the_tools_and_reads_the_policy(
    oauth_server: tuple[str, AuthorizationServer, Path],
) -> None:
    url, issuer, log = oauth_server
    got = asyncio.run(_session_calls(url, GOOD))
    assert "get_policy" in {tool.name for tool in got["tools"]}
    policy = got["policy"]
    assert not policy.is_error and policy.structured_content is not None, (policy.content, log.read_text()[-4000:])
    assert policy.structured_content["tx_to_allowlist"] == [DEST]
    assert GOOD in issuer.asked and issuer.refused_clients == 0


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (OTHER_AUDIENCE, "does not name this server"),
        (INACTIVE, "not active"),
        (EXPIRED, "has expired"),
        ("tok-nobody-issued", "not active"),
    ],
    ids=["other-audience", "inactive", "expired", "unknown"],
)
def test_a_token_the_rules_refuse_gets_401_and_the_reason_is_logged(
    oauth_server: tuple[str, AuthorizationServer, Path], token: str, reason: str
) -> None:
    url, issuer, log = oauth_server
    refused = _post_initialize(url, f"Bearer {token}")
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 401
    assert "resource_metadata=" in refused.headers["WWW-Authenticate"]
    assert token in issuer.asked
    text = log.read_text()
    assert reason in text, text[-4000:]
    assert token not in text


def test_a_token_without_the_required_scope_gets_403_insufficient_scope(
    oauth_server: tuple[str, AuthorizationServer, Path],
) -> None:
    # The MCP authorization rules: 403 with the scope named, so a client can ask for it (step-up).
    url, issuer, _ = oauth_server
    refused = _post_initialize(url, f"Bearer {NO_SCOPE}")
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 403
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert SCOPE in refused.headers["WWW-Authenticate"]
    assert NO_SCOPE in issuer.asked


def test_a_request_without_a_token_gets_401_and_asks_no_one(
    oauth_server: tuple[str, AuthorizationServer, Path],
) -> None:
    url, issuer, _ = oauth_server
    asked = len(issuer.asked)
    refused = _post_initialize(url, None)
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 401
    assert len(issuer.asked) == asked


def test_the_protected_resource_metadata_names_the_issuer_and_the_scope(
    oauth_server: tuple[str, AuthorizationServer, Path],
) -> None:
    url, issuer, log = oauth_server
    origin = url.removesuffix("/mcp")
    with urllib.request.urlopen(f"{origin}/.well-known/oauth-protected-resource/mcp", timeout=30) as response:
        metadata = json.loads(response.read())
    assert metadata["resource"] == url
    assert [server.rstrip("/") for server in metadata["authorization_servers"]] == [issuer.issuer]
    assert metadata["scopes_supported"] == [SCOPE]
    text = log.read_text()
    assert issuer.issuer in text and "introspection-s3cret" not in text
