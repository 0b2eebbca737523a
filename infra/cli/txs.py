"""``warden txs list|show|cancel``: what happened to an agent's transactions, and an admin's
cancellation of a sign-only one whose bytes have not landed (a denial signed with the local admin
key, WARDEN_ADMIN_ID, on warden.approvals; the signer takes an EVM one's nonce with a 0-value
transfer, and spends one of a Bitcoin one's inputs back to the agent).

Reads ``warden.txs.signed``, ``warden.solana.signed``, ``warden.bitcoin.signed`` and ``warden.intents.rejected`` from the
start; ``list`` and ``show`` take every family's transactions, ``cancel`` an EVM or Bitcoin one. Per intent, it keeps
the newest status the signer reported, and whether it is final (mined, failed, replaced or
dropped at a block the chain finalized; until then a reorg can still move it), and the history of
every status in order (``show`` prints it: the fee bumps, why it was stuck, a block that left the
chain); and every rejection, with its stage, code and reason (refused at
intake, INVALID_INTENT for a record the worker could not read, by a guardrail or by the signer).
Only records signed by a pinned key of the service allowed to say them count; any other is left
out and counted as forged. ``signed_tx`` (the raw signed bytes) is shown only with
``--include-signed-tx``, as the transactions API gates it.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.config import Settings, load
from schemas.fields import format_native_amount
from schemas.outcomes import IntentRejected, SignedBitcoinTransaction, SignedSolanaTransaction, SignedTransaction
from sdk.cancellation import cancellable, send_cancellation
from sdk.client import agent_transactions, human_decision, status_history
from sdk.records import AgentRecords, ReceiptUnavailable, outcome_receipt

# A transaction of any family, as the signer reports it.
Signed = SignedTransaction | SignedSolanaTransaction | SignedBitcoinTransaction


def _row(record: Signed | IntentRejected, include_signed_tx: bool = False) -> dict[str, Any]:
    row = record.model_dump(mode="json", by_alias=True, exclude={"service_signature"})
    if not include_signed_tx:
        row.pop("signed_tx", None)
    return row


def _status(record: Signed) -> str:
    """The status, and for what the chain decided whether its block is final yet."""
    if isinstance(record, SignedSolanaTransaction):
        return record.status
    if isinstance(record, SignedBitcoinTransaction):
        return (
            f"{record.status} ({'final' if record.final else 'not final'})"
            if record.status == "mined"
            else record.status
        )
    if record.status in ("mined", "failed", "replaced", "dropped"):
        return f"{record.status} ({'final' if record.final else 'not final'})"
    return record.status


def _line(record: SignedTransaction) -> str:
    block = "" if record.block_number is None else f" block {record.block_number}"
    fee = "" if record.fee_wei is None else f" fee {format_native_amount(record.fee_wei)}"
    error = f" ({record.error})" if record.error else ""
    return (
        f"{record.intent_id:40} {_status(record):20} nonce {record.nonce:<5} {record.chain}:{record.tx_hash}"
        f"{block}{fee}{error}"
    )


def _solana_line(record: SignedSolanaTransaction) -> str:
    slot = "" if record.slot is None else f" slot {record.slot}"
    error = f" ({record.error})" if record.error else ""
    return (
        f"{record.intent_id:40} {_status(record):20} {record.chain}:{record.tx_signature or record.signature}"
        f"{slot}{error}"
    )


def _bitcoin_line(record: SignedBitcoinTransaction) -> str:
    block = "" if record.block_hash is None else f" block {record.block_hash} ({record.confirmations} conf.)"
    error = f" ({record.error})" if record.error else ""
    return f"{record.intent_id:40} {_status(record):20} {record.chain}:{record.txid} fee {record.fee_sats} sat{block}{error}"


def _family_line(record: Signed) -> str:
    if isinstance(record, SignedSolanaTransaction):
        return _solana_line(record)
    if isinstance(record, SignedBitcoinTransaction):
        return _bitcoin_line(record)
    return _line(record)


def _rejected_line(record: IntentRejected) -> str:
    # One line a record: a reason can hold a validator's multi-line report.
    reason = "; ".join(line.strip() for line in record.reason.splitlines() if line.strip())
    return f"{record.intent_id:40} rejected  at {record.stage}: {record.code}: {reason}"


async def cancel(settings: Settings, agent_id: str, wanted: str, reason: str, wait_s: float) -> dict[str, Any]:
    """An admin's signed denial of an intent signed sign-only whose bytes have not landed: the
    signer cancels its transaction. What the signer reported within ``wait_s`` (its record:
    ``cancelled`` once the cancellation is signed and sent), or None."""
    record = cancellable(await agent_transactions(settings, agent_id), agent_id, wanted)
    outcome = await send_cancellation(settings, record, human_decision(settings, record, "deny", reason), wait_s)
    where = {"txid": record.txid} if isinstance(record, SignedBitcoinTransaction) else {"nonce": record.nonce}
    return {
        "intent_id": record.intent_id,
        "agent_id": agent_id,
        **where,
        "reason": reason,
        "admin_key_id": settings.admin_id,
        "outcome": None
        if outcome is None
        else outcome.model_dump(mode="json", by_alias=True, exclude={"service_signature"}),
    }


def cmd_cancel(args: argparse.Namespace) -> int:
    settings = load()
    if not args.id:
        return fail(
            "warden txs cancel", "name the transaction: `warden txs cancel ID --agent A` (intent id or hash)", 2
        )
    try:
        doc = asyncio.run(cancel(settings, args.agent, args.id, args.reason, args.wait))
    except LookupError as exc:
        return fail("warden txs cancel", exc)
    outcome = doc["outcome"]
    if args.json:
        print_json(doc)
    elif outcome is None:
        note(f"cancellation of {args.id} published; no outcome within {args.wait:.0f} s (`warden tail` follows it)")
    elif "txid" in doc:
        print(f"{doc['intent_id']}: {outcome['status']}: {outcome.get('error') or ''}")
    else:
        print(
            f"{doc['intent_id']}: {outcome['status']} at nonce {doc['nonce']} by {outcome.get('replaced_by') or outcome['tx_hash']}"
        )
    return 0 if outcome is not None and outcome.get("status") == "cancelled" else 1


def cmd_txs(args: argparse.Namespace) -> int:
    return cmd_cancel(args) if args.action == "cancel" else _list_or_show(args)


def _list_or_show(args: argparse.Namespace) -> int:
    settings = load()
    history: dict[str, list[SignedTransaction]] = {}  # filled for show only: list needs none
    found = asyncio.run(agent_transactions(settings, args.agent, history=history if args.action == "show" else None))
    records = found.transactions
    if args.action == "show":
        if not args.id:
            return fail(
                "warden txs show", "name the transaction: `warden txs show ID --agent A` (intent id or hash)", 2
            )
        # By intent id, by its current hash, or by the hash of a transaction a fee bump replaced.
        wanted = [r for r in records if args.id in (r.intent_id, r.tx_hash, *r.replaces)]
        refusals = [r for r in found.rejected if r.intent_id == args.id]
        if not wanted and refusals:
            if args.json:
                print_json({"agent_id": args.agent, "intent_id": args.id, "rejected": [_row(r) for r in refusals]})
                return 0
            for refusal in refusals:
                print(_rejected_line(refusal) + f"  (intent_digest {refusal.intent_digest})")
            return 0
        others: list[Signed] = [
            *(r for r in found.solana_transactions if args.id in (r.intent_id, r.tx_signature, r.signature)),
            *(r for r in found.bitcoin_transactions if args.id in (r.intent_id, r.txid)),
        ]
        if wanted:
            return _show(args, settings, wanted[0], history[wanted[0].intent_id])
        if others:
            return _show(args, settings, others[0], None)
        return fail(
            "warden txs show",
            f"no transaction of agent {args.agent!r} with intent id or hash "
            f"{args.id!r}; `warden txs list --agent {args.agent}` lists them",
            1,
        )
    return _list(args, found)


def _show(
    args: argparse.Namespace,
    settings: Settings,
    record: Signed,
    history: list[SignedTransaction] | None,
) -> int:
    """``warden txs show``: the transaction's newest record field by field, an EVM one's
    ``history`` of statuses (a Solana transaction lands as it was signed or not at all: no fee
    bumps or reorgs to tell), and with ``--proof`` its receipt."""
    row = _row(record, args.include_signed_tx)
    if history is not None:
        row["history"] = status_history(history)
    if args.proof:
        digest = record.intent_digest
        if digest is None:  # every signer names it; the field is optional for unreadable records' refusals
            return fail(
                "warden txs show --proof", "the transaction's record names no intent digest to ask a receipt by", 1
            )
        try:
            row["receipt"] = asyncio.run(outcome_receipt(settings, record.intent_id, record.agent_id, digest))
        except ReceiptUnavailable as exc:
            return fail("warden txs show --proof", exc, 1)
    if args.json:
        print_json(row)
        return 0
    for name, value in row.items():
        if name not in ("history", "receipt"):
            print(f"{name:18} {value}")
    if history is not None:
        print("history")
        for step in row["history"]:
            where = "" if step["block_number"] is None else f" block {step['block_number']}"
            final = " final" if step["final"] else ""
            print(
                f"  {step['status']:9} {step['tx_hash']}{where}{final}"
                + (f"  ({step['error']})" if step["error"] else "")
            )
    if args.proof:
        print("receipt (c2sp.org/tlog-proof; check it with `warden audit check-receipt`)")
        print(row["receipt"], end="")
    return 0


def _list(args: argparse.Namespace, found: AgentRecords) -> int:
    """``warden txs list``: every family's transactions, oldest first (a row names its chain, a
    line its network and its id there), then the rejections."""
    records, forged = found.transactions, found.forged
    listed: list[Signed] = sorted(
        [*records, *found.solana_transactions, *found.bitcoin_transactions], key=lambda r: r.signed_at
    )
    if args.json:
        print_json(
            {
                "agent_id": args.agent,
                "transactions": [_row(r, args.include_signed_tx) for r in listed],
                "rejected": [_row(r) for r in found.rejected],
                "forged_records_ignored": forged,
            }
        )
        return 0
    for record in listed:
        print(_family_line(record))
    for rejection in found.rejected:
        print(_rejected_line(rejection))
    counts = {s: sum(1 for r in listed if _status(r) == s) for s in sorted({_status(r) for r in listed})}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items()) or "none"
    print(
        f"{len(listed)} transaction(s) of {args.agent}: {summary}"
        + (f"; {len(found.rejected)} intent(s) rejected" if found.rejected else "")
        + (f"; {forged} forged record(s) ignored" if forged else "")
    )
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    add_json_flag(p)
    p.set_defaults(handler=cmd_txs)
    p.add_argument("action", choices=("list", "show", "cancel"))
    p.add_argument("id", nargs="?", help="show, cancel: the intent id or the transaction hash")
    p.add_argument("--agent", required=True)
    p.add_argument("--include-signed-tx", action="store_true", help="also print the raw signed transaction")
    p.add_argument(
        "--proof", action="store_true", help="show: also the receipt of its newest outcome (a witnessed tlog-proof)"
    )
    p.add_argument("--reason", default="", help="cancel: recorded with the admin's denial in the audit ledger")
    p.add_argument("--wait", type=float, default=30.0, help="cancel: seconds to wait for the signer (default 30)")
