"""A read the node could not answer is asked once more; a send never is (whether the node took it is
unknown). The node is a real HTTP server in this process that drops the first connection it gets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.web_runner import AppRunner

from runtime.rpc import JsonRpc, RpcUnavailable, is_read
from tests.rpc_support import rpc_node


async def _flaky_node(drops: int) -> tuple[AppRunner, str, list[str]]:
    """A JSON-RPC server that drops the first ``drops`` requests without an answer; ``seen`` counts them all."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append(body["method"])
        if len(seen) <= drops:
            assert request.transport is not None
            request.transport.close()  # the connection ends with no answer, as a dropped keep-alive does
            raise ConnectionResetError
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": "0x7"})

    runner, url = await rpc_node(handle)
    return runner, url, seen


def _asked(drops: int, method: str, *params: Any) -> tuple[object, list[str]]:
    """What ``JsonRpc.call`` returned or raised against a node that drops ``drops`` requests, and
    the requests the node saw."""

    async def go() -> tuple[object, list[str]]:
        runner, url, seen = await _flaky_node(drops)
        node = JsonRpc(url, timeout_s=10)
        try:
            return await node.call(method, *params), seen
        except RpcUnavailable as exc:
            return exc, seen
        finally:
            await node.close()
            await runner.cleanup()

    return asyncio.run(go())


def test_a_dropped_read_is_asked_again_and_answered() -> None:
    result, seen = _asked(1, "eth_getTransactionCount", "0x" + "11" * 20, "pending")
    assert result == "0x7"
    assert seen == ["eth_getTransactionCount", "eth_getTransactionCount"]


def test_a_read_dropped_twice_fails_closed() -> None:
    result, seen = _asked(2, "eth_call", {}, "pending")
    assert isinstance(result, RpcUnavailable) and "eth_call: chain RPC at" in str(result)
    assert seen == ["eth_call", "eth_call"]


def test_a_dropped_send_is_not_sent_again() -> None:
    result, seen = _asked(1, "eth_sendRawTransaction", "0x02")
    assert isinstance(result, RpcUnavailable)
    assert seen == ["eth_sendRawTransaction"]


@pytest.mark.parametrize("method", ["eth_sendRawTransaction", "eth_sendTransaction", "evm_mine", "anvil_setBalance"])
def test_only_reads_are_reads(method: str) -> None:
    assert not is_read(method)
