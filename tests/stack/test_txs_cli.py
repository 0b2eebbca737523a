"""`warden txs list|show` answers "what happened to my transaction" from the signer's own
records, leaves forged ones out, shows the raw signed bytes only when asked, and with --proof a
receipt an auditor checks offline; `warden txs cancel` cancels a sign-only transaction."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from ledger.receipt import Receipt
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc, RpcError
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import audit_events_of
from schemas.auth import sign_outcome
from schemas.codes import Code
from schemas.outcomes import IntentRejected, SignedTransaction
from schemas.stages import Stage
from sdk.client import Client, Outcome, agent_transactions, new_intent, wait_outcomes
from sdk.outcomes import OUTCOME_TOPICS
from tests.support import read_topic, warden

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def test_txs_list_and_show(stack: LocalStack, run: Callable[..., Any], tmp_path: Path) -> None:
    from tests.support import make_agent

    settings = stack.settings
    agent = f"agent-txs-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    mined = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.01", broadcast=True)
    only_signed = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value="0.02")

    async def scenario() -> dict[str, Outcome]:
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        async with Client(settings) as client:
            await client.submit(mined)
            await client.submit(only_signed)
        # Until final: its block 2 under the head, a second or two of the chain's blocks.
        outcomes = await wait_outcomes(settings, [mined, only_signed], 60, start, until_final_block=True)
        # A forged "mined" record for an intent of this agent, signed by a key nobody pinned.
        fake = sign_outcome(
            outcomes[only_signed.intent_id].model_copy(update={"status": "mined"}),
            Ed25519PrivateKey.generate(),
            "signer-0",
        )
        async with Client(settings) as client:
            await (await client.send(topics.TXS_SIGNED, agent, fake.to_bytes()))
        return outcomes

    outcomes = run(scenario())
    listed = warden(settings, "txs", "list", "--agent", agent, "--json")
    assert listed.returncode == 0, listed.stderr
    doc = orjson.loads(listed.stdout)
    by_intent = {t["intent_id"]: t for t in doc["transactions"]}
    assert {i: t["status"] for i, t in by_intent.items()} == {
        mined.intent_id: "mined",
        only_signed.intent_id: "sign_only",
    }
    assert all("signed_tx" not in t for t in doc["transactions"]) and doc["forged_records_ignored"] == 1
    assert by_intent[mined.intent_id]["fee_wei"] is not None

    with_bytes = orjson.loads(warden(settings, "txs", "list", "--agent", agent, "--json", "--include-signed-tx").stdout)
    assert {t["signed_tx"] for t in with_bytes["transactions"]} == {o.signed_tx for o in outcomes.values()}

    shown = warden(settings, "txs", "show", outcomes[mined.intent_id].tx_hash, "--agent", agent)
    assert shown.returncode == 0 and "status             mined" in shown.stdout and "signed_tx" not in shown.stdout
    assert "history\n  signed " in shown.stdout
    # Every status change is on the topic, in order, and on the audit topic the ledger appends.
    history = orjson.loads(warden(settings, "txs", "show", mined.intent_id, "--agent", agent, "--json").stdout)
    steps = [(step["status"], step["final"]) for step in history["history"]]
    assert steps == [("signed", False), ("broadcast", False), ("mined", False), ("mined", True)], history
    actions = {
        e.action
        for e in (e for v in run(read_topic(settings, topics.AUDIT_EVENTS)) for e in audit_events_of(v))
        if e.intent_id == mined.intent_id
    }
    assert {AuditAction.TX_SIGNED, AuditAction.TX_BROADCAST, AuditAction.TX_MINED, AuditAction.TX_FINAL} <= actions, (
        actions
    )
    human = warden(settings, "txs", "list", "--agent", agent).stdout
    assert "2 transaction(s)" in human and "1 forged record(s) ignored" in human
    assert "1 mined (final)" in human, human
    missing = warden(settings, "txs", "show", "0xdeadbeef", "--agent", agent)
    assert missing.returncode == 1 and "warden txs list" in missing.stderr

    # `--proof`: the receipt of its newest outcome (the tx.final event), once the ledger signed a
    # checkpoint over it; `warden audit check-receipt` accepts it with the ledger's key alone.
    deadline = time.monotonic() + 60
    while True:
        shown = warden(settings, "txs", "show", mined.intent_id, "--agent", agent, "--proof", "--json")
        doc = orjson.loads(shown.stdout) if shown.returncode == 0 else None
        if doc is not None and Receipt.parse(doc["receipt"]).event["action"] == AuditAction.TX_FINAL:
            break
        assert time.monotonic() < deadline, (shown.stdout, shown.stderr)
        time.sleep(1)
    receipt = tmp_path / "mined.tlog-proof"
    receipt.write_text(doc["receipt"])
    log_key = warden(settings, "audit", "log-key").stdout.strip()
    checked = warden(settings, "audit", "check-receipt", str(receipt), "--log-key", log_key)
    about = f"(tx.final, about intent {mined.intent_id} of agent {agent} (digest {mined.digest()}))"
    assert checked.returncode == 0 and about in checked.stdout, (checked.stdout, checked.stderr)
    stranger = log_key.rsplit("+", 2)[0] + "+" + "00000000" + "+" + log_key.rsplit("+", 1)[1]
    assert warden(settings, "audit", "check-receipt", str(receipt), "--log-key", stranger).returncode != 0


def test_txs_cancel_takes_a_sign_only_nonce_and_the_worker_bounds_what_is_outstanding(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """The worker refuses a sign-only intent past max_sign_only_outstanding; `warden txs cancel`
    (an admin's signed denial) has the signer take the first one's nonce with a 0-value transfer,
    after which its bytes are refused by the node and both services count only the cancellation's fee."""
    from tests.support import make_agent

    settings = stack.settings
    agent = f"agent-cancel-{os.urandom(3).hex()}"
    bound = 15 * 10**15  # 0.015: one 0.01 sign-only transaction outstanding, not two
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), max_sign_only_outstanding=bound))

    def sign_only(value: str) -> Outcome:
        intent = new_intent(key, agent_id=agent, chain="anvil", to=DEST, value=value)

        async def submitted() -> Outcome:
            start = await end_offsets(settings, OUTCOME_TOPICS)
            async with Client(settings) as client:
                await client.submit(intent)
            return (await wait_outcomes(settings, [intent], 60, start))[intent.intent_id]

        outcome: Outcome = run(submitted())
        return outcome

    first = sign_only("0.01")
    assert isinstance(first, SignedTransaction), first
    assert first.status == "sign_only"
    over = sign_only("0.01")
    assert isinstance(over, IntentRejected), over
    assert (over.stage, over.code) == (Stage.DAILY_LIMIT, Code.SIGN_ONLY_OUTSTANDING_EXCEEDED)  # the worker's

    cancelled = warden(settings, "txs", "cancel", first.intent_id, "--agent", agent, "--reason", "leaked", "--json")
    assert cancelled.returncode == 0, (cancelled.stdout, cancelled.stderr)
    doc = orjson.loads(cancelled.stdout)
    assert doc["outcome"]["status"] == "cancelled" and doc["outcome"]["replaced_by"], doc

    async def final_and_refused() -> SignedTransaction:
        deadline = time.monotonic() + 60
        while True:
            found = await agent_transactions(settings, agent)
            record = next(r for r in found.transactions if r.intent_id == first.intent_id)
            if record.final and record.status == "cancelled":
                break
            assert time.monotonic() < deadline, record
            await asyncio.sleep(0.5)
        node = JsonRpc(settings.rpc_url)
        try:
            with pytest.raises(RpcError, match="nonce too low"):
                await node.call("eth_sendRawTransaction", first.signed_tx)
        finally:
            await node.close()
        return record

    final = run(final_and_refused())
    assert final.nonce == first.nonce and final.value_wei == 0 and final.to == final.from_
    # Both services now count only the cancellation's fee: another 0.01 fits the bound again.
    again = sign_only("0.01")
    assert isinstance(again, SignedTransaction), again
    assert again.status == "sign_only", again
    denied_again = warden(settings, "txs", "cancel", first.intent_id, "--agent", agent)
    assert denied_again.returncode == 1 and "cancelled" in denied_again.stderr
