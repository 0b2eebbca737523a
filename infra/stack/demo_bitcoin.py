"""The demo's Bitcoin agent, on the stack's regtest node (btcd): its key from custody, its wallet
funded by the node's funder (`warden fund`'s), and two payments written as the plain transfer
writes them (`sdk.transfers`): 0.1 BTC to bob on its allowlist, mined and final, and 0.05 BTC to
mallory, who is not on it, refused by her name. Its own agent (`BITCOIN_AGENT`), key and policy."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from embit import ec, script
from embit.networks import NETWORKS

from infra.cli.fund import fund
from infra.stack.provision import provision_bitcoin_agent
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas.codes import Code
from schemas.outcomes import IntentRejected, SignedBitcoinTransaction
from sdk.client import Client, new_intent
from sdk.outcomes import OUTCOME_TOPICS, wait_outcomes
from sdk.transfers import transfer_fields

BITCOIN_AGENT = "demo-bitcoin-agent"
CHAIN = "bitcoin-regtest"
BTC = 10**8


def _payee() -> str:
    """A fresh regtest address nobody here keeps the key of."""
    return str(script.p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"]))


async def run_session(
    settings: Settings, client_share: str | None, progress: Callable[[str], object], timeout_s: float = 60.0
) -> dict[str, Any]:
    """The Bitcoin agent's session: provisioned and funded, its two payments submitted, and each
    outcome against the expected."""
    bob, mallory = _payee(), _payee()
    agent = await provision_bitcoin_agent(
        settings,
        BITCOIN_AGENT,
        client_share=client_share,
        allowlist=(bob,),
        max_sats_per_tx=3 * BTC // 10,
        daily_limit_sats=BTC // 2,
    )
    funded = await fund(settings, CHAIN, agent.address, BTC)
    progress(f"agent {BITCOIN_AGENT}: Bitcoin address {agent.address} funded with 1 BTC on {CHAIN}")
    script_ = [
        ("0.1 BTC to bob, on its allowlist", bob, "0.1", "mined"),
        ("0.05 BTC to mallory", mallory, "0.05", str(Code.RECIPIENT_NOT_ALLOWLISTED)),
    ]
    began = time.monotonic()
    start = await end_offsets(settings, OUTCOME_TOPICS)
    intents = []
    async with Client(settings) as client:
        share = None if client_share is None else await client.client_share(client_share)
        try:
            for _, to, value, _ in script_:
                fields = await transfer_fields(settings, CHAIN, agent.policy, to, value)
                intents.append(
                    new_intent(
                        agent.intent_key,
                        agent_id=BITCOIN_AGENT,
                        chain=CHAIN,
                        broadcast=True,
                        client_share=share,
                        **fields,
                    )
                )
        finally:
            if share is not None:
                share.wipe()
        # Both written from the same coins: the second is refused, so nothing spends them twice.
        for intent in intents:
            await client.submit(intent)
        await client.flush()
    outcomes = await wait_outcomes(settings, intents, timeout_s, start)
    rows = []
    for (what, _, _, expected), intent in zip(script_, intents, strict=True):
        row, got = _outcome_row(outcomes.get(intent.intent_id))
        rows.append(
            {"what": what, "intent_id": intent.intent_id, "expected": expected, **row, "as_expected": got == expected}
        )
    return {
        "agent_id": BITCOIN_AGENT,
        "address": agent.address,
        "chain": CHAIN,
        "funded_sats": funded.added,
        "seconds": round(time.monotonic() - began, 3),
        "intents": rows,
        "as_expected": all(r["as_expected"] for r in rows),
    }


def _outcome_row(outcome: object) -> tuple[dict[str, Any], str]:
    """An intent's outcome as the report shows it, and what it came to (a final status, a code,
    or "missing") to compare with what the script expects."""
    if isinstance(outcome, SignedBitcoinTransaction):
        row = {"status": outcome.status, "final": outcome.final, "txid": outcome.txid, "spend": outcome.spend}
        return row | {
            "fee_sats": outcome.fee_sats,
            "error": outcome.error,
        }, outcome.status if outcome.final else "not final"
    if isinstance(outcome, IntentRejected):
        return {
            "status": "rejected",
            "stage": outcome.stage,
            "code": outcome.code,
            "reason": outcome.reason,
        }, outcome.code
    return {"status": "missing", "reason": "no outcome within the timeout"}, "missing"


def render(session: dict[str, Any]) -> str:
    lines = [
        f"\nBitcoin agent: {session['agent_id']} ({session['address']}) on {session['chain']} ({session['seconds']} s)"
    ]
    for row in session["intents"]:
        mark = "ok " if row["as_expected"] else "!! "
        if row["status"] == "rejected":
            said = f"{row['code']} at {row['stage']}: {row['reason'][:80]}"
        elif row["status"] == "missing":
            said = row["reason"]
        else:
            final = "final" if row["final"] else "not final"
            said = (
                f"{final}, txid {row['txid'][:20]}.. spends {row['spend'].get('BTC')} satoshis (fee {row['fee_sats']})"
            )
        lines.append(f"{mark}{row['what']:41} {row['status']:10} {said}")
    return "\n".join(lines)
