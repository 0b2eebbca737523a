"""``warden approvals list|approve|deny``: the intents waiting for an admin, and the admin's word.

An intent above its policy's approval threshold is parked by the streams worker
(``warden.intents.awaiting_approval``) with its spend reserved. ``list`` reads the parked
records (only those a pinned worker key signed) and leaves out every one that has since been
approved, denied or expired. ``approve`` and ``deny`` sign a `HumanApproval` with the admin key
(the one that signs policies, pinned by the worker and the signer alike), bound to the parked
intent's digest, publish it on ``warden.approvals`` and wait for what follows: the signed
transaction or message, or the refusal.
"""

from __future__ import annotations

import argparse
import asyncio

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import end_offsets
from runtime.trust import LOCAL_ADMIN_ID
from schemas.fields import format_native_amount
from schemas.outcomes import IntentParked
from sdk.client import OUTCOME_TOPICS, Client, pending_approvals, wait_outcomes


def _row(parked: IntentParked) -> dict:
    intent = parked.intent
    return {
        "intent_id": parked.intent_id,
        "agent_id": parked.agent_id,
        "kind": intent.intent_type,
        "chain": intent.chain,
        "to": intent.to,
        "value": intent.value,
        "reason": parked.reason,
        "parked_at": parked.parked_at.isoformat(),
        "expires_at": parked.expires_at.isoformat(),
        "intent_digest": parked.intent_digest,
    }


def cmd_list(args) -> int:
    settings = load()
    waiting = asyncio.run(pending_approvals(settings, utcnow()))
    if args.agent:
        waiting = [p for p in waiting if p.agent_id == args.agent]
    if args.json:
        print_json({"awaiting_approval": [_row(p) for p in waiting]})
        return 0
    for parked in waiting:
        what = (
            f"{parked.intent.value} to {parked.intent.to}"
            if parked.intent.intent_type == "transaction"
            else parked.intent.intent_type
        )
        print(
            f"{parked.intent_id:40} {parked.agent_id:20} {what}  expires {parked.expires_at:%H:%M:%S}Z\n"
            f"{'':40} {parked.reason}"
        )
    print(
        f"{len(waiting)} intent(s) awaiting approval"
        + (f" for {args.agent}" if args.agent else "")
        + ("; `warden approvals approve ID` or `deny ID`" if waiting else "")
    )
    return 0


async def decide(settings: Settings, intent_id: str, decision: str, reason: str, wait_s: float) -> dict:
    """Sign and publish the admin's decision on a parked intent; return what followed."""
    now = utcnow()
    waiting = {p.intent_id: p for p in await pending_approvals(settings, now)}
    parked = waiting.get(intent_id)
    if parked is None:
        raise LookupError(
            f"no intent {intent_id!r} is awaiting approval (decided, expired or unknown); "
            "`warden approvals list` shows those that are"
        )
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        await client.decide(parked, decision, reason)
    outcomes = await wait_outcomes(settings, [parked.intent], wait_s, start)
    outcome = outcomes.get(intent_id)
    doc = {
        "intent_id": intent_id,
        "agent_id": parked.agent_id,
        "decision": decision,
        "reason": reason,
        "admin_key_id": LOCAL_ADMIN_ID,
        "outcome": None,
    }
    if outcome is not None and not isinstance(outcome, IntentParked):
        doc["outcome"] = outcome.model_dump(mode="json", by_alias=True, exclude={"service_signature"})
    return doc


def cmd_decide(args) -> int:
    settings = load()
    decision = "approve" if args.action == "approve" else "deny"
    try:
        doc = asyncio.run(decide(settings, args.id, decision, args.reason, args.wait))
    except LookupError as exc:
        return fail(f"warden approvals {args.action}", exc)
    outcome = doc["outcome"]
    took_effect = outcome is not None and (
        (decision == "deny" and outcome.get("code") == "APPROVAL_DENIED")
        or (decision == "approve" and outcome.get("code") is None)
    )
    if args.json:
        print_json(doc)
    elif outcome is None:
        note(f"{decision} of {args.id} published; no outcome within {args.wait:.0f} s (`warden tail` follows it)")
    elif "code" in outcome:
        print(f"{args.id}: rejected at {outcome['stage']}: {outcome['code']} ({outcome['reason']})")
    elif "tx_hash" in outcome:
        print(
            f"{args.id}: {outcome['status']} {outcome['chain']}:{outcome['tx_hash']} nonce {outcome['nonce']} "
            f"value {format_native_amount(int(outcome['value_wei']))}"
        )
    else:
        print(f"{args.id}: signed ({outcome['kind']}) {outcome['message_hash']}")
    return 0 if took_effect else 1


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="intents waiting for an admin's approval")
    add_json_flag(listing)
    listing.add_argument("--agent", help="only this agent's")
    listing.set_defaults(handler=cmd_list)
    for action, help_ in (
        ("approve", "approve a parked intent (signed with the admin key)"),
        ("deny", "deny a parked intent (signed with the admin key)"),
    ):
        q = sub.add_parser(action, help=help_)
        add_json_flag(q)
        q.add_argument("id", help="the intent id, as `warden approvals list` shows it")
        q.add_argument("--reason", default="", help="recorded with the decision in the audit ledger")
        q.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the outcome (default 30)")
        q.set_defaults(handler=cmd_decide)
