"""`warden fund`: it adds to the balance of an address on a node that serves Anvil's
``anvil_setBalance``, and refuses with the next step on any other node, for a Solana network, for an
agent with no signing key and for an amount that is not one. The nodes are real HTTP servers in this
process; the command against the stack's Anvil is tests/stack/test_getting_started.py."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.web_runner import AppRunner

from infra.cli import main
from infra.cli.fund import Funded, FundError, fund
from infra.stack.local import free_port
from runtime.config import Settings
from tests.rpc_support import rpc_node

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


async def _node(anvil: bool) -> tuple[AppRunner, str]:
    """A JSON-RPC server holding balances; ``anvil``: it serves anvil_setBalance, else refuses it
    as a node that does not know the method."""
    balances: dict[str, int] = {DEST.lower(): 7}

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        method, params = body["method"], body["params"]
        if method == "eth_getBalance":
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": hex(balances[params[0].lower()])})
        if method == "anvil_setBalance" and anvil:
            balances[params[0].lower()] = int(params[1], 16)
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": None})
        error = {"code": -32601, "message": "the method anvil_setBalance does not exist/is not available"}
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": error})

    return await rpc_node(handle)


def _fund(anvil: bool, wei: int) -> Funded | FundError:
    async def go() -> Funded | FundError:
        runner, url = await _node(anvil)
        try:
            return await fund(dataclasses.replace(Settings(), rpc_url=url), "anvil", DEST, wei)
        except FundError as exc:
            return exc
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_it_adds_to_the_balance_on_anvil() -> None:
    funded = _fund(anvil=True, wei=10**19)
    assert not isinstance(funded, FundError)
    assert (funded.added, funded.balance, funded.unit) == (10**19, 10**19 + 7, "wei")


def test_a_node_that_is_not_anvil_is_named_with_what_to_do_instead() -> None:
    refused = _fund(anvil=False, wei=1)
    assert isinstance(refused, FundError)
    assert "refused to add funds" in str(refused) and "send 0x5aAe" in str(refused)


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    monkeypatch.setenv("WARDEN_HOME", str(tmp_path))
    monkeypatch.setenv("WARDEN_ALLOW_DEV_ROOT", "1")
    monkeypatch.setenv("WARDEN_BROKER", f"127.0.0.1:{free_port()}")

    def run(*argv: str) -> tuple[int, str]:
        code = main(["fund", *argv])
        return code, capsys.readouterr().err

    return run


def test_what_it_cannot_fund_is_refused_naming_the_fix(cli: Callable[..., tuple[int, str]]) -> None:
    code, err = cli("--address", DEST, "--value", "1e18")
    assert code == 1 and "--value '1e18'" in err and "give an amount of ETH" in err
    code, err = cli("--address", DEST, "--value", "1", "--chain", "solana-local")
    assert code == 1 and f"--address {DEST!r}" in err and "base58" in err, err
    code, err = cli("--agent", "agent-nokey", "--value", "1")
    assert code == 1 and "has no active ethereum signing key" in err
    assert "`warden keys provision --agent agent-nokey --chain ethereum`" in err
    code, err = cli("--address", "0x1234", "--value", "1")
    assert code == 1 and "--address '0x1234'" in err
