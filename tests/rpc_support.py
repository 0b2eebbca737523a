"""What the tests of JSON-RPC clients share: a node that is a real HTTP server in the test's own
process, answering as the test says."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web


async def rpc_node(handle: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> tuple[web.AppRunner, str]:
    """A server on a free loopback port answering ``POST /`` with ``handle``: its runner (``cleanup()``
    stops it) and its URL."""
    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{bound_port(site)}/"


def bound_port(site: web.TCPSite) -> int:
    """The port the operating system gave ``site`` (started on port 0)."""
    server = site._server
    assert isinstance(server, asyncio.base_events.Server), server
    return int(server.sockets[0].getsockname()[1])
