"""runtime.bitcoin over a Bitcoin node's JSON-RPC: amounts converted exactly (never through a binary
float), btcd's envelope and basic auth understood by `runtime.rpc.JsonRpc`, the user and password of
a node's URL never in a message or a listing, an address's unspent outputs read from its history,
many outputs asked in one JSON-RPC batch, and `warden fund`'s payment from the regtest funder. The
nodes are real HTTP servers in this process, or a table of answers; btcd itself is
tests/stack/test_bitcoin_node.py."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from embit.ec import PrivateKey
from embit.networks import NETWORKS
from embit.script import p2wpkh
from embit.transaction import Transaction

from btc import wallet
from infra.cli import fund
from infra.stack.local import free_port, local_nodes
from runtime import bitcoin
from runtime.config import Settings
from runtime.rpc import JsonRpc, RpcError, RpcUnavailable, redacted
from tests.rpc_support import rpc_node

USER, PASSWORD = "warden-0a1b", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


@pytest.mark.parametrize(
    "btc, sats",
    [
        (0.1, 10_000_000),
        (20999999.9769, 2_099_999_997_690_000),
        (1e-08, 1),
        (0.00000546, 546),
        (50, 5_000_000_000),
        (0, 0),
        (0.3, 30_000_000),  # 0.1 + 0.2 != 0.3 in binary; the node's 0.3 is 30,000,000 sats
        (21_000_000, bitcoin.MAX_MONEY),
    ],
)
def test_a_nodes_amount_in_btc_is_exact_satoshis(btc: float, sats: int) -> None:
    assert bitcoin.satoshis(btc) == sats


@pytest.mark.parametrize(
    "btc, why",
    [
        (0.123456789, "not a whole number of satoshis"),
        (1e-09, "not a whole number of satoshis"),
        (-0.1, "between 0 and 21,000,000"),
        (21_000_000.00000001, "between 0 and 21,000,000"),
        (math.nan, "not a whole number"),
        (math.inf, "not a whole number"),
        ("0.1", "not a number of BTC"),
        (True, "not a number of BTC"),
        (None, "not a number of BTC"),
    ],
)
def test_what_is_not_an_amount_is_refused_naming_the_call(btc: object, why: str) -> None:
    with pytest.raises(RpcError) as refused:
        bitcoin.satoshis(btc, "gettxout")
    assert why in str(refused.value) and str(refused.value).startswith("gettxout: ")
    assert "names a Bitcoin node" in str(refused.value)  # what to do next


@pytest.mark.parametrize(
    "url, shown",
    [
        (f"http://{USER}:{PASSWORD}@127.0.0.1:18443", "http://127.0.0.1:18443"),
        (f"http://{USER}:{PASSWORD}@127.0.0.1:18443/wallet/x?y=1", "http://127.0.0.1:18443/wallet/x?y=1"),
        ("https://user:p@ss@node.example:443/", "https://node.example:443/"),  # an unescaped @ in the password
        ("http://only-user@127.0.0.1:1", "http://127.0.0.1:1"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        (
            "http://127.0.0.1:8545/path@with-at",
            "http://127.0.0.1:8545/path@with-at",
        ),  # an @ past the host is no userinfo
        ("not a url", "not a url"),
    ],
)
def test_a_url_is_shown_without_its_user_and_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


async def _btcd_like(handle: Callable[[str, list[Any]], Any]) -> tuple[web.AppRunner, str]:
    """A node that answers as btcd does: a text 401 without the right basic auth; JSON-RPC 1.0's
    envelope ("error": null beside a result, "result": null beside an error)."""

    async def serve(request: web.Request) -> web.StreamResponse:
        wanted = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != wanted:
            return web.Response(status=401, text="401 Unauthorized.\n")
        body = await request.json()
        try:
            result, error = handle(body["method"], body["params"]), None
        except RpcError as exc:
            result, error = None, {"code": exc.code, "message": exc.message}
        return web.json_response({"jsonrpc": "2.0", "result": result, "error": error, "id": body["id"]})

    return await rpc_node(serve)


def _ask(url_of: Callable[[str], str], method: str, *params: Any) -> object:
    """What ``JsonRpc(url_of(the node's URL)).call(method, *params)`` returned or raised."""

    def handle(method: str, params: list[Any]) -> Any:
        if method == "getblockcount":
            return 101
        raise RpcError(method, -5, "No information available about transaction")

    async def go() -> object:
        runner, url = await _btcd_like(handle)
        node = JsonRpc(url_of(url), timeout_s=10)
        try:
            return await node.call(method, *params)
        except (RpcError, RpcUnavailable) as exc:
            return exc
        finally:
            await node.close()
            await runner.cleanup()

    return asyncio.run(go())


def _with_credentials(password: str) -> Callable[[str], str]:
    return lambda url: url.replace("http://", f"http://{USER}:{password}@")


def test_json_rpc_sends_the_urls_user_and_password_and_reads_btcds_envelope() -> None:
    assert _ask(_with_credentials(PASSWORD), "getblockcount") == 101
    refused = _ask(_with_credentials(PASSWORD), "getrawtransaction", "00" * 32, 1)
    assert isinstance(refused, RpcError) and (refused.code, refused.message) == (
        -5,
        "No information available about transaction",
    )


def test_a_wrong_password_is_unavailable_and_named_without_the_password() -> None:
    wrong = _ask(_with_credentials("not-" + PASSWORD), "getblockcount")
    assert isinstance(wrong, RpcUnavailable)
    assert "HTTP 401" in str(wrong) and "user and password" in str(wrong)
    assert PASSWORD not in str(wrong) and USER not in str(wrong)


def test_an_unreachable_node_is_named_without_its_password() -> None:
    async def go() -> RpcUnavailable:
        node = JsonRpc(f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}", timeout_s=5)  # nothing listens there
        try:
            await node.call("sendrawtransaction", "00")
        except RpcUnavailable as exc:
            return exc
        finally:
            await node.close()
        raise AssertionError("a node that is gone answered")

    unreachable = asyncio.run(go())
    assert "unreachable" in str(unreachable) and "http://127.0.0.1:" in str(unreachable)
    assert PASSWORD not in str(unreachable) and USER not in str(unreachable)


def _home_with_node(tmp_path: Path, url: str) -> Settings:
    settings = dataclasses.replace(Settings(), home=tmp_path, rpc_url="http://127.0.0.1:18545", rpc_urls={})
    settings.bitcoin_info.parent.mkdir(parents=True)
    settings.bitcoin_info.write_text(json.dumps({"rpc": url}))
    return settings


def test_the_local_node_is_read_from_the_home_unless_a_url_is_set(tmp_path: Path) -> None:
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:18443"
    settings = _home_with_node(tmp_path, url)
    assert settings.rpc_url_for("bitcoin-regtest") == url
    assert settings.bitcoin_rpc_url("bitcoin-regtest") == url
    elsewhere = dataclasses.replace(settings, rpc_urls={"BITCOIN_REGTEST": "http://u:p@10.0.0.1:18443"})
    assert elsewhere.rpc_url_for("bitcoin-regtest") == "http://u:p@10.0.0.1:18443"
    with pytest.raises(RuntimeError, match="set WARDEN_RPC_URL_BITCOIN"):
        settings.rpc_url_for("bitcoin")  # mainnet: never the local node, never the EVM default
    settings.bitcoin_info.unlink()
    with pytest.raises(RuntimeError, match="the local Bitcoin node is not running"):
        settings.rpc_url_for("bitcoin-regtest")


def test_warden_ups_nodes_list_the_bitcoin_node_without_its_password(tmp_path: Path) -> None:
    settings = _home_with_node(tmp_path, f"http://{USER}:{PASSWORD}@127.0.0.1:18443")
    (node,) = [n for n in local_nodes(settings, ["broker", "anvil", "bitcoin"]) if n["family"] == "bitcoin"]
    assert node == {
        "family": "bitcoin",
        "chain": "bitcoin-regtest",
        "process": "bitcoin",
        "rpc_url": "http://127.0.0.1:18443",
        "credentials": str(settings.bitcoin_info),
    }
    assert [n["chain"] for n in local_nodes(settings, ["anvil"])] == ["anvil"]  # not running: not listed


class Answers:
    """A node that is a table: ``answers[(method, *params)]``; an absent key is btcd's -5."""

    def __init__(self, answers: dict[tuple[Any, ...], Any]):
        self.answers = answers

    async def call(self, method: str, *params: Any) -> Any:
        key = (method, *(json.dumps(p) if isinstance(p, list) else p for p in params))
        if key not in self.answers:
            raise RpcError(method, bitcoin.NO_INFORMATION, "No information available")
        return self.answers[key]


A = p2wpkh(PrivateKey(b"\x01" * 32).get_public_key())
ADDRESS = A.address(NETWORKS["regtest"])
OTHER = p2wpkh(PrivateKey(b"\x02" * 32).get_public_key())


def _tx(
    txid: str, outputs: list[bytes], spends: tuple[tuple[str, int], ...] = (), coinbase: bool = False
) -> dict[str, Any]:
    vin = [{"coinbase": "51"}] if coinbase else [{"txid": t, "vout": n} for t, n in spends]
    vout = [{"n": n, "value": 1, "scriptPubKey": {"hex": s.hex()}} for n, s in enumerate(outputs)]
    return {"txid": txid, "vin": vin, "vout": vout}


def _out(btc: float, script: bytes, confirmations: int, coinbase: bool = False) -> dict[str, Any]:
    return {"value": btc, "scriptPubKey": {"hex": script.hex()}, "confirmations": confirmations, "coinbase": coinbase}


def test_unspent_reads_the_history_leaves_out_what_is_spent_or_immature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bitcoin, "HISTORY_PAGE", 2)
    a, o = A.data, OTHER.data
    history = [
        _tx("aa" * 32, [a], coinbase=True),  # mature coinbase
        _tx("bb" * 32, [a], coinbase=True),  # immature coinbase
        _tx("cc" * 32, [o, a]),  # pays the address at output 1
        _tx("dd" * 32, [a]),  # spent, by ee's mempool transaction on the next page, which gettxout does not see
        _tx("ee" * 32, [o], spends=(("dd" * 32, 0),)),
    ]
    answers: dict[tuple[Any, ...], Any] = {
        ("searchrawtransactions", ADDRESS, 1, skip, 2): history[skip : skip + 2] for skip in (0, 2, 4)
    }
    answers |= {
        ("gettxout", "aa" * 32, 0, True): _out(50, a, 100, coinbase=True),
        ("gettxout", "bb" * 32, 0, True): _out(50, a, 99, coinbase=True),
        ("gettxout", "cc" * 32, 1, True): _out(0.1, a, 0),
        ("gettxout", "dd" * 32, 0, True): _out(1e-08, a, 3),
    }
    found = asyncio.run(bitcoin.unspent(Answers(answers), ADDRESS))
    assert found == [
        bitcoin.Utxo("aa" * 32, 0, 5_000_000_000, a, 100),
        bitcoin.Utxo("cc" * 32, 1, 10_000_000, a, 0),
    ]
    enough = asyncio.run(bitcoin.unspent(Answers(answers), ADDRESS, enough=5_000_000_000))
    assert [u.txid for u in enough] == ["aa" * 32]  # the first page held enough
    assert asyncio.run(bitcoin.unspent(Answers({}), ADDRESS)) == []  # no history: btcd's -5


def test_a_transaction_the_node_does_not_know_is_none_and_the_mempools_is_unconfirmed() -> None:
    node = Answers(
        {
            ("getrawtransaction", "aa" * 32, 1): {"txid": "aa" * 32},
            ("getrawtransaction", "bb" * 32, 1): {"txid": "bb" * 32, "blockhash": "00" * 32, "confirmations": 3},
            ("testmempoolaccept", json.dumps(["00"]), bitcoin.TEST_MAX_FEE_RATE): [
                {"allowed": False, "reject-reason": "bad-txns-inputs-missingorspent"}
            ],
        }
    )
    assert asyncio.run(bitcoin.transaction(node, "aa" * 32)) == bitcoin.TxStatus(0, None)
    assert asyncio.run(bitcoin.transaction(node, "bb" * 32)) == bitcoin.TxStatus(3, "00" * 32)
    assert asyncio.run(bitcoin.transaction(node, "cc" * 32)) is None
    assert asyncio.run(bitcoin.test_accept(node, b"\x00")) == "bad-txns-inputs-missingorspent"


def test_the_funders_payment_pays_exactly_the_amount_with_change_back() -> None:
    seed = bytearray(b"\x03" * 32)
    public = wallet.public_key(seed)
    own = wallet.own_scripts(public).p2wpkh
    coins = [bitcoin.Utxo(f"{n:02x}" * 32, 0, 5_000_000_000, own, 150 - n) for n in range(1, 4)]
    raw = fund._payment(seed, coins, A.data, 6_000_000_000)
    tx = Transaction.parse(raw)
    assert [(i.txid.hex(), i.vout) for i in tx.vin] == [
        (c.txid, 0) for c in coins[:2]
    ]  # largest first (here all alike), as many as needed
    (paid, change) = tx.vout
    assert (paid.value, paid.script_pubkey.data) == (6_000_000_000, A.data)
    assert change.script_pubkey.data == own
    fee = 10_000_000_000 - 6_000_000_000 - change.value
    whole = len(raw)
    stripped = whole - 2 - sum(len(i.witness.serialize()) for i in tx.vin)  # no marker, flag nor witnesses
    vsize = math.ceil((3 * stripped + whole) / 4)
    assert fund.FUND_FEE_RATE * vsize <= fee <= fund.FUND_FEE_RATE * (vsize + 4)  # signatures of 71 or 72 bytes
    assert all(len(i.witness.items) == 2 and i.witness.items[1] == public for i in tx.vin)
    with pytest.raises(fund.FundError, match="the funder cannot pay 150 BTC: the wallet holds 15000000000 satoshis"):
        fund._payment(seed, coins, A.data, 150 * 10**8)


def test_fund_pays_to_a_regtest_address_only() -> None:
    assert fund._regtest_script(ADDRESS) == A.data
    assert fund._regtest_script(ADDRESS.upper()) == A.data
    for elsewhere in (A.address(NETWORKS["main"]), A.address(NETWORKS["test"]), "bcrt1qnotanaddress"):
        with pytest.raises(fund.FundError, match="is not an address on regtest"):
            fund._regtest_script(elsewhere)


def test_fund_on_a_bitcoin_node_that_is_not_the_local_one_says_to_send_a_payment(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), home=tmp_path, rpc_urls={"BITCOIN": "http://u:p@127.0.0.1:1"})
    with pytest.raises(fund.FundError) as refused:
        asyncio.run(fund.fund(settings, "bitcoin", "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", 1000))
    assert "is not the local regtest node" in str(refused.value)
    assert "send bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu a payment from a wallet of yours" in str(refused.value)


def _batch_answered(reply: Callable[[list[dict[str, Any]]], Any], calls: list[tuple[Any, ...]]) -> tuple[object, int]:
    """What ``JsonRpc.batch("gettxout", calls)`` returned or raised against a node that answers each
    request's body with ``reply(body)``, and how many requests the node got."""
    requests = 0

    async def serve(request: web.Request) -> web.StreamResponse:
        nonlocal requests
        requests += 1
        return web.json_response(reply(await request.json()))

    async def go() -> object:
        runner, url = await rpc_node(serve)
        node = JsonRpc(url, timeout_s=10)
        try:
            return await bitcoin.tx_outs(node, [(txid, vout) for txid, vout, *_ in calls])
        except (RpcError, RpcUnavailable) as exc:
            return exc
        finally:
            await node.close()
            await runner.cleanup()

    return asyncio.run(go()), requests


def test_many_outputs_are_asked_in_one_batch_and_answered_in_their_order() -> None:
    """btcd answers a batch as JSON-RPC 2.0 allows, in any order: each answer goes by its id."""
    a = A.data
    held = {("aa" * 32, 1): _out(0.5, a, 7), ("cc" * 32, 0): _out(1e-08, a, 1)}

    def answers(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
        assert [c["method"] for c in body] == ["gettxout"] * len(body)
        return [
            {"jsonrpc": "2.0", "id": c["id"], "result": held.get(tuple(c["params"][:2])), "error": None}
            for c in reversed(body)
        ]

    calls: list[tuple[Any, ...]] = [("aa" * 32, 1), ("bb" * 32, 0), ("cc" * 32, 0)]
    got, requests = _batch_answered(answers, calls)
    assert requests == 1
    assert got == [bitcoin.TxOut(50_000_000, a, 7, False), None, bitcoin.TxOut(1, a, 1, False)]


@pytest.mark.parametrize(
    ("reply", "raised", "words"),
    [
        # One call of the batch refused: the batch is refused, naming the method and the node's reason.
        (
            lambda body: [{"id": c["id"], "result": None, "error": {"code": -8, "message": "bad txid"}} for c in body],
            RpcError,
            "gettxout: bad txid (code -8)",
        ),
        # A node that takes no batch answers one error for the whole request.
        (
            lambda body: {"id": None, "result": None, "error": {"code": -32600, "message": "no batch"}},
            RpcError,
            "no batch",
        ),
        (lambda body: [{"id": body[0]["id"], "result": None, "error": None}], RpcError, "answered 1 of the batch's 2"),
        (lambda body: {"result": 7, "error": None}, RpcUnavailable, "without a JSON-RPC batch reply to 2 calls"),
    ],
)
def test_a_batch_the_node_does_not_answer_in_full_is_refused(
    reply: Callable[[list[dict[str, Any]]], Any], raised: type[Exception], words: str
) -> None:
    got, _ = _batch_answered(reply, [("aa" * 32, 0), ("bb" * 32, 0)])
    assert isinstance(got, raised) and words in str(got), got
