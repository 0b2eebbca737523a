"""``warden txs list|show``: what happened to an agent's transactions.

Reads ``warden.txs.signed`` from the start and keeps, per intent, the newest status the signer
reported (a final one, mined, failed, replaced or dropped, wins over signed, broadcast and
stuck) and the history of every status in order (``show`` prints it: the fee bumps, why it was
stuck). Only records signed by a pinned signer key count; any other is left out and counted as
forged. ``signed_tx`` (the raw signed bytes) is shown only with ``--include-signed-tx``, as the
seed API gates it.
"""

from __future__ import annotations

import argparse
import asyncio

from infra.cli.output import add_json_flag, fail, print_json
from infra.client import read_outcome
from runtime.config import Settings, load
from runtime.kafka import read_to_quiet
from runtime.trust import PinnedServiceKeys
from schemas import topics
from schemas.auth import outcome_forgery
from schemas.fields import format_native_amount
from schemas.models import FINAL_TX_STATUSES, SignedTransaction


async def agent_transactions(settings: Settings, agent_id: str, idle_polls: int = 5,
                             history: dict[str, list[SignedTransaction]] | None = None
                             ) -> tuple[list[SignedTransaction], int]:
    """(the newest authentic record per intent of ``agent_id``, oldest first; forged records seen).
    With ``history``, every authentic record per intent id is added to it, in topic order."""
    keys = PinnedServiceKeys(settings)
    newest: dict[str, SignedTransaction] = {}
    forged = 0
    async for topic, value in read_to_quiet(settings, (topics.TXS_SIGNED,), idle_polls):
        record = read_outcome(topic, value)
        if not isinstance(record, SignedTransaction) or record.agent_id != agent_id:
            continue
        if outcome_forgery(record, keys) is not None:
            forged += 1
            continue
        if history is not None:
            history.setdefault(record.intent_id, []).append(record)
        known = newest.get(record.intent_id)
        if known is None or known.status not in FINAL_TX_STATUSES or record.status in FINAL_TX_STATUSES:
            newest[record.intent_id] = record
    return sorted(newest.values(), key=lambda r: (r.signed_at, r.nonce)), forged


def _row(record: SignedTransaction, include_signed_tx: bool) -> dict:
    row = record.model_dump(mode="json", by_alias=True, exclude={"service_signature"})
    if not include_signed_tx:
        row.pop("signed_tx")
    return row


def _history(records: list[SignedTransaction]) -> list[dict]:
    """Each status change once (a redelivery re-publishes the newest record: not a change)."""
    steps: list[dict] = []
    for record in records:
        step = {"status": record.status, "tx_hash": record.tx_hash, "error": record.error}
        if not steps or steps[-1] != step:
            steps.append(step)
    return steps


def _line(record: SignedTransaction) -> str:
    block = "" if record.block_number is None else f" block {record.block_number}"
    fee = "" if record.fee_wei is None else f" fee {format_native_amount(record.fee_wei)}"
    error = f" ({record.error})" if record.error else ""
    return (f"{record.intent_id:40} {record.status:9} nonce {record.nonce:<5} {record.chain}:{record.tx_hash}"
            f"{block}{fee}{error}")


def cmd_txs(args) -> int:
    settings = load()
    history: dict[str, list[SignedTransaction]] | None = {} if args.action == "show" else None
    records, forged = asyncio.run(agent_transactions(settings, args.agent, history=history))
    if args.action == "show":
        if not args.id:
            return fail("warden txs show", "name the transaction: `warden txs show ID --agent A` (intent id or hash)", 2)
        # By intent id, by its current hash, or by the hash of a transaction a fee bump replaced.
        wanted = [r for r in records if args.id in (r.intent_id, r.tx_hash, *r.replaces)]
        if not wanted:
            return fail("warden txs show", f"no transaction of agent {args.agent!r} with intent id or hash "
                                           f"{args.id!r}; `warden txs list --agent {args.agent}` lists them", 1)
        row = _row(wanted[0], args.include_signed_tx)
        row["history"] = _history(history[wanted[0].intent_id])
        if args.json:
            print_json(row)
            return 0
        for name, value in row.items():
            if name != "history":
                print(f"{name:18} {value}")
        print("history")
        for step in row["history"]:
            print(f"  {step['status']:9} {step['tx_hash']}" + (f"  ({step['error']})" if step["error"] else ""))
        return 0
    if args.json:
        print_json({"agent_id": args.agent, "transactions": [_row(r, args.include_signed_tx) for r in records],
                    "forged_records_ignored": forged})
        return 0
    for record in records:
        print(_line(record))
    counts = {status: sum(1 for r in records if r.status == status) for status in sorted({r.status for r in records})}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items()) or "none"
    print(f"{len(records)} transaction(s) of {args.agent}: {summary}"
          + (f"; {forged} forged record(s) ignored" if forged else ""))
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    add_json_flag(p)
    p.set_defaults(handler=cmd_txs)
    p.add_argument("action", choices=("list", "show"))
    p.add_argument("id", nargs="?", help="show: the intent id or the transaction hash")
    p.add_argument("--agent", required=True)
    p.add_argument("--include-signed-tx", action="store_true", help="also print the raw signed transaction")
