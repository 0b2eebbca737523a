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
import base64
import binascii
import json
import re
import sys
from typing import Any

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import end_offsets
from schemas import topics
from schemas.admins import AdminSet, VaultChange, digest_of
from schemas.chain_set import ChainSet
from schemas.codes import Code
from schemas.fields import format_native_amount
from schemas.outcomes import HumanApproval, IntentParked
from schemas.passkeys import is_passkey
from schemas.policy import AgentPolicy
from sdk.changes import InForce, change_of
from sdk.client import (
    OUTCOME_TOPICS,
    Client,
    human_decision,
    pending_approvals,
    policy_in_force,
    wait_outcomes,
    wait_policy_applied,
)
from sdk.quorum import (
    Gathered,
    NotTheKeyInForce,
    NotWhatWasShown,
    add_signature,
    open_proposals,
    propose,
    publish_proposal,
    wait_vault_applied,
)
from sdk.records import admins_in_force, chains_in_force, settled_verdicts
from svm import transactions as solana_transactions


def _solana_lines(transaction: str) -> list[str]:
    """What a Solana intent's transaction (base64) does, instruction by instruction
    (`svm.transactions.describe`)."""
    try:
        return solana_transactions.describe(solana_transactions.read(base64.b64decode(transaction, validate=True)))
    except (ValueError, binascii.Error) as exc:
        return [f"! its transaction cannot be read ({exc}): do not approve it"]


def _row(parked: IntentParked) -> dict:
    intent = parked.intent
    # TransactionIntent holds a solana_transaction exactly when its intent_type is solana_transaction.
    transaction = intent.solana_transaction
    return {
        "intent_id": parked.intent_id,
        "agent_id": parked.agent_id,
        "kind": intent.intent_type,
        "chain": intent.chain,
        "to": intent.to,
        "value": intent.value,
        "instructions": None if transaction is None else _solana_lines(transaction),
        "reason": parked.reason,
        "parked_at": parked.parked_at.isoformat(),
        "expires_at": parked.expires_at.isoformat(),
        "intent_digest": parked.intent_digest,
    }


def _proposal_row(gathered: Gathered, in_force: InForce) -> dict:
    record = gathered.record
    return {
        "proposal_id": gathered.proposal_id,
        # What `sign --digest` checks: the SHA-256 of the bytes an admin signs (a proposal is named by it).
        "digest": digest_of(record.signing_bytes()),
        "action": gathered.action,
        "what": _what(gathered),
        "agent_id": getattr(record, "agent_id", None),
        "proposed_by": record.admin_key_id,
        "change": change_of(record, in_force, gathered.signers),
        "signed_by": gathered.signers,
        "needed": gathered.needed,
        # An admin set that changes these admins' keys waits for each one's own signature (schemas.admins).
        "own_signatures_missing": gathered.own_signatures_missing,
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


async def _open(settings: Settings, now) -> tuple[list[IntentParked], list[Gathered], InForce]:
    """The parked intents, the open proposals and what is in force that they change."""
    admins = await admins_in_force(settings)
    waiting = await pending_approvals(settings, now)
    proposals = list((await open_proposals(settings, admins, now)).values())
    in_force = InForce(admins, parked={p.intent_id: p for p in waiting})
    chains_read: list[bool] = []  # the chain set in force is read once a proposal needs it

    async def still_open(gathered: Gathered) -> bool:
        record = gathered.record
        if isinstance(record, HumanApproval):
            return record.intent_id in in_force.parked
        if isinstance(record, AdminSet):
            return record.version > admins.version
        if isinstance(record, ChainSet):
            if not chains_read:
                in_force.chains = await chains_in_force(settings)
                chains_read.append(True)
            return in_force.chains is None or in_force.chains.version < record.version
        if isinstance(record, VaultChange):
            return not gathered.complete  # the signature that completed it published it
        if record.agent_id not in in_force.policies:
            in_force.policies[record.agent_id] = await policy_in_force(settings, record.agent_id)
        current = in_force.policies[record.agent_id]
        return current is None or current.version < record.version

    return waiting, [g for g in proposals if await still_open(g)], in_force


def _one(proposals: list[Gathered], proposal_id: str) -> Gathered:
    """The one open proposal whose id starts with ``proposal_id``; LookupError says why not."""
    matches = [g for g in proposals if g.proposal_id.startswith(proposal_id.lower())]
    if len(matches) != 1:
        raise LookupError(
            f"{'no' if not matches else 'more than one'} open proposal starts with {proposal_id!r} (expired, "
            "already in force, or unknown); `warden approvals list` shows the open ones"
        )
    return matches[0]


_MARKS = {"added": "+", "removed": "-", "changed": "!", "key_changed": "!", "unchanged": " "}


def _value(value) -> str:
    return "(none)" if value is None else json.dumps(value, separators=(",", ":"))


def _field_lines(rows: list[dict], indent: str) -> list[str]:
    lines = []
    for row in rows:
        if row.get("added") or row.get("removed"):
            lines.append(f"{indent}! {row['field']}:")
            lines += [f"{indent}    + {_value(item)}" for item in row["added"]]
            lines += [f"{indent}    - {_value(item)}" for item in row["removed"]]
        else:
            lines.append(f"{indent}! {row['field']}: {_value(row['old'])} -> {_value(row['new'])}")
    return lines


def _fingerprint(key: dict | None) -> str | None:
    """A key of an admin set's change as people read it: its fingerprint, after "passkey " when it
    is one (the console's) rather than an Ed25519 key (the command line's)."""
    if key is None:
        return None
    return ("passkey " if is_passkey(key["public_key"]) else "") + key["fingerprint"]


def _admin_lines(change: dict) -> list[str]:
    version, count = change["version"], change["admin_count"]
    lines = [f"  admins, v{version['old']} -> v{version['new']} (key: SHA-256 of the public key, first 16 hex):"]
    for row in change["admins"]:
        old, new = _fingerprint(row["old_key"]), _fingerprint(row["new_key"])
        admin_id = row["admin_id"]
        text = {
            "added": f"added {admin_id} ({new})",
            "removed": f"removed {admin_id} ({old})",
            "key_changed": f"{old} -> {new}  KEY CHANGED: whoever holds the new key signs as {admin_id}; "
            + (
                f"signed by {admin_id} with the key in force"
                if row.get("own_signature")
                else f"needs {admin_id}'s own signature, with the key in force"
            ),
            "unchanged": f"{old}",
        }[row["change"]]
        if row.get("new_key_in_force_as"):
            text += f" (that key is {row['new_key_in_force_as']}'s in force)"
        lines.append(f"    {_MARKS[row['change']]} {row['admin_id']:20} {text}")
    lines.append(f"  thresholds, of {count['old']} admins -> of {count['new']}:")
    for row in change["thresholds"]:
        moved = f"{row['old']} -> {row['new']}  changed" if row["change"] == "changed" else f"{row['new']}"
        lines.append(f"    {_MARKS[row['change']]} {row['action']:9} {moved}")
    return lines


def _change_lines(change: dict) -> list[str]:
    """The change of one proposal (`sdk.changes`), for people: one line per admin, threshold,
    field, network or event; "+" added, "-" removed, "!" changed."""
    kind = change["kind"]
    if kind == "admins":
        return _admin_lines(change)
    if kind == "policy":
        old = change["version"]["old"]
        before = "no policy in force" if old is None else f"v{old} in force"
        return [f"  policy of {change['agent_id']}, {before} -> v{change['version']['new']}:"] + _field_lines(
            change["fields"], "    "
        )
    if kind == "chains":
        lines = [f"  chains, v{change['version']['old']} -> v{change['version']['new']}:"]
        for row in change["chains"]:
            if row["change"] in ("added", "removed"):
                lines.append(
                    f"    {_MARKS[row['change']]} {row['chain']} {row['change']}: {_value(row['new'] or row['old'])}"
                )
            else:
                lines.append(f"    {_MARKS[row['change']]} {row['chain']} {row['change']}")
                lines += _field_lines(row["fields"], "        ")
        return lines
    if kind == "keys":
        lines = [f"  {len(change['events'])} vault event(s), each signed by its digest:"]
        for row in change["events"]:
            if row["event"] is None:
                lines.append(
                    f"    ! digest {row['digest']}: the proposal does not carry this event, or it is unreadable"
                )
                continue
            lines.append(f"    + {row['key']}  digest {row['digest'][:16]}")
            lines.append(f"        {_value(row['event'])}")
        return lines
    intent = change["intent"]
    lines = [
        f"  {change['decision']} intent {change['intent_id']} of {change['agent_id']}, digest {change['intent_digest']}"
    ]
    if intent is None:
        return lines + ["    ! no intent with this digest is waiting: this decision releases nothing shown here"]
    lines.append(f"    parked because: {change['parked_because']}")
    lines += [f"    {name}: {_value(intent[name])}" for name in ("intent_type", "chain", "to", "value", "data")]
    if intent.get("intent_type") == "solana_transaction":
        lines += [f"    {line}" for line in _solana_lines(intent.get("solana_transaction") or "")]
    return lines + [f"    the whole intent: {_value(intent)}"]


def _print_proposal(row: dict) -> None:
    signers = ", ".join(row["signed_by"]) or "none"
    print(
        f"{row['proposal_id'][:16]}  {row['what']}, proposed by {row['proposed_by']}: {len(row['signed_by'])} of "
        f"{row['needed']} signatures ({signers}), expires {row['expires_at'][:16]}Z"
    )
    print(f"  digest {row['digest']} (SHA-256 of the bytes an admin signs)")
    for line in _change_lines(row["change"]):
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


def cmd_list(args) -> int:
    settings = load()
    waiting, proposals, in_force = asyncio.run(_open(settings, utcnow()))
    if args.agent:
        waiting = [p for p in waiting if p.agent_id == args.agent]
        proposals = [g for g in proposals if getattr(g.record, "agent_id", None) == args.agent]
    rows = [_proposal_row(g, in_force) for g in proposals]
    if args.json:
        print_json({"awaiting_approval": [_row(p) for p in waiting], "proposals": rows})
        return 0
    for row in rows:
        _print_proposal(row)
    if proposals:
        print(
            f"{len(proposals)} proposal(s) waiting for admins' signatures; "
            "`warden approvals sign ID --digest DIGEST` signs exactly the change shown"
        )
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
        # Set exactly for intent_type solana_transaction (TransactionIntent's validation).
        if parked.intent.solana_transaction is not None:
            for line in _solana_lines(parked.intent.solana_transaction):
                print(f"{'':40} {line}")
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


async def show(settings: Settings, proposal_id: str) -> dict:
    """One open proposal, with the whole change it makes and the digest of the bytes signed."""
    _, proposals, in_force = await _open(settings, utcnow())
    return _proposal_row(_one(proposals, proposal_id), in_force)


def cmd_show(args) -> int:
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


async def sign(settings: Settings, proposal_id: str, wait_s: float, digest: str | None = None) -> dict:
    """This admin's signature on an open proposal (with ``digest``: only if the bytes signed are
    the ones it names, else `NotWhatWasShown`); the whole record published if it completes the
    quorum, and what followed."""
    now = utcnow()
    waiting, proposals, in_force = await _open(settings, now)
    gathered = _one(proposals, proposal_id)
    me = settings.admin_id
    if in_force.admins.key(me) is None:
        raise LookupError(f"{me} (WARDEN_ADMIN_ID) is not a pinned admin; only pinned admins' signatures count")
    if me in gathered.signatures:
        raise LookupError(f"{me} has signed {gathered.proposal_id[:16]} already; another admin must sign it")
    row = _proposal_row(gathered, in_force)  # the change as it stood when signed
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


def cmd_sign(args) -> int:
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
