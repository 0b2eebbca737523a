"""Bitcoin under the same judge, on the real stack and a real regtest node (btcd): an agent's key
from custody (`warden keys provision --chain bitcoin`), its wallet funded (`warden fund`), a policy
from the plain options in satoshis' currency, a payment with `warden submit --to --value
--broadcast` mined and final on the node; and refused, with nothing moved on the node, for a
stranger's address, an amount over the cap, a fee that drains, an input the agent does not own and
a change output to a foreign script (PSBTs written here with embit, an independent writer); and a
payment no block can hold yet keeps its coin from a second intent."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from mcp import ClientSession
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult

from btc import wallet
from infra.stack.local import LocalStack, free_port
from runtime import bitcoin
from runtime.config import Settings
from runtime.rpc import JsonRpc
from schemas.codes import Code
from schemas.stages import Stage
from tests.bitcoin_signer_support import PlainAgent, cli_json, embit_psbt, plain_agent, shown, stranger
from tests.support import serving, warden, warden_mcp

CHAIN = "bitcoin-regtest"
BTC = 10**8

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def _unspent(settings: Settings, run: Run, address: str) -> list[bitcoin.Utxo]:
    async def read() -> list[bitcoin.Utxo]:
        node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=30)
        try:
            return await bitcoin.unspent(node, address)
        finally:
            await node.close()

    found: list[bitcoin.Utxo] = run(read())
    return found


def _outcome(done: Any) -> Any:
    assert done.returncode in (0, 1), done.stderr
    return orjson.loads(done.stdout)["outcome"]


def _submit(settings: Settings, agent: str, *how: str) -> Any:
    return _outcome(
        warden(
            settings, "submit", "--agent", agent, "--chain", CHAIN, *how, "--broadcast", "--timeout", "120", "--json"
        )
    )


def _psbt(tmp: Path, coins: Sequence[bitcoin.Utxo], outputs: Sequence[tuple[bytes, int]], locktime: int = 0) -> str:
    """A PSBT spending ``coins`` to ``outputs`` (script, satoshis), written to a file: its path."""
    path = tmp / f"{os.urandom(4).hex()}.psbt"
    path.write_text(base64.b64encode(embit_psbt(coins, outputs, locktime)).decode())
    return str(path)


@pytest.fixture(scope="module")
def btc_agent(stack: LocalStack) -> PlainAgent:
    """An agent made with the plain commands: its Bitcoin key, 1 BTC from the node and another 0.5
    (two coins: a sign-only payment holds the coin it spends until it is final), and a policy
    paying bob, at most 0.3 BTC a payment and 0.5 BTC a day (fees included), the default fee
    ceilings (100,000 satoshis, 100 sat/vB)."""
    settings = stack.settings
    agent = f"plain-btc-{os.urandom(3).hex()}"
    key = cli_json(warden(settings, "keys", "provision", "--agent", agent, "--chain", "bitcoin", "--json"))
    public_key = key["public_key_hex"]
    # The addresses it prints are those the signer signs for: P2WPKH and P2TR, per network.
    address, taproot = key["networks"][CHAIN]
    assert (address, taproot) == wallet.addresses(bytes.fromhex(public_key), "regtest")
    assert (
        key["networks"]["bitcoin"][0] == key["address"]
        and address.startswith("bcrt1q")
        and taproot.startswith("bcrt1p")
    )
    funded = cli_json(warden(settings, "fund", "--agent", agent, "--chain", CHAIN, "--value", "1", "--json"))
    assert (funded["address"], funded["balance"], funded["unit"]) == (address, str(BTC), "satoshis"), funded
    cli_json(warden(settings, "fund", "--agent", agent, "--chain", CHAIN, "--value", "0.5", "--json"))
    bob, bob_script = stranger()
    created = warden(
        settings, "agents", "create", "--agent", agent, "--chains", CHAIN, "--allowlist", bob,
        "--max-value", "0.3", "--daily-limit", "0.5",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    return PlainAgent(agent, public_key, address, bob, bob_script)


def test_an_agent_pays_with_the_plain_commands_and_it_is_mined_and_final(
    stack: LocalStack, btc_agent: PlainAgent, run: Run
) -> None:
    settings = stack.settings
    agent = btc_agent.agent_id
    policy = cli_json(warden(settings, "agents", "show", "--agent", agent, "--json"))["bitcoin"]
    assert (policy["public_key"], policy["allowlist"]) == (btc_agent.public_key, [btc_agent.bob])
    assert (policy["max_sats_per_tx"], policy["daily_limit_sats"]) == (str(3 * BTC // 10), str(BTC // 2))

    paid = _submit(settings, agent, "--to", btc_agent.bob, "--value", "0.1")
    assert (paid["status"], paid["final"], paid["public_key"]) == ("mined", True, btc_agent.public_key), paid
    assert paid["confirmations"] >= 3 and paid["block_hash"], paid
    assert int(paid["spend"]["BTC"]) == BTC // 10 + paid["fee_sats"] and 0 < paid["fee_sats"] <= 100_000
    received = _unspent(settings, run, btc_agent.bob)
    assert [(u.txid, u.amount) for u in received] == [(paid["txid"], BTC // 10)]
    change = _unspent(settings, run, btc_agent.address)
    assert sum(u.amount for u in change) == BTC + BTC // 2 - BTC // 10 - paid["fee_sats"]

    listed = cli_json(warden(settings, "txs", "list", "--agent", agent, "--json"))
    assert [(t["intent_id"], t["chain"], t["txid"]) for t in listed["transactions"]] == [
        (paid["intent_id"], CHAIN, paid["txid"])
    ]
    shown = cli_json(warden(settings, "txs", "show", paid["txid"], "--agent", agent, "--json"))
    assert (shown["intent_id"], shown["status"], shown["final"]) == (paid["intent_id"], "mined", True)


def test_what_the_policy_does_not_allow_is_refused_and_nothing_moves(
    stack: LocalStack, btc_agent: PlainAgent, run: Run, tmp_path: Path
) -> None:
    settings = stack.settings
    agent = btc_agent.agent_id
    mallory, mallory_script = stranger()
    coins = _unspent(settings, run, btc_agent.address)
    assert coins, "the agent's wallet is funded"
    before = sorted((u.txid, u.vout, u.amount) for u in coins)
    own = wallet.own_scripts(bytes.fromhex(btc_agent.public_key))
    held = sum(c.amount for c in coins)

    to_mallory = _submit(settings, agent, "--to", mallory, "--value", "0.01")
    assert to_mallory["code"] == Code.RECIPIENT_NOT_ALLOWLISTED, to_mallory
    over = _submit(settings, agent, "--to", btc_agent.bob, "--value", "0.35")
    assert over["code"] == Code.VALUE_OVER_CAP, over

    # A fee that drains: 0.01 BTC to bob, and 0.002 BTC more left to the miner than the ceiling allows.
    drain = _psbt(tmp_path, coins, [(btc_agent.bob_script, BTC // 100), (own.p2wpkh, held - BTC // 100 - 200_000)])
    drained = _submit(settings, agent, "--bitcoin-psbt", drain)
    assert drained["code"] == Code.BITCOIN_FEE_OVER_CEILING and "200000 satoshis" in drained["reason"], drained

    # Change to a foreign script: the "change" output pays mallory.
    foreign = _psbt(tmp_path, coins, [(btc_agent.bob_script, BTC // 100), (mallory_script, held - BTC // 100 - 500)])
    changed = _submit(settings, agent, "--bitcoin-psbt", foreign)
    assert changed["code"] == Code.RECIPIENT_NOT_ALLOWLISTED and "output 1 pays" in changed["reason"], changed

    # An input the agent does not own: bob's coin from the first payment (or any of bob's), to mallory.
    bobs = _unspent(settings, run, btc_agent.bob) or _fund(settings, btc_agent.bob, run)
    theirs = _psbt(tmp_path, bobs[:1], [(own.p2wpkh, bobs[0].amount - 500)])
    taken = _submit(settings, agent, "--bitcoin-psbt", theirs)
    assert taken["code"] == Code.BITCOIN_INPUT_NOT_OWNED and "input 0" in taken["reason"], taken

    time.sleep(4)  # a payment signed in spite of a refusal would have been mined by now
    assert _unspent(settings, run, mallory) == []
    assert sorted((u.txid, u.vout, u.amount) for u in _unspent(settings, run, btc_agent.address)) == before


def _fund(settings: Settings, address: str, run: Run) -> list[bitcoin.Utxo]:
    cli_json(warden(settings, "fund", "--address", address, "--chain", CHAIN, "--value", "0.05", "--json"))
    return _unspent(settings, run, address)


@pytest.fixture(scope="module")
def api(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`warden api` on the stack: its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    with serving(stack.settings, ["api", "--listen", f"127.0.0.1:{port}", "--timeout", "120"], port, log, "warden api"):
        yield f"http://127.0.0.1:{port}"


def test_the_transactions_endpoint_pays_btc_from_chain_to_and_value(
    stack: LocalStack, btc_agent: PlainAgent, api: str, run: Run
) -> None:
    settings = stack.settings
    agent = btc_agent.agent_id
    mallory, _ = stranger()
    key = cli_json(warden(settings, "agents", "api-key", "--agent", agent, "--json"))["api_key"]
    mainnet_bob = wallet.addresses(bytes.fromhex(btc_agent.public_key), "main")[0]
    received = sum(u.amount for u in _unspent(settings, run, btc_agent.bob))

    async def scenario() -> dict[str, tuple[int, Any]]:
        seen = {}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{api}/v1/auth/agent-token", json={"agent_id": agent, "api_key": key}) as answer:
                auth = {"Authorization": f"Bearer {(await answer.json())['access_token']}"}
            base = f"{api}/v1/agents/{agent}/transactions"
            for what, path, body in (
                ("signed", f"{base}/sign", {"chain": CHAIN, "to": btc_agent.bob, "value": "0.01"}),
                ("stranger", base, {"chain": CHAIN, "to": mallory, "value": "0.01"}),
                ("over the cap", base, {"chain": CHAIN, "to": btc_agent.bob, "value": "0.31"}),
                ("finer than a satoshi", base, {"chain": CHAIN, "to": btc_agent.bob, "value": "0.000000001"}),
                ("another network's address", base, {"chain": CHAIN, "to": mainnet_bob, "value": "0.01"}),
                ("no address", base, {"chain": CHAIN, "to": "bcrt1qqqqqqqqqqqqqqqqqqq", "value": "0.01"}),
                # Last: the agent's one coin is spent in the mempool until the next block.
                ("sent", base, {"chain": CHAIN, "to": btc_agent.bob, "value": "0.02"}),
            ):
                async with http.post(path, json=body, headers=auth) as answer:
                    seen[what] = (answer.status, await answer.json())
        return seen

    seen: dict[str, tuple[int, Any]] = run(scenario())
    status, signed = seen["signed"]
    assert (status, signed["status"], signed["final"]) == (201, "sign_only", True), signed
    status, sent = seen["sent"]
    assert status == 201 and sent["status"] in ("broadcast", "mined"), sent
    assert int(sent["spend"]["BTC"]) == 2 * BTC // 100 + sent["fee_sats"] and sent["public_key"] == btc_agent.public_key
    for case, code in (("stranger", Code.RECIPIENT_NOT_ALLOWLISTED), ("over the cap", Code.VALUE_OVER_CAP)):
        assert (seen[case][0], seen[case][1]["code"]) == (403, code), (case, seen[case])
    status, doc = seen["finer than a satoshi"]
    assert status == 400 and [f["field"] for f in doc["fields"]] == ["value"], doc
    status, doc = seen["another network's address"]
    assert status == 422 and doc["detail"].startswith("to: ") and "another Bitcoin network" in doc["detail"], doc
    status, doc = seen["no address"]
    assert status == 422 and "must be a Bitcoin address" in doc["detail"] and "checksum" in doc["detail"], doc
    deadline = time.monotonic() + 60
    while sum(u.amount for u in _unspent(settings, run, btc_agent.bob)) < received + 2 * BTC // 100:
        assert time.monotonic() < deadline, "the payment was never mined"
        time.sleep(0.5)
    assert _unspent(settings, run, mallory) == []


def test_a_payment_no_block_can_hold_yet_holds_its_coin_and_a_replacement_is_refused(
    stack: LocalStack, run: Run, tmp_path: Path
) -> None:
    """A payment no block can hold yet (locked 1,000 blocks ahead: regtest's mempool takes it, its
    miner leaves it out) waits in broadcast, and its coin stays its own: a second payment spending
    the same coin at a higher fee (what a BIP-125 replacement would be) is refused
    BITCOIN_INPUT_CLAIMED, naming the first, so no two intents ever claim one coin's spend."""
    settings = stack.settings
    agent = plain_agent(settings, "locked-btc", ("0.5",), "--max-value", "0.3")
    (coin,) = _unspent(settings, run, agent.address)
    own = wallet.own_scripts(bytes.fromhex(agent.public_key))

    async def height() -> int:
        node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=30)
        try:
            return await bitcoin.block_count(node)
        finally:
            await node.close()

    locked = _psbt(
        tmp_path,
        [coin],
        [(agent.bob_script, BTC // 100), (own.p2wpkh, coin.amount - BTC // 100 - 1_000)],
        run(height()) + 1_000,
    )
    sent = warden(
        settings, "submit", "--agent", agent.agent_id, "--chain", CHAIN, "--bitcoin-psbt", locked,
        "--broadcast", "--no-wait", "--json",
    )  # fmt: skip
    first = cli_json(sent)["intent"]["intent_id"]
    shown(settings, agent.agent_id, first, lambda r: r["status"] == "broadcast", "in the mempool")
    time.sleep(3)  # blocks are mined meanwhile; none holds it
    waiting = shown(settings, agent.agent_id, first, lambda _: True, "still waiting")
    assert (waiting["status"], waiting["final"], waiting["block_hash"]) == ("broadcast", False, None), waiting

    replacement = _psbt(
        tmp_path, [coin], [(agent.bob_script, 2 * BTC // 100), (own.p2wpkh, coin.amount - 2 * BTC // 100 - 2_000)]
    )
    refused = _submit(settings, agent.agent_id, "--bitcoin-psbt", replacement)
    assert (refused["stage"], refused["code"]) == (Stage.BITCOIN, Code.BITCOIN_INPUT_CLAIMED), refused
    assert first in refused["reason"] and f"{coin.txid}:{coin.vout}" in refused["reason"], refused
    still = shown(settings, agent.agent_id, first, lambda _: True, "still waiting")
    assert (still["status"], still["final"]) == ("broadcast", False), still
    assert [u for u in _unspent(settings, run, agent.bob) if u.confirmations] == []  # in the mempool only


def test_an_mcp_client_pays_btc_mined_and_final_and_is_refused_a_stranger(
    stack: LocalStack, btc_agent: PlainAgent, run: Run, tmp_path: Path
) -> None:
    """A real MCP client session with `warden mcp` for the agent: pay_bitcoin, on a Bitcoin network
    and on an EVM one."""
    settings = stack.settings
    mallory, _ = stranger()
    received = sum(u.amount for u in _unspent(settings, run, btc_agent.bob))

    async def calls() -> tuple[set[str], CallToolResult, CallToolResult, CallToolResult]:
        with open(tmp_path / "mcp.log", "w") as errlog:
            server = warden_mcp(settings, btc_agent.agent_id)
            async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                tools = {tool.name for tool in (await session.list_tools()).tools}

                async def call(**arguments: Any) -> CallToolResult:
                    return await session.call_tool("pay_bitcoin", arguments, read_timeout_seconds=150)

                refused = await call(chain=CHAIN, to=mallory, value="0.01")
                paid = await call(chain=CHAIN, to=btc_agent.bob, value="0.03")
                return tools, refused, paid, await call(chain="anvil", to=btc_agent.bob, value="0.01")

    tools, refused, paid, elsewhere = run(calls())
    assert "pay_bitcoin" in tools
    no = refused.structured_content
    assert no is not None and (no["status"], no["refusal"]["stage"], no["refusal"]["code"]) == (
        "refused",
        Stage.BITCOIN,
        Code.RECIPIENT_NOT_ALLOWLISTED,
    ), refused.content
    done = paid.structured_content
    assert done is not None and (done["status"], done["final"]) == ("mined", True), paid.content
    assert done["public_key"] == btc_agent.public_key and int(done["spend"]["BTC"]) == 3 * BTC // 100 + done["fee_sats"]
    assert sum(u.amount for u in _unspent(settings, run, btc_agent.bob)) == received + 3 * BTC // 100
    assert elsewhere.is_error and "pay_bitcoin pays on a Bitcoin network" in elsewhere.content[0].text
    assert _unspent(settings, run, mallory) == []
