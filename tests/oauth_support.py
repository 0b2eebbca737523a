"""A small OAuth authorization server for tests: an aiohttp app in this process, on a loopback port,
with a token introspection endpoint (RFC 7662) that knows the tokens it is given. No real
authorization server (Keycloak, Auth0, ...) can run on the test machine; this one answers as
RFC 7662 says one does, and records what it was asked."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.rpc_support import bound_port

# Introspection answers that are not an introspection response, by the token that asks for them.
NOT_JSON = "token-the-server-answers-with-html"
NOT_AN_OBJECT = "token-the-server-answers-with-a-list"


@dataclass
class AuthorizationServer:
    """The running server: its issuer URL, its introspection endpoint, and what it saw."""

    issuer: str
    introspection_endpoint: str
    tokens: dict[str, dict[str, Any]]
    client: tuple[str, str] | None
    asked: list[str] = field(default_factory=list[Any])  # the tokens introspected, in order
    refused_clients: int = 0

    async def introspect(self, request: web.Request) -> web.StreamResponse:
        if self.client is not None:
            expected = "Basic " + base64.b64encode(f"{self.client[0]}:{self.client[1]}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                self.refused_clients += 1
                return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        token = str(form.get("token", ""))
        self.asked.append(token)
        if token == NOT_JSON:
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if token == NOT_AN_OBJECT:
            return web.json_response([{"active": True}])
        # RFC 7662 2.2: a token the server does not know is answered as inactive.
        return web.json_response(self.tokens.get(token, {"active": False}))


@contextlib.contextmanager
def authorization_server(
    tokens: dict[str, dict[str, Any]], client: tuple[str, str] | None = None
) -> Iterator[AuthorizationServer]:
    """Serve an authorization server knowing ``tokens`` (token -> introspection answer), requiring
    HTTP Basic ``client`` credentials if given, on a thread of its own for the length of a block."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, AuthorizationServer]:
        server = AuthorizationServer("", "", tokens, client)
        app = web.Application()
        app.router.add_post("/introspect", server.introspect)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.issuer = f"http://127.0.0.1:{bound_port(site)}"
        server.introspection_endpoint = server.issuer + "/introspect"
        return runner, server

    runner, server = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
