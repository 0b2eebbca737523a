"""``warden approvals list|approve|deny|sign``: what waits for admins, and the admins' word.

An intent above its policy's approval threshold is parked by the streams worker
(``warden.intents.awaiting_approval``) with its spend reserved. ``list`` reads the parked
records (only those a pinned worker key signed) and leaves out every one that has since been
approved, denied or expired. ``approve`` and ``deny`` sign a `HumanApproval` with the admin key
(the one that signs policies, pinned by the worker and the signer alike), bound to the parked
intent's digest, publish it on ``warden.approvals`` and wait for what follows: the signed
transaction or message, or the refusal.

Where the deployment needs several admins for an action (``WARDEN_ADMIN_QUORUM``), ``approve``
and `warden agents` propose instead (`sdk.quorum`): ``list`` and ``show`` print each open
proposal with who has signed so far, the whole change it makes against what is in force
(`sdk.changes`) and the digest of the bytes an admin signs; ``sign`` adds this admin's
signature, publishing the whole record once enough admins signed. ``sign --digest`` signs only
those bytes, and at a terminal ``sign`` asks for it: an admin signs what they were shown.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import end_offsets
from runtime.proposals import Gathered, NotWhatWasShown
from schemas import topics
from schemas.admins import VaultChange
from schemas.codes import Code
from schemas.fields import format_native_amount
from schemas.outcomes import HumanApproval, IntentParked
from schemas.policy import AgentPolicy
from sdk.changes import InForce
from sdk.client import (
    OUTCOME_TOPICS,
    Client,
    human_decision,
    pending_approvals,
    wait_outcomes,
    wait_policy_applied,
)
from sdk.moves import Move, headline, parked_moves
from sdk.pending import change_lines, open_decisions, parked_row, proposal_row, solana_lines
from sdk.quorum import (
    NotTheKeyInForce,
    add_signature,
    propose,
    publish_proposal,
    wait_vault_applied,
)
from sdk.records import admins_in_force, settled_verdicts

# What each parked intent moves, by intent id.
Moved = dict[str, list[Move]]


def _one(proposals: list[Gathered], proposal_id: str) -> Gathered:
    """The one open proposal whose id starts with ``proposal_id``; LookupError says why not."""
    matches = [g for g in proposals if g.proposal_id.startswith(proposal_id.lower())]
    if len(matches) != 1:
        raise LookupError(
            f"{'no' if not matches else 'more than one'} open proposal starts with {proposal_id!r} (expired, "
            "already in force, or unknown); `warden approvals list` shows the open ones"
        )
    return matches[0]


def _print_proposal(row: dict[str, Any]) -> None:
    signers = ", ".join(row["signed_by"]) or "none"
    print(
        f"{row['proposal_id'][:16]}  {row['what']}, proposed by {row['proposed_by']}: {len(row['signed_by'])} of "
        f"{row['needed']} signatures ({signers}), expires {row['expires_at'][:16]}Z"
    )
    print(f"  digest {row['digest']} (SHA-256 of the bytes an admin signs)")
    for line in change_lines(row["change"]):
        print(line)
    for admin_id in row.get("own_signatures_missing", ()):
        print(f"  {_waits_for_own(admin_id)}")


def _waits_for_own(admin_id: str) -> str:
    """Why an admin set waits for ``admin_id``, and what to do: the services take a change of an
    admin's key only with that admin's own signature, made with the key in force."""
    return (
        f"needs {admin_id}'s own signature: the set changes {admin_id}'s key, and no service takes it until "
        f"{admin_id} signs it with the key in force (`WARDEN_ADMIN_ID={admin_id} warden approvals sign`); "
        f"if {admin_id} lost that key, propose instead a set that removes {admin_id} and adds a new admin "
        "under a new id"
    )


async def _listed(settings: Settings, agent: str | None) -> tuple[list[IntentParked], list[Gathered], InForce, Moved]:
    """What waits for admins (of ``agent`` alone, if given), with what each parked intent moves."""
    now = utcnow()
    waiting, proposals, in_force = await open_decisions(settings, now)
    if agent:
        waiting = [p for p in waiting if p.agent_id == agent]
        proposals = [g for g in proposals if getattr(g.record, "agent_id", None) == agent]
    return waiting, proposals, in_force, await parked_moves(settings, waiting, in_force.policies, now)


def cmd_list(args: argparse.Namespace) -> int:
    settings = load()
    waiting, proposals, in_force, moves = asyncio.run(_listed(settings, args.agent))
    rows = [proposal_row(g, in_force) for g in proposals]
    if args.json:
        print_json({"awaiting_approval": [parked_row(p, moves[p.intent_id]) for p in waiting], "proposals": rows})
        return 0
    for row in rows:
        _print_proposal(row)
    if proposals:
        print(
            f"{len(proposals)} proposal(s) waiting for admins' signatures; "
            "`warden approvals sign ID --digest DIGEST` signs exactly the change shown"
        )
    for parked in waiting:
        print(
            f"{parked.intent_id:40} {parked.agent_id:20} {headline(moves[parked.intent_id])}  "
            f"expires {parked.expires_at:%H:%M:%S}Z\n{'':40} {parked.reason}"
        )
        for move in moves[parked.intent_id]:
            print(f"{'':40} moves: {move.line()}")
        # Set exactly for intent_type solana_transaction (TransactionIntent's validation).
        if parked.intent.solana_transaction is not None:
            for line in solana_lines(parked.intent.solana_transaction):
                print(f"{'':40} {line}")
    print(
        f"{len(waiting)} intent(s) awaiting approval"
        + (f" for {args.agent}" if args.agent else "")
        + ("; `warden approvals approve ID` or `deny ID`" if waiting else "")
    )
    return 0


async def decide(settings: Settings, intent_id: str, decision: str, reason: str, wait_s: float) -> dict[str, Any]:
    """Sign and publish the admin's decision on a parked intent; return what followed."""
    now = utcnow()
    waiting = {p.intent_id: p for p in await pending_approvals(settings, now)}
    parked = waiting.get(intent_id)
    if parked is None:
        raise LookupError(
            f"no intent {intent_id!r} is awaiting approval (decided, expired or unknown); "
            "`warden approvals list` shows those that are"
        )
    admins = await admins_in_force(settings)
    if decision == "approve" and admins.threshold("approval") > 1:
        approval = human_decision(settings, parked, decision, reason)
        proposal = propose(approval, "approval", now)
        await publish_proposal(settings, proposal)
        return {
            "intent_id": intent_id,
            "agent_id": parked.agent_id,
            "decision": decision,
            "reason": reason,
            "admin_key_id": settings.admin_id,
            "proposal_id": proposal.proposal_id,
            "signed_by": [settings.admin_id],
            "needed": admins.threshold("approval"),
            "outcome": None,
        }
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        await client.decide(parked, decision, reason)
    outcomes = await wait_outcomes(settings, [parked.intent], wait_s, start)
    outcome = outcomes.get(intent_id)
    doc: dict[str, Any] = {
        "intent_id": intent_id,
        "agent_id": parked.agent_id,
        "decision": decision,
        "reason": reason,
        "admin_key_id": settings.admin_id,
        "outcome": None,
    }
    if outcome is not None and not isinstance(outcome, IntentParked):
        doc["outcome"] = outcome.model_dump(mode="json", by_alias=True, exclude={"service_signature"})
    return doc


def cmd_decide(args: argparse.Namespace) -> int:
    settings = load()
    decision = "approve" if args.action == "approve" else "deny"
    try:
        doc = asyncio.run(decide(settings, args.id, decision, args.reason, args.wait))
    except LookupError as exc:
        return fail(f"warden approvals {args.action}", exc)
    if "proposal_id" in doc:
        if args.json:
            print_json(doc)
        else:
            print(
                f"{args.id}: approval proposed ({doc['proposal_id'][:16]}), signed by {settings.admin_id}; "
                f"{doc['needed']} admins must sign: another admin runs `warden approvals sign {doc['proposal_id'][:16]}`"
            )
        return 0
    outcome = doc["outcome"]
    took_effect = outcome is not None and (
        (decision == "deny" and outcome.get("code") == Code.APPROVAL_DENIED)
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
    elif "recent_blockhash" in outcome:  # a Solana transaction
        print(
            f"{args.id}: {outcome['status']} {outcome['chain']} signature {outcome['signature']} by {outcome['from']}"
        )
    else:
        print(f"{args.id}: signed ({outcome['kind']}) {outcome['message_hash']}")
    return 0 if took_effect else 1


async def show(settings: Settings, proposal_id: str) -> dict[str, Any]:
    """One open proposal, with the whole change it makes and the digest of the bytes signed."""
    _, proposals, in_force = await open_decisions(settings, utcnow())
    return proposal_row(_one(proposals, proposal_id), in_force)


def cmd_show(args: argparse.Namespace) -> int:
    try:
        row = asyncio.run(show(load(), args.id))
    except LookupError as exc:
        return fail("warden approvals show", exc)
    if args.json:
        print_json(row)
    else:
        _print_proposal(row)
        print(f"to sign exactly this: `warden approvals sign {row['proposal_id'][:16]} --digest {row['digest']}`")
    return 0


async def sign(settings: Settings, proposal_id: str, wait_s: float, digest: str | None = None) -> dict[str, Any]:
    """This admin's signature on an open proposal (with ``digest``: only if the bytes signed are
    the ones it names, else `NotWhatWasShown`); the whole record published if it completes the
    quorum, and what followed."""
    now = utcnow()
    waiting, proposals, in_force = await open_decisions(settings, now)
    gathered = _one(proposals, proposal_id)
    me = settings.admin_id
    if in_force.admins.key(me) is None:
        raise LookupError(f"{me} (WARDEN_ADMIN_ID) is not a pinned admin; only pinned admins' signatures count")
    if me in gathered.signatures:
        raise LookupError(f"{me} has signed {gathered.proposal_id[:16]} already; another admin must sign it")
    row = proposal_row(gathered, in_force)  # the change as it stood when signed
    start = await end_offsets(settings, OUTCOME_TOPICS + (topics.AUDIT_EVENTS,))  # what follows, if it completes
    published = await add_signature(settings, gathered, me, now, digest)
    doc = {
        **row,
        "signed_by": gathered.signers,
        "own_signatures_missing": gathered.own_signatures_missing,
        "published": bool(published),
        "outcome": None,
    }
    if not published:
        return doc
    record = gathered.assembled()
    if isinstance(record, AgentPolicy):
        doc["outcome"] = await wait_policy_applied(settings, record, wait_s, start)
    elif isinstance(record, HumanApproval):
        parked = [p for p in waiting if p.intent_id == record.intent_id]
        if parked:
            outcome = (await wait_outcomes(settings, [parked[0].intent], wait_s, start)).get(record.intent_id)
            if outcome is not None and not isinstance(outcome, IntentParked):
                doc["outcome"] = outcome.model_dump(mode="json", by_alias=True, exclude={"service_signature"})
    elif isinstance(record, VaultChange):
        records = set(published)
        applied, refused = await wait_vault_applied(settings, records, start, wait_s)
        doc["outcome"] = (
            f"refused by a signer: {next(iter(refused.values()))}"
            if refused
            else f"{len(applied)} of {len(records)} key events applied by the signer"
        )
    else:  # a chain set or an admin set: what the signer and a streams worker said of it
        verdicts = await settled_verdicts(settings, record, wait_s, start)
        doc["outcome"], doc["verdicts"] = verdicts.outcome, verdicts.as_dict()
    return doc


def _at_a_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def cmd_sign(args: argparse.Namespace) -> int:
    if args.digest is None and _at_a_terminal():
        # A person signs what they were shown: the change, then its digest given back.
        shown = cmd_show(args)
        if shown == 0:
            note("warden approvals sign: nothing signed; review the change above and sign it with the --digest shown")
        return 2
    settings = load()
    try:
        doc = asyncio.run(sign(settings, args.id, args.wait, args.digest))
    except (LookupError, NotWhatWasShown, NotTheKeyInForce) as exc:
        return fail("warden approvals sign", exc)
    if args.json:
        print_json(doc)
        return 0
    signed = f"{len(doc['signed_by'])} of {doc['needed']} ({', '.join(doc['signed_by'])})"
    if not doc["published"]:
        waiting = ["waiting for more admins"] if len(doc["signed_by"]) < doc["needed"] else []
        waiting += [_waits_for_own(admin_id) for admin_id in doc["own_signatures_missing"]]
        print(f"{doc['what']}: signed by {settings.admin_id}; {signed}; not published: {'; '.join(waiting)}")
        return 0
    outcome = doc["outcome"]
    if isinstance(outcome, dict):
        outcome = outcome.get("code") or outcome.get("status") or outcome.get("kind")
    print(f"{doc['what']}: quorum reached, {signed}; published: {outcome or 'no outcome yet'}")
    return 0


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
    showing = sub.add_parser("show", help="one open proposal: the whole change against what is in force, its digest")
    add_json_flag(showing)
    showing.add_argument("id", help="the proposal id (or its first characters), as `warden approvals list` shows it")
    showing.set_defaults(handler=cmd_show)
    signing = sub.add_parser("sign", help="add this admin's signature to an open proposal (WARDEN_ADMIN_ID)")
    add_json_flag(signing)
    signing.add_argument("id", help="the proposal id (or its first characters), as `warden approvals list` shows it")
    signing.add_argument(
        "--digest",
        type=_digest,
        help="sign only if the proposal's bytes have this digest (the one `list` or `show` printed beside the "
        "change); required at a terminal",
    )
    signing.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the effect (default 30)")
    signing.set_defaults(handler=cmd_sign)


def _digest(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise argparse.ArgumentTypeError(
            f"{text[:80]!r} is not a digest: 64 hex digits, as `warden approvals show ID` prints beside the change"
        )
    return text.lower()
