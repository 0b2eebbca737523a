"""The demo's Solana agent, on the stack's local Solana node (surfpool): SOL and a token to alice
sent and finalized, the token to mallory refused by her name, an unknown program refused, and
SOL over the cap refused, and an off-chain message signed. Its own agent (`SOLANA_AGENT`), key, policy and payees.

A bank keypair held here (a local node's airdrop) makes the demo token and gives the agent some;
everything the agent asks for goes through the pipeline as a solana_transaction (or
solana_message) intent.
"""

from __future__ import annotations

import base64
import time

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from infra.stack.provision import provision_solana_agent
from runtime import solana
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas.outcomes import IntentRejected, SignedSolanaMessage, SignedSolanaTransaction
from schemas.policy import SolanaTokenLimit
from sdk import solana as build
from sdk.client import Client, new_solana_intent, new_solana_message_intent
from sdk.outcomes import OUTCOME_TOPICS, wait_outcomes

SOLANA_AGENT = "demo-solana-agent"
CHAIN = "solana-local"
DECIMALS = 6
SOL = 10**9
MESSAGE = "demo-solana-agent signs in to example.com"


async def _airdrop(node: JsonRpc, to: Pubkey, lamports: int, timeout_s: float) -> None:
    await solana.landed(node, await node.call("requestAirdrop", str(to), lamports), "processed", timeout_s)


async def _land(node: JsonRpc, bank: Keypair, instructions: list[Instruction], *others: Keypair, timeout_s: float):
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
        ("1 DEMO to mallory", [build.token_transfer(mine, to_mallory, me, 10**6)], "RECIPIENT_NOT_ALLOWLISTED"),
        (
            "an unknown program",
            [Instruction(Keypair().pubkey(), bytes(8), [build.signer(me)])],
            "SOLANA_PROGRAM_NOT_ALLOWED",
        ),
        ("2 SOL to alice (over the cap)", [build.sol_transfer(me, alice, 2 * SOL)], "VALUE_OVER_CAP"),
    ]


async def run_session(settings: Settings, client_share: str | None, progress, timeout_s: float = 60.0) -> dict:
    alice, mallory = Keypair().pubkey(), Keypair().pubkey()
    node = JsonRpc(settings.rpc_url_for(CHAIN), timeout_s=timeout_s)
    try:
        # A demo token (6 decimals), with an account each for alice and mallory.
        bank, mint_key = Keypair(), Keypair()
        mint = mint_key.pubkey()
        await _airdrop(node, bank.pubkey(), SOL, timeout_s)
        setup = build.create_mint(bank.pubkey(), mint, bank.pubkey(), DECIMALS)
        setup += [build.create_ata(bank.pubkey(), who, mint) for who in (alice, mallory)]
        await _land(node, bank, setup, mint_key, timeout_s=timeout_s)
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
        outcome = outcomes.get(intent.intent_id)
        if isinstance(outcome, SignedSolanaMessage):
            # Checked here as anyone would: the signature over the message's bytes, by the agent's address.
            ok = Signature.from_string(outcome.signature).verify(
                Pubkey.from_string(agent.address), base64.b64decode(outcome.message)
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


def render(session: dict) -> str:
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
