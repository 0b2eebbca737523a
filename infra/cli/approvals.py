"""``warden approvals list|approve|deny|sign``: what waits for admins, and the admins' word.

An intent above its policy's approval threshold is parked by the streams worker
(``warden.intents.awaiting_approval``) with its spend reserved. ``list`` reads the parked
records (only those a pinned worker key signed) and leaves out every one that has since been
approved, denied or expired. ``approve`` and ``deny`` sign a `HumanApproval` with the admin key
(the one that signs policies, pinned by the worker and the signer alike), bound to the parked
intent's digest, publish it on ``warden.approvals`` and wait for what follows: the signed
transaction or message, or the refusal.

Where the deployment needs several admins for an action (``WARDEN_ADMIN_QUORUM``), ``approve``
and `warden agents` propose instead (`sdk.quorum`): ``list`` shows each open proposal with who
has signed so far, and ``sign`` adds this admin's signature, publishing the whole record once
enough admins signed.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import end_offsets
from schemas import topics
from schemas.admins import AdminSet, VaultChange
from schemas.auth import Admins
from schemas.chain_set import ChainSet
from schemas.fields import format_native_amount
from schemas.outcomes import HumanApproval, IntentParked
from schemas.policy import AgentPolicy
from sdk.client import (
    OUTCOME_TOPICS,
    Client,
    human_decision,
    pending_approvals,
    policy_in_force,
    wait_outcomes,
    wait_policy_applied,
)
from sdk.quorum import Gathered, add_signature, open_proposals, propose, publish_proposal, wait_vault_applied
from sdk.records import admins_in_force, chain_set_verdicts, chains_in_force


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


def _proposal_row(gathered: Gathered) -> dict:
    record = gathered.record
    return {
        "proposal_id": gathered.proposal_id,
        "action": gathered.action,
        "what": _what(gathered),
        "agent_id": getattr(record, "agent_id", None),
        "signed_by": gathered.signers,
        "needed": gathered.needed,
        "not_counted": gathered.refused,
        "expires_at": gathered.expires_at.isoformat(),
    }


def _what(gathered: Gathered) -> str:
    record = gathered.record
    if isinstance(record, AgentPolicy):
        return f"policy v{record.version} of {record.agent_id}"
    if isinstance(record, HumanApproval):
        return f"{record.decision} intent {record.intent_id} of {record.agent_id}"
    if isinstance(record, ChainSet):
        return f"chain set v{record.version}: {record.summary()}"
    if isinstance(record, VaultChange):
        return "key change: " + "; ".join(_vault_event(e.value) for e in record.events)
    return f"admin set v{record.version}: {', '.join(sorted(record.admins))}"


def _vault_event(value: str) -> str:
    """What one vault event does, in a few words: its type, vault and path (never key material:
    the events hold only wrapped keys and public data)."""
    try:
        event = json.loads(value)
    except ValueError:
        return "an unreadable event"
    where = "/".join(str(event[k]) for k in ("vault", "path") if event.get(k))
    version = f" v{event['version']}" if event.get("version") else ""
    return f"{event.get('type', '?')} {where}{version}".strip()


async def _open(settings: Settings, now) -> tuple[list[IntentParked], list[Gathered], Admins]:
    admins = await admins_in_force(settings)
    waiting = await pending_approvals(settings, now)
    proposals = list((await open_proposals(settings, admins, now)).values())
    parked = {p.intent_id for p in waiting}
    in_force = {}
    chains: list = []  # the chain set in force, once a proposal needs it

    async def still_open(gathered: Gathered) -> bool:
        record = gathered.record
        if isinstance(record, HumanApproval):
            return record.intent_id in parked
        if isinstance(record, AdminSet):
            return record.version > admins.version
        if isinstance(record, ChainSet):
            if not chains:
                chains.append(await chains_in_force(settings))
            return chains[0] is None or chains[0].version < record.version
        if isinstance(record, VaultChange):
            return not gathered.complete  # the signature that completed it published it
        if record.agent_id not in in_force:
            in_force[record.agent_id] = await policy_in_force(settings, record.agent_id)
        current = in_force[record.agent_id]
        return current is None or current.version < record.version

    return waiting, [g for g in proposals if await still_open(g)], admins


def cmd_list(args) -> int:
    settings = load()
    waiting, proposals, _ = asyncio.run(_open(settings, utcnow()))
    if args.agent:
        waiting = [p for p in waiting if p.agent_id == args.agent]
        proposals = [g for g in proposals if getattr(g.record, "agent_id", None) == args.agent]
    if args.json:
        print_json(
            {"awaiting_approval": [_row(p) for p in waiting], "proposals": [_proposal_row(g) for g in proposals]}
        )
        return 0
    for gathered in proposals:
        print(
            f"{gathered.proposal_id[:16]:16} {_what(gathered)}: {len(gathered.signers)} of {gathered.needed} "
            f"signatures ({', '.join(gathered.signers) or 'none'}), expires {gathered.expires_at:%Y-%m-%d %H:%M}Z"
        )
    if proposals:
        print(f"{len(proposals)} proposal(s) waiting for admins' signatures; `warden approvals sign ID`")
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
    doc = {
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


def cmd_decide(args) -> int:
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


async def sign(settings: Settings, proposal_id: str, wait_s: float) -> dict:
    """This admin's signature on an open proposal; the whole record published if it completes the
    quorum, and what followed."""
    now = utcnow()
    waiting, proposals, admins = await _open(settings, now)
    matches = [g for g in proposals if g.proposal_id.startswith(proposal_id.lower())]
    if len(matches) != 1:
        raise LookupError(
            f"{'no' if not matches else 'more than one'} open proposal starts with {proposal_id!r} (expired, "
            "already in force, or unknown); `warden approvals list` shows the open ones"
        )
    (gathered,) = matches
    me = settings.admin_id
    if admins.key(me) is None:
        raise LookupError(f"{me} (WARDEN_ADMIN_ID) is not a pinned admin; only pinned admins' signatures count")
    if me in gathered.signatures:
        raise LookupError(f"{me} has signed {gathered.proposal_id[:16]} already; another admin must sign it")
    start = await end_offsets(settings, OUTCOME_TOPICS + (topics.AUDIT_EVENTS,))  # what follows, if it completes
    published = await add_signature(settings, gathered, me, now)
    doc = {**_proposal_row(gathered), "published": bool(published), "outcome": None}
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
    elif isinstance(record, ChainSet):
        verdicts = await chain_set_verdicts(settings, record, wait_s, start)
        doc["outcome"], doc["verdicts"] = verdicts.outcome, verdicts.as_dict()
    elif isinstance(record, VaultChange):
        records = set(published)
        applied, refused = await wait_vault_applied(settings, records, start, wait_s)
        doc["outcome"] = (
            f"refused by a signer: {next(iter(refused.values()))}"
            if refused
            else f"{len(applied)} of {len(records)} key events applied by the signer"
        )
    else:
        doc["outcome"] = f"admin set v{(await admins_in_force(settings)).version} in force"
    return doc


def cmd_sign(args) -> int:
    settings = load()
    try:
        doc = asyncio.run(sign(settings, args.id, args.wait))
    except LookupError as exc:
        return fail("warden approvals sign", exc)
    if args.json:
        print_json(doc)
        return 0
    signed = f"{len(doc['signed_by'])} of {doc['needed']} ({', '.join(doc['signed_by'])})"
    if not doc["published"]:
        print(f"{doc['what']}: signed by {settings.admin_id}; {signed}; waiting for more admins")
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
    signing = sub.add_parser("sign", help="add this admin's signature to an open proposal (WARDEN_ADMIN_ID)")
    add_json_flag(signing)
    signing.add_argument("id", help="the proposal id (or its first characters), as `warden approvals list` shows it")
    signing.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the effect (default 30)")
    signing.set_defaults(handler=cmd_sign)
