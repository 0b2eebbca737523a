"""The demo's Solana agent, on the stack's local Solana node (surfpool): SOL and a token to alice
sent and finalized, the token to mallory refused by her name, an unknown program refused, and
SOL over the cap refused, and an off-chain message signed. Its own agent (`SOLANA_AGENT`), key, policy and payees.

A bank keypair held here (a local node's airdrop) makes the demo token and gives the agent some;
everything the agent asks for goes through the pipeline as a solana_transaction (or
solana_message) intent.
"""

from __future__ import annotations

import base64
import importlib.util
import time
from collections.abc import Callable
from typing import Any

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from infra.stack.provision import Agent, provision_solana_agent
from infra.stack.x402_server import Paid, paid_solana_server
from runtime import solana
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas.codes import Code
from schemas.outcomes import IntentRejected, SignedSolanaMessage, SignedSolanaTransaction
from schemas.policy import SolanaTokenLimit
from sdk import solana as build
from sdk.client import Client, ClientKey, new_solana_intent, new_solana_message_intent
from sdk.outcomes import OUTCOME_TOPICS, wait_outcomes
from sdk.x402_pay import pay
from signer.custody import CLIENT_MODES

SOLANA_AGENT = "demo-solana-agent"
CHAIN = "solana-local"
DECIMALS = 6
SOL = 10**9
MESSAGE = "demo-solana-agent signs in to example.com"


async def _airdrop(node: JsonRpc, to: Pubkey, lamports: int, timeout_s: float) -> None:
    await solana.landed(node, await node.call("requestAirdrop", str(to), lamports), "processed", timeout_s)


async def _land(
    node: JsonRpc, bank: Keypair, instructions: list[Instruction], *others: Keypair, timeout_s: float
) -> None:
    """Instructions signed by keypairs held here, sent and confirmed on the local node."""
    recent = Hash.from_string(await solana.latest_blockhash(node))
    signature = await solana.send(node, bytes(build.signed(bank, instructions, recent, *others)))
    status = await solana.landed(node, signature, "confirmed", timeout_s)
    if status.error is not None:
        raise RuntimeError(f"the demo's setup failed on the local Solana node: {status.error}")


def _script(me: Pubkey, alice: Pubkey, mallory: Pubkey, mint: Pubkey) -> list[tuple[str, list[Instruction], str]]:
    """(what, instructions, the outcome expected: a final status or a refusal's code)."""
    mine, to_alice, to_mallory = (build.ata_address(who, mint) for who in (me, alice, mallory))
    return [
        ("0.25 SOL to alice", [build.sol_transfer(me, alice, SOL // 4)], "finalized"),
        ("5 DEMO to alice", [build.token_transfer_checked(mine, mint, to_alice, me, 5 * 10**6, DECIMALS)], "finalized"),
        ("1 DEMO to mallory", [build.token_transfer(mine, to_mallory, me, 10**6)], Code.RECIPIENT_NOT_ALLOWLISTED),
        (
            "an unknown program",
            [Instruction(Keypair().pubkey(), bytes(8), [build.signer(me)])],
            Code.SOLANA_PROGRAM_NOT_ALLOWED,
        ),
        ("2 SOL to alice (over the cap)", [build.sol_transfer(me, alice, 2 * SOL)], Code.VALUE_OVER_CAP),
    ]


async def run_session(
    settings: Settings, client_share: str | None, progress: Callable[[str], object], timeout_s: float = 60.0
) -> dict[str, Any]:
    """The Solana agent's session: a demo token, the agent funded with SOL and the token, the
    script's intents and an off-chain message submitted, and each outcome against the expected."""
    alice, mallory = Keypair().pubkey(), Keypair().pubkey()
    node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=timeout_s)
    try:
        bank, mint = await _demo_token(node, alice, mallory, timeout_s)
        agent = await provision_solana_agent(
            settings,
            SOLANA_AGENT,
            fund_lamports=5 * SOL,
            client_share=client_share,
            allowlist=(str(alice),),
            max_lamports_per_tx=SOL,
            daily_limit_lamports=3 * SOL,
            tokens=(SolanaTokenLimit(mint=str(mint), symbol="DEMO", decimals=DECIMALS, max_per_tx=100 * 10**6),),
            message_signing_enabled=True,
        )
        me = Pubkey.from_string(agent.address)
        mine = build.ata_address(me, mint)
        funding = [build.create_ata(bank.pubkey(), me, mint), build.mint_to(mint, mine, bank.pubkey(), 1000 * 10**6)]
        await _land(node, bank, funding, timeout_s=timeout_s)
        progress(f"agent {SOLANA_AGENT}: Solana key {agent.address} funded with 5 SOL and 1,000 DEMO on {CHAIN}")
        recent = Hash.from_string(await solana.latest_blockhash(node))
        script = _script(me, alice, mallory, mint)
        began = time.monotonic()
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            share = None if client_share is None else await client.client_share(client_share)
            try:
                intents = _intents(agent, script, recent, share)
            finally:
                if share is not None:
                    share.wipe()
            for intent in intents:
                await client.submit(intent)
            await client.flush()
        outcomes = await wait_outcomes(settings, intents, timeout_s, start)
    finally:
        await node.close()
    rows = []
    expected_rows = [(what, expected) for what, _, expected in script] + [("an off-chain message", "signed")]
    for (what, expected), intent in zip(expected_rows, intents, strict=True):
        row, got = _outcome_row(outcomes.get(intent.intent_id), agent.address)
        rows.append(
            {"what": what, "intent_id": intent.intent_id, "expected": expected, **row, "as_expected": got == expected}
        )
    return {
        "agent_id": SOLANA_AGENT,
        "address": agent.address,
        "chain": CHAIN,
        "mint": str(mint),
        "seconds": round(time.monotonic() - began, 3),
        "intents": rows,
        "as_expected": all(r["as_expected"] for r in rows),
    }


async def _demo_token(node: JsonRpc, alice: Pubkey, mallory: Pubkey, timeout_s: float) -> tuple[Keypair, Pubkey]:
    """A demo token (6 decimals), with an account each for alice and mallory, made by a bank
    keypair funded by the local node's airdrop: the bank and the token's mint."""
    bank, mint_key = Keypair(), Keypair()
    mint = mint_key.pubkey()
    await _airdrop(node, bank.pubkey(), SOL, timeout_s)
    setup = build.create_mint(bank.pubkey(), mint, bank.pubkey(), DECIMALS)
    setup += [build.create_ata(bank.pubkey(), who, mint) for who in (alice, mallory)]
    await _land(node, bank, setup, mint_key, timeout_s=timeout_s)
    return bank, mint


def _intents(
    agent: Agent, script: list[tuple[str, list[Instruction], str]], recent: Hash, share: ClientKey | None
) -> list[Any]:
    """The agent's intents: one transaction a line of the script, then an off-chain message."""
    me = Pubkey.from_string(agent.address)
    intents = [
        new_solana_intent(
            agent.intent_key,
            agent_id=SOLANA_AGENT,
            chain=CHAIN,
            transaction=build.unsigned(me, instructions, recent),
            broadcast=True,
            client_share=share,
        )
        for _, instructions, _ in script
    ]
    # An off-chain message too: signed, never a transaction (docs/solana.md).
    intents.append(
        new_solana_message_intent(
            agent.intent_key,
            agent_id=SOLANA_AGENT,
            chain=CHAIN,
            text=MESSAGE,
            signatories=[agent.address],
            client_share=share,
        )
    )
    return intents


def _outcome_row(outcome: object, address: str) -> tuple[dict[str, Any], str]:
    """An intent's outcome as the report shows it, and what it came to (a status, a code,
    "signed", or "missing") to compare with what the script expects."""
    row: dict[str, Any]  # the outcome's fields in the report, by kind of outcome
    if isinstance(outcome, SignedSolanaMessage):
        # Checked here as anyone would: the signature over the message's bytes, by the agent's address.
        ok = Signature.from_string(outcome.signature).verify(
            Pubkey.from_string(address), base64.b64decode(outcome.message)
        )
        row = {"status": "signed", "signature": outcome.signature, "message_sha256": outcome.message_sha256}
        got = "signed" if ok else "a signature that does not verify"
    elif isinstance(outcome, SignedSolanaTransaction):
        row = {"status": outcome.status, "slot": outcome.slot, "signature": outcome.tx_signature}
        row |= {"spend": outcome.spend, "error": outcome.error}
        got = outcome.status
    elif isinstance(outcome, IntentRejected):
        row = {"status": "rejected", "stage": outcome.stage, "code": outcome.code, "reason": outcome.reason}
        got = outcome.code
    else:
        row, got = {"status": "missing", "reason": "no outcome within the timeout"}, "missing"
    return row, got


def render(session: dict[str, Any]) -> str:
    lines = [
        f"\nSolana agent: {session['agent_id']} ({session['address']}) on {session['chain']}, token {session['mint']} "
        f"({session['seconds']} s)"
    ]
    for row in session["intents"]:
        mark = "ok " if row["as_expected"] else "!! "
        if row["status"] == "rejected":
            said = f"{row['code']} at {row['stage']}: {row['reason'][:80]}"
        elif row["status"] == "missing":
            said = row["reason"]
        elif "message_sha256" in row:
            said = f"sha256 {row['message_sha256'][:16]}.. signature {row['signature'][:20]}.. verifies"
        else:
            spend = ", ".join(f"{n} {asset[:8]}" for asset, n in row["spend"].items())
            said = f"slot {row['slot']} signature {str(row['signature'])[:20]}.. spends {spend}"
        lines.append(f"{mark}{row['what']:41} {row['status']:10} {said}")
    return "\n".join(lines)


# x402 on Solana: the official x402 SDK knows Solana clusters by name only, so the demo's node
# plays devnet for it (`warden demo` points WARDEN_RPC_URL_SOLANA_DEVNET at the local node).
X402_AGENT = "demo-x402-solana-agent"
X402_CHAIN = "solana-devnet"
DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
X402_PRICE = 10_000  # 0.01 of a 6-decimal token
X402_CAP = 50_000


def expected_x402(settings: Settings) -> dict[str, str]:
    """What each paid route must come to. In the client-custody modes `warden pay` holds no client
    share, so the signer refuses the first, and fails closed with the answer a missing share gets."""
    first = Code.CLIENT_SHARE_INVALID if settings.key_mode in CLIENT_MODES else "paid"
    return {"/report": first, "/dear": Code.VALUE_OVER_CAP}


async def run_x402_session(
    settings: Settings, client_share: str | None, progress: Callable[[str], object], timeout_s: float = 60.0
) -> dict[str, Any]:
    """An agent with a Solana key pays an x402 resource asking for a demo token on Solana: the official
    SDK's server and SVM facilitator (which pays the fee and sends the transaction) on the local node.
    A second resource asks more than the agent's cap and is refused; the server gets no payment."""
    # The server imports the SDK only when it starts, so ask for the SDK itself here.
    if importlib.util.find_spec("x402") is None:
        return {"skipped": "the x402 SDK is not installed: pip install 'warden[demo]'", "as_expected": True}
    url, alice = settings.rpc_url_for(X402_CHAIN), Keypair().pubkey()
    node = JsonRpc(url, timeout_s=timeout_s)
    try:
        bank, mint_key = Keypair(), Keypair()
        mint = mint_key.pubkey()
        await _airdrop(node, bank.pubkey(), SOL, timeout_s)
        setup = build.create_mint(bank.pubkey(), mint, bank.pubkey(), DECIMALS)
        setup.append(build.create_ata(bank.pubkey(), alice, mint))
        await _land(node, bank, setup, mint_key, timeout_s=timeout_s)
        agent = await provision_solana_agent(
            settings,
            X402_AGENT,
            fund_lamports=0,  # the facilitator pays the fee
            client_share=client_share,
            chain=X402_CHAIN,
            allowlist=(str(alice),),
            tokens=(SolanaTokenLimit(mint=str(mint), symbol="DEMO", decimals=DECIMALS, max_per_tx=X402_CAP),),
        )
        me = Pubkey.from_string(agent.address)
        funding = [
            build.create_ata(bank.pubkey(), me, mint),
            build.mint_to(mint, build.ata_address(me, mint), bank.pubkey(), 10**6),
        ]
        await _land(node, bank, funding, timeout_s=timeout_s)
        routes = [
            Paid("/report", str(alice), X402_PRICE, network=DEVNET),
            Paid("/dear", str(alice), 90_000, network=DEVNET),
        ]
        began = time.monotonic()
        with paid_solana_server(url, str(mint), routes) as server:
            await _airdrop(node, Pubkey.from_string(server.facilitator), SOL, timeout_s)
            progress(
                f"agent {X402_AGENT} pays the x402 server at {server.url} (the official SDK's, settling on {X402_CHAIN})"
            )
            payments = {
                route.path: await pay(
                    settings, X402_AGENT, agent.intent_key, server.url + route.path, timeout_s=timeout_s
                )
                for route in routes
            }
            served = list(server.served)
        received = int(
            (await node.call("getTokenAccountBalance", str(build.ata_address(alice, mint))))["value"]["amount"]
        )
    finally:
        await node.close()
    expected = expected_x402(settings)
    rows = []
    for path, payment in payments.items():
        got = payment.refusal.code if payment.status == "refused" and payment.refusal else payment.status
        row = {"path": path, "status": payment.status, "http_status": payment.http_status, "expected": expected[path]}
        if payment.refusal is not None:
            row |= {"code": payment.refusal.code, "stage": payment.refusal.stage}
        if payment.settlement is not None:
            row["transaction"] = payment.settlement.get("transaction")
        rows.append(row | {"as_expected": got == expected[path]})
    paid_for = [path for path, want in expected.items() if want == "paid"]
    return {
        "agent_id": X402_AGENT,
        "address": agent.address,
        "chain": X402_CHAIN,
        "seconds": round(time.monotonic() - began, 3),
        "payments": rows,
        "served": served,
        "alice_received": received,
        # What the payee holds and what the server served are the chain's and the server's word.
        "as_expected": all(r["as_expected"] for r in rows)
        and served == paid_for
        and received == X402_PRICE * len(paid_for),
    }


def render_x402(session: dict[str, Any]) -> str:
    if "skipped" in session:
        return f"\nx402 on Solana: skipped ({session['skipped']})"
    lines = [
        f"\nx402 on Solana: {session['agent_id']} ({session['address']}) pays the official x402 server "
        f"({session['seconds']} s); the payee received {session['alice_received']} base units"
    ]
    for row in session["payments"]:
        mark = "ok " if row["as_expected"] else "!! "
        said = f"{row['code']} at {row['stage']}" if "code" in row else f"HTTP {row['http_status']}"
        if row.get("transaction"):
            said += f", transaction {row['transaction'][:20]}.."
        lines.append(f"{mark}GET {row['path']:37} {row['status']:10} {said}")
    return "\n".join(lines)
