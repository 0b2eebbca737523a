"""The local Bitcoin node as the stack runs it (btcd on regtest, started as `warden up` starts it):
`warden fund --chain bitcoin-regtest` pays exactly the value asked to an address, or to an agent's
P2WPKH address, from the funder's mature coins and mines it, as the node itself says
(`runtime.bitcoin`); the miner adds a block every second with nobody asking, and stops with the
stack, or by itself when the stack's process is gone; `warden up --json` names the node without the
password of its JSON-RPC; the inputs of a PSBT are read from it in one request."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from aiohttp import web
from embit.ec import PrivateKey, PublicKey
from embit.networks import NETWORKS
from embit.script import address_to_scriptpubkey, p2wpkh

from btc import psbt as psbts
from infra.stack.local import REPO, LocalStack, listen_ports, local_settings
from rules.bitcoin import held_by
from runtime import bitcoin
from runtime.config import Settings, child_environment, environment
from runtime.rpc import JsonRpc
from tests.rpc_support import rpc_node
from tests.support import warden
from tests.up_support import home_settings  # noqa: F401 - a fixture

CHAIN = "bitcoin-regtest"
SATS = 10**8
# Nobody's: a P2WPKH address of a key made for this test.
STRANGER = "bcrt1q0xcqpzrky6eff2g52qdye53xkk9jxkvrl4xfg5"

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def bitcoin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The stack's btcd and its miner, with the broker for `warden keys provision`."""
    settings = local_settings(tmp_path_factory.mktemp("home"))
    stack = LocalStack(settings)
    started = time.monotonic()
    with environment(WARDEN_HOME=str(settings.home)):
        try:
            stack.start(parts=("broker", "bitcoin"))
            print(f"the broker, btcd and its first 101 blocks started in {time.monotonic() - started:.1f} s")
            yield stack
        finally:
            processes = list(stack.processes.values())
            stack.stop()
    assert all(p.proc.poll() is not None for p in processes)  # the miner stopped with the stack
    assert not settings.bitcoin_info.exists()  # nobody is told of a node that is gone


async def _on_node(settings: Settings, *calls: tuple[Any, ...]) -> list[Any]:
    """Each ``(function, *args)`` of runtime.bitcoin against the stack's node, in order."""
    node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=60)
    try:
        return [await function(node, *args) for function, *args in calls]
    finally:
        await node.close()


def _fund(settings: Settings, *who: str, value: str) -> dict[str, Any]:
    done = warden(settings, "fund", "--chain", CHAIN, *who, "--value", value, "--json")
    assert done.returncode == 0, done.stderr
    funded: dict[str, Any] = orjson.loads(done.stdout)
    return funded


def test_the_node_listens_on_ports_of_the_stacks_range_and_its_url_carries_credentials(
    bitcoin_stack: LocalStack,
) -> None:
    settings = bitcoin_stack.settings
    info = json.loads(settings.bitcoin_info.read_text())
    assert oct(settings.bitcoin_info.stat().st_mode & 0o777) == "0o600"
    rpc = urllib.parse.urlsplit(info["rpc"])
    assert rpc.username and rpc.password and rpc.port in listen_ports()
    assert int(info["p2p"].rpartition(":")[2]) in listen_ports()
    described = {p["name"]: p["address"] for p in bitcoin_stack.describe()}
    assert described["bitcoin"] == f"http://127.0.0.1:{rpc.port}", described
    (count,) = run(_on_node(settings, (bitcoin.block_count,)))
    assert count >= 101


def test_fund_pays_exactly_the_value_and_mines_it(bitcoin_stack: LocalStack) -> None:
    settings = bitcoin_stack.settings
    funded = _fund(settings, "--address", STRANGER, value="0.1")
    password = urllib.parse.urlsplit(settings.rpc_url_for(CHAIN)).password
    assert password and password not in json.dumps(funded)
    assert funded == {
        "chain": CHAIN,
        "address": STRANGER,
        "rpc_url": funded["rpc_url"],
        "added": str(10_000_000),
        "balance": str(10_000_000),
        "unit": "satoshis",
    }
    assert funded["rpc_url"].startswith("http://127.0.0.1:")
    (coins,) = run(_on_node(settings, (bitcoin.unspent, STRANGER)))
    assert [c.amount for c in coins] == [10_000_000]
    (coin,) = coins
    out, status = run(_on_node(settings, (bitcoin.tx_out, coin.txid, coin.vout), (bitcoin.transaction, coin.txid)))
    assert out is not None and (out.amount, out.coinbase) == (10_000_000, False) and out.confirmations >= 1
    assert out.script == coin.script == address_to_scriptpubkey(STRANGER).data
    assert status is not None and status.confirmations >= 1 and status.block_hash is not None
    # A second payment, of an amount no binary float holds, adds exactly that.
    again = _fund(settings, "--address", STRANGER, value="0.00012345")
    assert (again["added"], again["balance"]) == ("12345", str(10_012_345))
    (coins,) = run(_on_node(settings, (bitcoin.unspent, STRANGER)))
    assert sorted(c.amount for c in coins) == [12_345, 10_000_000] and all(c.confirmations >= 1 for c in coins)
    # What the node does not know is None, not an error.
    assert run(_on_node(settings, (bitcoin.tx_out, "ab" * 32, 0), (bitcoin.transaction, "ab" * 32))) == [None, None]


def test_fund_pays_an_agents_p2wpkh_address_from_its_keys_public_key(bitcoin_stack: LocalStack) -> None:
    settings = bitcoin_stack.settings
    agent = f"btc-{os.urandom(3).hex()}"
    done = warden(settings, "keys", "provision", "--agent", agent, "--chain", "bitcoin", "--wait", "0", "--json")
    assert done.returncode == 0, done.stderr
    key = orjson.loads(done.stdout)
    address = p2wpkh(PublicKey.parse(bytes.fromhex(key["public_key_hex"]))).address(NETWORKS["regtest"])
    funded = _fund(settings, "--agent", agent, value="1.5")
    assert (funded["address"], funded["added"], funded["balance"]) == (address, str(150_000_000), str(150_000_000))
    (coins,) = run(_on_node(settings, (bitcoin.unspent, address)))
    assert [c.amount for c in coins] == [150_000_000]


def test_the_miner_adds_blocks_with_nobody_asking(bitcoin_stack: LocalStack) -> None:
    settings = bitcoin_stack.settings
    (first,) = run(_on_node(settings, (bitcoin.block_count,)))
    deadline = time.monotonic() + 30  # a block a second; generous, on a busy machine
    while (now := run(_on_node(settings, (bitcoin.block_count,)))[0]) < first + 2:
        assert time.monotonic() < deadline, f"the chain stayed at {now} (from {first}) for 30 s"
        time.sleep(0.5)


def test_the_miner_stops_by_itself_when_the_process_that_started_it_is_gone(bitcoin_stack: LocalStack) -> None:
    """A stack killed with SIGKILL stops no child: the miner sees its parent gone and exits."""
    settings = bitcoin_stack.settings
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "miner = subprocess.Popen([sys.executable, '-m', 'infra.stack.bitcoin_miner', '--interval', '0.2'],"
            " start_new_session=True)\n"
            "print(miner.pid, flush=True)\n"
            "time.sleep(600)\n",
        ],
        env=child_environment(settings) | {"PYTHONPATH": str(REPO)},
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert parent.stdout is not None
    miner = int(parent.stdout.readline())
    try:
        time.sleep(2)  # it runs, and mines
        assert _runs(miner)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while _runs(miner):
            assert time.monotonic() < deadline, "the miner outlived the process that started it by 30 s"
            time.sleep(0.2)
    finally:
        if _runs(miner):
            os.kill(miner, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()


def _runs(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, exited and not yet reaped by init, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_warden_up_json_names_the_bitcoin_node_without_its_password(
    home_settings: Settings,  # noqa: F811
) -> None:
    """`warden up --memory --json` as a person runs it: its nodes and processes name btcd's JSON-RPC
    without the user and password, and say where they are."""
    settings = home_settings
    settings.home.mkdir(parents=True)
    log = (settings.home.parent / "warden-up.log").open("ab")
    up = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "up", "--memory", "--json"],
        env=child_environment(settings) | {"PYTHONPATH": str(REPO)},
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    doc: dict[str, Any] = {"processes": []}
    try:
        doc = _first_json(up, 300)
        info = json.loads(settings.bitcoin_info.read_text())
        _until_supervised(settings, up, 120)
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(timeout=90)
        finally:
            log.close()
            left = _kill_left_running(doc)
    assert not left, f"warden up left these running after Ctrl-C (killed now): {left}"
    password = urllib.parse.urlsplit(info["rpc"]).password
    assert password and password not in json.dumps(doc)
    (node,) = [n for n in doc["nodes"] if n["chain"] == CHAIN]
    port = urllib.parse.urlsplit(info["rpc"]).port
    assert node == {
        "family": "bitcoin",
        "chain": CHAIN,
        "process": "bitcoin",
        "rpc_url": f"http://127.0.0.1:{port}",
        "credentials": str(settings.bitcoin_info),
    }
    names = {p["name"] for p in doc["processes"]}
    assert {"bitcoin", "bitcoin-miner"} <= names, names


def _until_supervised(settings: Settings, up: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until `warden up`'s supervisor runs, and has had a moment to take Ctrl-C: a SIGINT before
    it does is Python's KeyboardInterrupt, and stops no part of the stack."""
    status = settings.state_dir / "supervisor.json"
    deadline = time.monotonic() + timeout_s
    while not (status.exists() and orjson.loads(status.read_bytes()).get("running")):
        assert up.poll() is None, f"warden up exited with code {up.returncode}"
        assert time.monotonic() < deadline, f"warden up's supervisor did not run within {timeout_s:.0f} s"
        time.sleep(0.2)
    time.sleep(1)


def _kill_left_running(doc: dict[str, Any]) -> list[str]:
    """The processes `warden up` listed that still run, each killed (SIGKILL) so none outlives the test."""
    left = [f"{p['name']} (pid {p['pid']})" for p in doc["processes"] if _runs(p["pid"])]
    for process in doc["processes"]:
        if _runs(process["pid"]):
            os.kill(process["pid"], signal.SIGKILL)
    return left


def _first_json(proc: subprocess.Popen[bytes], timeout_s: float) -> Any:
    """The JSON document ``proc`` prints first (indented: it ends with a line "}"), within ``timeout_s``."""
    lines: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=read, daemon=True).start()
    text = b""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"warden up printed no JSON within {timeout_s:.0f} s: {text!r}") from None
        if not line:
            raise AssertionError(f"warden up exited with code {proc.wait()} before its JSON: {text!r}")
        text += line
        if line == b"}\n":
            return orjson.loads(text)


def test_the_outputs_a_psbts_inputs_spend_are_asked_of_the_node_in_one_request(bitcoin_stack: LocalStack) -> None:
    """`rules.bitcoin.held_by`, as the judge reads a PSBT's inputs, through a proxy in front of
    btcd that counts the requests: one JSON-RPC batch for all 500, answered in their order, the
    one coin that exists with its amount and script, the rest (never made) as nothing."""
    settings = bitcoin_stack.settings
    address = str(p2wpkh(PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"]))
    _fund(settings, "--address", address, value="0.001")
    ((coin,),) = run(_on_node(settings, (bitcoin.unspent, address)))
    spent = [(coin.txid, coin.vout)] + [(os.urandom(32).hex(), n % 3) for n in range(499)]
    inputs = tuple(psbts.Input(txid, vout, 0xFFFFFFFD, 1, coin.script, None, False) for txid, vout in spent)
    psbt = psbts.Psbt("00" * 32, 2, 0, inputs, (psbts.Output(coin.script, 1),))

    async def through_a_counting_proxy() -> tuple[dict[tuple[str, int], psbts.Output | None], int]:
        requests = 0
        async with aiohttp.ClientSession() as session:

            async def forward(request: web.Request) -> web.StreamResponse:
                nonlocal requests
                requests += 1
                body = await request.read()
                async with session.post(settings.rpc_url_for(CHAIN), data=body) as answer:
                    return web.Response(body=await answer.read(), status=answer.status)

            runner, url = await rpc_node(forward)
            node = JsonRpc(url, timeout_s=60)
            try:
                return await held_by(node, psbt), requests
            finally:
                await node.close()
                await runner.cleanup()

    held, requests = run(through_a_counting_proxy())
    assert requests == 1
    assert list(held) == spent
    assert held[spent[0]] == psbts.Output(coin.script, 100_000)
    assert all(out is None for out in list(held.values())[1:])
