"""The analysts' and auditors' pages on the real stack, served in a bare aiohttp app (no console
server: its session check is not theirs): an agent's intents mined and final, refused at the
allowlist and parked for an admin each show where they stand; the refusal's code is charted per
day; the agent's spend is charted against its daily limit; the ledger verifies; the mined
intent's receipt holds and a tampered copy fails its inclusion check. The decisions page, drawn by
the console's own app for the stack's passkey admin, heads each parked intent (ETH priced by a
feed on Anvil, an ERC-20 token, SOL, BTC) with what it moves, in the asset's symbol and decimals."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.keypair import Keypair

from btc import wallet
from gateway.console import analyst, auditor
from gateway.console.data import LedgerSource, Transaction
from gateway.console.security import cookie_name
from gateway.console.server import build_app
from gateway.console.state import Console
from infra import contracts
from infra.cli.fund import fund
from infra.stack.local import LocalStack, free_port
from infra.stack.provision import provision_bitcoin_agent, provision_solana_agent
from ledger.receipt import Receipt
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas import topics
from schemas.actions import AuditAction
from schemas.emit import Emit
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentParked, IntentRejected
from schemas.stages import Stage
from sdk.client import Client, new_intent, wait_outcomes
from sdk.records import ReceiptUnavailable, outcome_receipt
from sdk.transfers import transfer_fields
from tests.passkey_support import ORIGIN, PARTY, PASSKEY_ADMIN
from tests.support import make_agent, warden
from tests.token_support import DEPLOYER, on_anvil, token_assets

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
STRANGER = "0x000000000000000000000000000000000000dEaD"
SOLANA, BITCOIN = "solana-local", "bitcoin-regtest"
# A compressed secp256k1 public key (the generator point's): the stranger a Bitcoin agent pays.
BTC_STRANGER = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
T = TypeVar("T")
# Above 0.5 an intent waits for an admin; at most 5 a day.
POLICY: dict[str, Any] = {
    "tx_to_allowlist": (DEST,),
    "tx_max_value_eth": "1",
    "tx_daily_limit_eth": "5",
    "approval_threshold_eth": "0.5",
}


def _row(html: str, intent_id: str) -> str:
    """The transactions table's row of ``intent_id``."""
    rows = [row for row in html.split("<tr>") if f"<code>{intent_id}</code>" in row]
    assert len(rows) == 1, html
    return rows[0]


async def _until(what: Callable[[], Awaitable[T]], ready: Callable[[T], bool], timeout_s: float = 90) -> T:
    """``await what()`` again until ``ready(answer)``, for up to ``timeout_s``: the ledger appends
    and checkpoints a moment after the services speak."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer: T | None
        try:
            answer = await what()
        except ReceiptUnavailable:
            answer = None
        if answer is not None and ready(answer):
            return answer
        assert time.monotonic() < deadline, answer
        await asyncio.sleep(1)


def _tampered(receipt: str) -> str:
    """The receipt with its audit row saying the transaction failed: the row no longer hashes to its leaf."""
    head, rest = receipt.split("\n", 1)
    extra, rest = rest.split("\n", 1)
    row = orjson.loads(base64.b64decode(extra.removeprefix("extra ")))
    row["action"] = AuditAction.TX_FAILED
    return f"{head}\nextra {base64.b64encode(orjson.dumps(row)).decode()}\n{rest}"


async def _scenario(settings: Settings, agent: str, key: Ed25519PrivateKey) -> tuple[dict[str, str], str]:
    """Three intents: one mined and final, one refused at the allowlist, one parked above the
    approval threshold; once the ledger holds them, the mined one's receipt (of its tx.final)."""
    mined = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.01", broadcast=True)
    refused = new_intent(key, agent_id=agent, chain="anvil", to=STRANGER, value="0.01")
    parked = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.6")
    async with Client(settings) as client:
        for intent in (mined, refused, parked):
            await client.submit(intent)
    outcomes = await wait_outcomes(settings, [mined, refused], 90, until_final_block=True)
    rejection = outcomes[refused.intent_id]
    assert isinstance(rejection, IntentRejected) and rejection.stage == Stage.ALLOWLIST, rejection
    receipt = await _until(
        lambda: outcome_receipt(settings, mined.intent_id, agent, mined.digest()),
        lambda text: Receipt.parse(text).event["action"] == AuditAction.TX_FINAL,
    )
    ids = {
        "mined": mined.intent_id,
        "digest": mined.digest(),
        "refused": refused.intent_id,
        "parked": parked.intent_id,
        "code": rejection.code,
    }
    return ids, receipt


async def _pages(source: LedgerSource, agent: str, receipt: str, expected: dict[str, str]) -> dict[str, str]:
    app = web.Application()
    analyst.add_routes(app, source)
    auditor.add_routes(app, source)
    pages = {}
    async with TestClient(TestServer(app, host="127.0.0.1", port=free_port())) as client:
        for name, path in (
            ("transactions", f"/transactions?agent={agent}"),
            ("spend", f"/spend?agent={agent}"),
            ("refusals", "/refusals"),
            ("ledger", "/ledger"),
            ("form", "/ledger/receipt"),
        ):
            response = await client.get(path)
            assert response.status == 200, (path, await response.text())
            pages[name] = await response.text()
        for name, text in (("receipt", receipt), ("tampered", _tampered(receipt))):
            response = await client.post("/ledger/receipt", data={"receipt": text, "csrf": "", **expected})
            assert response.status == 200, await response.text()
            pages[name] = await response.text()
    return pages


def test_the_pages_show_what_the_ledger_holds(stack: LocalStack, run: Callable[..., Any]) -> None:
    settings = stack.settings
    agent = f"agent-console-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, **POLICY))
    ids, receipt = run(_scenario(settings, agent, key))
    source = LedgerSource.from_settings(settings)

    def ledger_has_all(found: list[Transaction]) -> bool:
        return {t.intent_id: t.status for t in found} == {
            ids["mined"]: "mined",
            ids["refused"]: "refused",
            ids["parked"]: "parked",
        } and all(t.final for t in found if t.intent_id == ids["mined"])

    run(_until(lambda: source.transactions(agent), ledger_has_all))
    # The receipt checked as the mined intent's: its id, agent and digest named in the form.
    expected = {"intent_id": ids["mined"], "agent_id": agent, "intent_digest": ids["digest"]}
    pages = run(_pages(source, agent, receipt, expected))

    txs = pages["transactions"]
    assert 'data-status="mined">mined, final<' in _row(txs, ids["mined"])
    refused = _row(txs, ids["refused"])
    assert 'data-status="refused"' in refused and f"<code>{ids['code']}</code>" in refused
    assert f'<td class="stage">{Stage.ALLOWLIST}</td>' in refused
    assert 'data-status="parked"' in _row(txs, ids["parked"])
    assert all("signed_tx" not in html for html in pages.values())

    assert ids["code"] in pages["refusals"] and '<svg class="chart"' in pages["refusals"]
    # The agent's native spend today: one bar (the parked intent is not signed), under the limit's line.
    spend = pages["spend"]
    assert re.search(rf"<h2>{agent} <small>policy v\d+</small></h2>", spend), spend  # its policy in force, read
    native = spend.split("<h3>native")[1].split("<h3>")[0]
    assert len(re.findall(r'<rect class="bar s0"', native)) == 1 and '<line class="limit"' in native
    assert "daily limit 5000000000000000000 wei (5 native)" in native

    assert 'class="verdict ok" data-ok="true">Verified' in pages["ledger"], pages["ledger"]
    assert '<input type="hidden" name="csrf"' in pages["form"]
    assert 'data-ok="true">The receipt holds' in pages["receipt"] and 'data-ok="false"' not in pages["receipt"]
    assert f"its event is about intent {ids['mined']} of agent {agent}" in pages["receipt"]
    tampered = pages["tampered"]
    assert 'data-ok="false">The receipt does not hold' in tampered
    assert re.search(r'data-ok="false">the inclusion proof leads [^<]*: FAILS', tampered), tampered


@dataclasses.dataclass
class Parked:
    """One parked intent of each family, and what the test reads them with."""

    native: TransactionIntent
    token: TransactionIntent
    sol: TransactionIntent
    btc: TransactionIntent
    feed: str
    sol_to: str
    btc_to: str


async def _evm_parked(settings: Settings, deployed: dict[str, str]) -> tuple[TransactionIntent, TransactionIntent, str]:
    """An EVM agent whose policy prices ETH by a feed on Anvil ($2,000) and limits WUSD: 0.6 ETH
    and 150 WUSD (a transfer() call to the token) to DEST, each above its approval threshold."""
    feed = await on_anvil(
        settings, lambda node: contracts.deploy(node, "PriceFeed", 8, "ETH / USD", 2000 * 10**8, sender=DEPLOYER)
    )
    agent = f"agent-heads-{os.urandom(3).hex()}"
    key, _, _ = await make_agent(
        settings,
        agent,
        tx_to_allowlist=(DEST, deployed["token"]),
        approval_threshold_eth="0.5",
        asset_limits=token_assets(deployed, approval_threshold="100")[:1],
        price_feeds=({"chain": "anvil", "asset": "native", "feed": feed},),
    )
    native = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.6")
    data = contracts.calldata("transfer(address,uint256)", DEST, 150 * 10**6)
    token = new_intent(key, agent_id=agent, chain="anvil", to=deployed["token"], value="0", data=data, gas_limit=80_000)
    return native, token, feed


async def _solana_parked(settings: Settings) -> tuple[TransactionIntent, str]:
    """1.5 SOL to a stranger on the allowlist, above the agent's approval threshold of 1 SOL."""
    to = str(Keypair().pubkey())
    agent = await provision_solana_agent(
        settings, f"agent-heads-sol-{os.urandom(3).hex()}", allowlist=(to,), approval_threshold_lamports=10**9
    )
    fields = await transfer_fields(settings, SOLANA, agent.policy, to, "1.5")
    return new_intent(agent.intent_key, agent_id=agent.agent_id, chain=SOLANA, **fields), to


async def _bitcoin_parked(settings: Settings) -> tuple[TransactionIntent, str]:
    """0.2 BTC from 1 BTC funded to a stranger on the allowlist, above the threshold of 0.1 BTC."""
    to = wallet.addresses(bytes.fromhex(BTC_STRANGER), "regtest")[0]
    agent = await provision_bitcoin_agent(
        settings, f"agent-heads-btc-{os.urandom(3).hex()}", allowlist=(to,), approval_threshold_sats=10**7
    )
    await fund(settings, BITCOIN, agent.address, 10**8)
    fields = await transfer_fields(settings, BITCOIN, agent.policy, to, "0.2")
    return new_intent(agent.intent_key, agent_id=agent.agent_id, chain=BITCOIN, **fields), to


async def _parked(settings: Settings, deployed: dict[str, str]) -> Parked:
    native, token, feed = await _evm_parked(settings, deployed)
    (sol, sol_to), (btc, btc_to) = await _solana_parked(settings), await _bitcoin_parked(settings)
    start = await end_offsets(settings, (topics.INTENTS_AWAITING_APPROVAL, topics.INTENTS_REJECTED))
    async with Client(settings) as client:
        for intent in (native, token, sol, btc):
            await client.submit(intent)
    outcomes = await wait_outcomes(settings, [native, token, sol, btc], 90, start, final=False)
    assert all(isinstance(o, IntentParked) for o in outcomes.values()), outcomes
    return Parked(native, token, sol, btc, feed, sol_to, btc_to)


async def _decisions_page(settings: Settings) -> str:
    """GET /decisions from the console's own app (in process, on the stack's broker and nodes),
    with the stack's passkey admin logged in."""

    async def sink(event: Emit) -> None:  # the console's audit events: not this test's subject
        del event

    console = Console(settings, PARTY, sink)
    session = console.sessions.log_in(console.sessions.new(console.now()), PASSKEY_ADMIN, console.now())
    async with TestClient(TestServer(build_app(console), host="127.0.0.1", port=free_port())) as client:
        client.session.cookie_jar.update_cookies({cookie_name(ORIGIN): session.id})
        answer = await client.get("/decisions")
        assert answer.status == 200, await answer.text()
        return await answer.text()


def _section(html: str, intent: TransactionIntent) -> str:
    start = html.index(f'<section class="parked" id="intent-{intent.intent_id}">')
    return html[start : html.index("</section>", start)]


def test_each_parked_intent_is_headed_by_what_it_moves_in_its_units(
    stack: LocalStack, deployed: dict[str, str], run: Callable[..., Any]
) -> None:
    """An ERC-20 transfer is headed by the token's amount and recipient (not "0 to" the token's
    contract), every amount in its asset's symbol and decimals and exactly in base units, ETH in
    US dollars as the policy's feed prices it, SOL and BTC said to have no price; the exact bytes
    of each decision are still on the page. `warden approvals list` prints the same."""
    settings = stack.settings
    parked = run(_parked(settings, deployed))
    html = run(_decisions_page(settings))

    token = _section(html, parked.token)
    assert f'<span class="headline">150 WUSD to {DEST}</span>' in token, token.split("</h3>")[0]
    assert "exactly 150000000 base units" in token and "no USD price: the policy names no feed for it" in token
    native = _section(html, parked.native)
    assert f'<span class="headline">0.6 ETH ($1200) to {DEST}</span>' in native, native.split("</h3>")[0]
    assert "exactly 600000000000000000 wei" in native and f"$1200 at feed {parked.feed}" in native
    sol = _section(html, parked.sol)
    assert f'<span class="headline">1.5 SOL to {parked.sol_to}' in sol and "exactly 1500000000 lamports" in sol, sol
    assert "no USD price: Warden reads none for SOL" in sol and "sol_transfer" in sol  # its instructions too
    btc = _section(html, parked.btc)
    assert f'<span class="headline">0.2 BTC to {parked.btc_to}' in btc and "exactly 20000000 satoshis" in btc, btc
    for section in (native, token, sol, btc):
        assert '<div class="sign approve">' in section and '<pre class="bytes">' in section

    listed = warden(settings, "approvals", "list", "--agent", parked.token.agent_id)
    assert listed.returncode == 0, listed.stderr
    assert f"150 WUSD to {DEST}" in listed.stdout and "moves: fee up to" in listed.stdout, listed.stdout
