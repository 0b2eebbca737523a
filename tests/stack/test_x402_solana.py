"""Paying an x402 resource on Solana through Warden, against the official x402 SDK's server and
its SVM facilitator (tests/x402_support.py), which complete and send the agent's transaction on
a real Solana node (surfpool). The SDK knows Solana clusters by name only, so the node serves as
devnet here: Warden's stack is started with WARDEN_RPC_URL_SOLANA_DEVNET pointing at it.

Warden signs the agent's slot of the SDK's transaction shape (compute budget, an SPL
TransferChecked, a memo; the facilitator pays the fee) only after judging it as the token
movement it is: a payee off the allowlist or an amount over the cap is refused, and the server
gets nothing."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from infra.stack.local import LocalStack, local_settings, running_stack
from infra.stack.provision import provision_solana_agent
from infra.stack.x402_server import Paid, paid_solana_server
from runtime import solana
from runtime.config import Settings
from runtime.rpc import JsonRpc
from schemas.codes import Code
from schemas.policy import SolanaTokenLimit
from sdk import solana as build
from sdk.x402 import decode_header
from sdk.x402_pay import Payment, pay

DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
PRICE = 10_000  # 0.01 of a 6-decimal token

T = TypeVar("T")


async def _on(url: str, work: Callable[[JsonRpc], Awaitable[T]]) -> T:
    node = JsonRpc(url, timeout_s=60)
    try:
        return await work(node)
    finally:
        await node.close()


async def _land(url: str, payer: Keypair, instructions: list[Instruction], *others: Keypair) -> None:
    async def go(node: JsonRpc) -> None:
        recent = Hash.from_string(await solana.latest_blockhash(node))
        signature = await solana.send(node, bytes(build.signed(payer, instructions, recent, *others)))
        assert (await solana.landed(node, signature, "confirmed", 60)).error is None

    await _on(url, go)


async def _airdrop(url: str, to: Pubkey, lamports: int) -> None:
    async def go(node: JsonRpc) -> None:
        await solana.landed(node, await node.call("requestAirdrop", str(to), lamports), "processed", 60)

    await _on(url, go)


def _token_balance(url: str, account: Pubkey) -> int:
    reply = asyncio.run(_on(url, lambda node: node.call("getTokenAccountBalance", str(account))))
    return int(reply["value"]["amount"])


@pytest.fixture(scope="module")
def paid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    node = LocalStack(local_settings(tmp_path_factory.mktemp("node")))
    node.start(parts=("solana",))
    try:
        url = node.settings.solana_rpc_url("solana-local")
        settings = local_settings(tmp_path_factory.mktemp("home"), rpc_urls={"SOLANA_DEVNET": url})
        with running_stack(settings):
            yield _payments(settings, url)
    finally:
        node.stop()


def _payments(settings: Settings, url: str) -> dict[str, Any]:
    bank, mint_key, alice, mallory = Keypair(), Keypair(), Keypair().pubkey(), Keypair().pubkey()
    mint = mint_key.pubkey()
    asyncio.run(_airdrop(url, bank.pubkey(), 10**9))
    setup = build.create_mint(bank.pubkey(), mint, bank.pubkey(), 6)
    setup += [build.create_ata(bank.pubkey(), who, mint) for who in (alice, mallory)]
    asyncio.run(_land(url, bank, setup, mint_key))
    agent_id = f"agent-x402-sol-{os.urandom(3).hex()}"
    agent = asyncio.run(
        provision_solana_agent(
            settings,
            agent_id,
            chain="solana-devnet",
            allowlist=(str(alice),),
            tokens=(SolanaTokenLimit(mint=str(mint), symbol="DEMO", decimals=6, max_per_tx=50_000),),
        )
    )
    me = Pubkey.from_string(agent.address)
    mine = build.ata_address(me, mint)
    asyncio.run(
        _land(url, bank, [build.create_ata(bank.pubkey(), me, mint), build.mint_to(mint, mine, bank.pubkey(), 10**6)])
    )
    routes = [
        Paid("/paid", str(alice), PRICE, network=DEVNET),
        Paid("/mallory", str(mallory), PRICE, network=DEVNET),
        Paid("/dear", str(alice), 90_000, network=DEVNET),
    ]
    got = {"alice": alice, "mallory": mallory, "mint": mint, "agent": agent, "url": url}
    with paid_solana_server(url, str(mint), routes) as server:
        asyncio.run(_airdrop(url, Pubkey.from_string(server.facilitator), 10**9))

        async def payments() -> dict[str, Payment]:
            return {
                name: await pay(settings, agent_id, agent.intent_key, f"{server.url}/{name}", timeout_s=120)
                for name in ("paid", "mallory", "dear")
            }

        got.update(asyncio.run(payments()))
        got["payments"], got["served"] = list(server.payments), list(server.served)
        got["facilitator"] = server.facilitator
    got["balances"] = {
        who: _token_balance(url, build.ata_address(owner, mint))
        for who, owner in (("agent", me), ("alice", alice), ("mallory", mallory))
    }
    return got


def test_the_official_svm_facilitator_completes_warden_s_transaction_and_the_token_moves(paid: dict[str, Any]) -> None:
    payment = paid["paid"]
    assert payment.status == "paid" and payment.http_status == 200, payment
    assert payment.requirement.chain == "solana-devnet" and payment.from_ == paid["agent"].address
    assert paid["balances"] == {"agent": 10**6 - PRICE, "alice": PRICE, "mallory": 0}
    settled = payment.settlement
    assert settled["success"] is True and settled["network"] == DEVNET, settled
    # What the server was sent: Warden's transaction, the facilitator's slot empty, the agent's filled.
    ((path, header),) = [p for p in paid["payments"] if p[0] == "/paid"]
    sent = decode_header(header, "PAYMENT-SIGNATURE")
    tx = base64.b64decode(sent["payload"]["transaction"])
    from solders.transaction import VersionedTransaction

    signed = VersionedTransaction.from_bytes(tx)
    assert [str(k) for k in signed.message.account_keys[:2]] == [paid["facilitator"], paid["agent"].address]
    assert signed.verify_with_results() == [False, True]
    (status,) = asyncio.run(_on(paid["url"], lambda node: solana.statuses(node, [settled["transaction"]])))
    assert status is not None and status.error is None  # the node holds what the facilitator sent


def test_a_payee_off_the_allowlist_and_an_amount_over_the_cap_are_refused_and_nothing_is_sent(
    paid: dict[str, Any],
) -> None:
    assert paid["mallory"].status == "refused" and paid["mallory"].refusal.code == Code.RECIPIENT_NOT_ALLOWLISTED
    assert paid["dear"].status == "refused" and paid["dear"].refusal.code == Code.VALUE_OVER_CAP
    assert {path for path, _ in paid["payments"]} == {"/paid"}  # the server got no other payment header
    assert paid["served"] == ["/paid"]
