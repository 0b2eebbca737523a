"""`warden mcp --http` driven by the SDK's streamable HTTP client against the real stack: the server
runs as `python -m infra.cli mcp --agent A --http --port P` in a child process. With the bearer
token from the file it wrote, a client lists the tools and reads the policy; without it, or with a
wrong one, the SDK's 401 refuses the request before any MCP message is handled."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from infra.stack.local import REPO, free_port, wait_for_port
from runtime.config import child_environment
from sdk.mcp_auth import token_file
from tests.support import make_agent

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
}


@pytest.fixture(scope="module")
def server(stack, tmp_path_factory):
    """The running HTTP server: (its MCP URL, its token, its stderr file, its token file)."""
    settings = stack.settings
    agent = f"agent-mcp-http-{os.urandom(3).hex()}"
    asyncio.run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1", tx_daily_limit_eth="2"))
    port = free_port()
    env = child_environment(settings) | {"PYTHONPATH": str(REPO)}
    env.pop("WARDEN_MCP_TOKEN_FILE", None)  # the server generates its token
    log = tmp_path_factory.mktemp("mcp-http") / "server.log"
    with open(log, "w") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "mcp", "--agent", agent, "--http", "--port", str(port)],
            env=env,
            cwd=str(REPO),
            stdout=errlog,
            stderr=errlog,
        )
    try:
        wait_for_port(f"127.0.0.1:{port}", 60, "warden mcp --http", proc)
        path = token_file(settings.home, agent)
        yield f"http://127.0.0.1:{port}/mcp", path.read_text().strip(), log, path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _session_calls(url: str, token: str | None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    got: dict = {}
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
            return response.status
    except urllib.error.HTTPError as refused:
        return refused


def test_with_the_token_a_client_lists_the_tools_and_reads_the_policy(server):
    url, token, log, _ = server
    got = asyncio.run(_session_calls(url, token))
    assert "get_policy" in {tool.name for tool in got["tools"]}
    policy = got["policy"]
    assert not policy.is_error and policy.structured_content is not None, (policy.content, log.read_text()[-4000:])
    assert policy.structured_content["tx_to_allowlist"] == [DEST]


def test_the_token_file_is_private_and_its_path_not_the_token_is_logged(server):
    url, token, log, path = server
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = log.read_text()
    assert str(path) in text and url in text
    assert token not in text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Bearer ", "Basic dXNlcjpwYXNz"], ids=repr)
def test_a_request_without_the_right_token_gets_401(server, authorization):
    url, _, _, _ = server
    refused = _post_initialize(url, authorization)
    assert isinstance(refused, urllib.error.HTTPError) and refused.code == 401
    challenge = refused.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge


def test_a_prefix_of_the_token_gets_401_and_the_token_itself_gets_through(server):
    url, token, _, _ = server
    assert _post_initialize(url, f"Bearer {token[:-1]}").code == 401
    assert _post_initialize(url, f"Bearer {token}") == 200


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=repr)
def test_the_sdk_client_cannot_initialize_without_the_right_token(server, token):
    url, _, _, _ = server
    # The SDK's client reports the 401 as an MCPError without its status (the status is checked by
    # the plain POSTs above), raised out of its task groups.
    with pytest.raises(BaseException) as raised:  # noqa: PT011
        asyncio.run(asyncio.wait_for(_session_calls(url, token), 60))
    assert any(isinstance(exc, MCPError) for exc in _flattened(raised.value)), repr(raised.value)


def _flattened(exc: BaseException) -> list[BaseException]:
    """An exception and those of the groups it is made of."""
    return [exc, *(inner for group in getattr(exc, "exceptions", ()) for inner in _flattened(group))]
