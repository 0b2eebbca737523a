"""What waits for admins: the intents parked for a human decision and the open proposals under the
quorum, each with what it changes against what is in force (`sdk.changes`), read and described
once for every surface that shows them (`warden approvals`, the console)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from runtime.config import Settings
from runtime.proposals import Gathered
from schemas.admins import AdminSet, VaultChange, digest_of
from schemas.chain_set import ChainSet
from schemas.outcomes import HumanApproval, IntentParked
from schemas.passkeys import is_passkey
from schemas.policy import AgentPolicy
from sdk.changes import InForce, change_of
from sdk.client import pending_approvals, policy_in_force
from sdk.moves import Move
from sdk.quorum import open_proposals
from sdk.records import admins_in_force, chains_in_force, policies_in_force
from svm import transactions as solana_transactions


def solana_lines(transaction: str) -> list[str]:
    """What a Solana intent's transaction (base64) does, instruction by instruction
    (`svm.transactions.describe`)."""
    try:
        return solana_transactions.describe(solana_transactions.read(base64.b64decode(transaction, validate=True)))
    except (ValueError, binascii.Error) as exc:
        return [f"! its transaction cannot be read ({exc}): do not approve it"]


def parked_row(parked: IntentParked, moves: Sequence[Move] = ()) -> dict[str, Any]:
    """A parked intent as `warden approvals list --json` prints it, with what it moves (`sdk.moves`)."""
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
        "moves": [m.as_dict() for m in moves],
        "instructions": None if transaction is None else solana_lines(transaction),
        "reason": parked.reason,
        "parked_at": parked.parked_at.isoformat(),
        "expires_at": parked.expires_at.isoformat(),
        "intent_digest": parked.intent_digest,
    }


def proposal_row(gathered: Gathered, in_force: InForce) -> dict[str, Any]:
    record = gathered.record
    return {
        "proposal_id": gathered.proposal_id,
        # What `sign --digest` checks: the SHA-256 of the bytes an admin signs (a proposal is named by it).
        "digest": digest_of(record.signing_bytes()),
        "action": gathered.action,
        "what": proposal_what(gathered),
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


def proposal_what(gathered: Gathered) -> str:
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


async def open_decisions(settings: Settings, now: datetime) -> tuple[list[IntentParked], list[Gathered], InForce]:
    """The parked intents, the open proposals and what is in force that they change."""
    admins = await admins_in_force(settings)
    waiting = await pending_approvals(settings, now)
    proposals = list((await open_proposals(settings, admins, now)).values())
    in_force = InForce(admins, parked={p.intent_id: p for p in waiting})
    # Each parked intent is read by its agent's policy in force (`sdk.moves`: a token's symbol and decimals).
    agents = sorted({p.agent_id for p in waiting})
    if agents:
        in_force.policies.update(await policies_in_force(settings, agents))
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


_MARKS = {"added": "+", "removed": "-", "changed": "!", "key_changed": "!", "unchanged": " "}


def _value(value: object) -> str:
    return "(none)" if value is None else json.dumps(value, separators=(",", ":"))


def _field_lines(rows: list[dict[str, Any]], indent: str) -> list[str]:
    lines = []
    for row in rows:
        if row.get("added") or row.get("removed"):
            lines.append(f"{indent}! {row['field']}:")
            lines += [f"{indent}    + {_value(item)}" for item in row["added"]]
            lines += [f"{indent}    - {_value(item)}" for item in row["removed"]]
        else:
            lines.append(f"{indent}! {row['field']}: {_value(row['old'])} -> {_value(row['new'])}")
    return lines


def _fingerprint(key: dict[str, Any] | None) -> str | None:
    """A key of an admin set's change as people read it: its fingerprint, after "passkey " when it
    is one (the console's) rather than an Ed25519 key (the command line's)."""
    if key is None:
        return None
    return ("passkey " if is_passkey(key["public_key"]) else "") + str(key["fingerprint"])


def _admin_lines(change: dict[str, Any]) -> list[str]:
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


def change_lines(change: dict[str, Any]) -> list[str]:
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
    lines += [f"    moves: {move['line']}" for move in change["moves"]]
    lines += [f"    {name}: {_value(intent[name])}" for name in ("intent_type", "chain", "to", "value", "data")]
    if intent.get("intent_type") == "solana_transaction":
        lines += [f"    {line}" for line in solana_lines(intent.get("solana_transaction") or "")]
    return lines + [f"    the whole intent: {_value(intent)}"]
