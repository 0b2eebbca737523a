"""What an admin proposal changes against what is in force, in full, for the admins asked to sign
it: `warden approvals list|show` print it beside the digest of the bytes they sign.

An admin set: every admin id with its key fingerprint, old and new (a key swapped under an id
in force is ``key_changed``, with whether that admin signed it with the key in force, which the
services require), and every threshold; a policy: every field that changes; a chain
set: every network of the admins' table, old and new; a key change: each of its vault events; an
approval: the parked intent it releases. Each change is computed here, from the record whose
bytes are signed and from what this client reads as in force; nothing the proposer wrote about
their proposal is shown.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_jsonable_python

from runtime.admins import Admins
from runtime.registry import ChainRegistry
from schemas.admins import ACTIONS, AdminSet, VaultChange, event_digest, key_fingerprint
from schemas.auth import AdminSigned
from schemas.chain_set import ChainSet
from schemas.outcomes import HumanApproval, IntentParked
from schemas.policy import AgentPolicy
from schemas.record import Record
from sdk.moves import moves_of

# Who signed is not what changes: the signatures, and the proposer (shown as ``proposed_by``).
_NOT_CHANGES = frozenset({"signature", "cosignatures", "admin_key_id", "schema_version"})
# Vault event fields that hold sealed material (a wrapped key, a ciphertext): shown by their
# SHA-256, so that two events differing there still look different, and never in full.
_SEALED = frozenset({"wrapped_dek", "ciphertext", "slots", "kek_commitment"})


@dataclass
class InForce:
    """What a proposal is compared with: the admin set, the chain set (None: the built-in networks
    alone), each agent's policy (None: it has none yet) and the parked intents, by id."""

    admins: Admins
    chains: ChainSet | None = None
    policies: dict[str, AgentPolicy | None] = field(default_factory=dict)
    parked: dict[str, IntentParked] = field(default_factory=dict)


def change_of(record: AdminSigned, in_force: InForce, signed_by: Collection[str] = ()) -> dict[str, Any]:
    """The whole change ``record`` makes against ``in_force``, as a JSON document whose ``kind``
    names the action. ``in_force.policies`` must hold the agent of a policy. ``signed_by``: the
    admins whose signature verifies with their key in force (`sdk.quorum.Gathered.signers`)."""
    if isinstance(record, AdminSet):
        return admin_set_change(in_force.admins, record, signed_by)
    if isinstance(record, AgentPolicy):
        return policy_change(in_force.policies[record.agent_id], record)
    if isinstance(record, ChainSet):
        return chain_set_change(in_force.chains, record)
    if isinstance(record, VaultChange):
        return vault_change(record)
    if isinstance(record, HumanApproval):
        return approval_change(record, in_force.parked.get(record.intent_id), in_force.policies.get(record.agent_id))
    raise TypeError(f"no change is known for a {type(record).__name__}")


def _key(public: str | None) -> dict[str, str] | None:
    return None if public is None else {"fingerprint": key_fingerprint(public), "public_key": public}


def admin_set_change(in_force: Admins, proposed: AdminSet, signed_by: Collection[str] = ()) -> dict[str, Any]:
    """Every admin id of either set with its key, old and new: ``added``, ``removed``,
    ``key_changed`` (the id stays, its key is another: whoever holds the new key signs as that
    admin; ``own_signature``: whether that admin is among ``signed_by``, who signed with the key
    in force, without which no service takes the set) or ``unchanged``; a new key that is in
    force under another id says whose. Every threshold, old and new."""
    old, new = in_force.keys, proposed.admins
    holder = {public: admin_id for admin_id, public in old.items()}
    admins = []
    for admin_id in sorted(old.keys() | new.keys()):
        before, after = old.get(admin_id), new.get(admin_id)
        if before is None:
            change = "added"
        elif after is None:
            change = "removed"
        else:
            change = "unchanged" if before == after else "key_changed"
        row: dict[str, Any] = {"admin_id": admin_id, "change": change, "old_key": _key(before), "new_key": _key(after)}
        if change == "key_changed":
            row["own_signature"] = admin_id in signed_by
        if after is not None and holder.get(after, admin_id) != admin_id:
            row["new_key_in_force_as"] = holder[after]
        admins.append(row)
    thresholds = [
        {
            "action": action,
            "change": "unchanged" if in_force.thresholds.get(action) == proposed.thresholds[action] else "changed",
            "old": in_force.thresholds.get(action),
            "new": proposed.thresholds[action],
        }
        for action in ACTIONS
    ]
    return {
        "kind": "admins",
        "version": {"old": in_force.version, "new": proposed.version},
        "admin_count": {"old": len(old), "new": len(new)},
        "admins": admins,
        "thresholds": thresholds,
    }


def _fields(record: Record) -> dict[str, Any]:
    # Each field as JSON, defaults included: a record leaves out fields at their defaults
    # (`schemas.record.Evolving`), and a change from a default is still a change (and a reader of
    # an intent's ``intent_type`` finds it whatever it holds).
    return {
        name: to_jsonable_python(getattr(record, name))
        for name in type(record).model_fields
        if name not in _NOT_CHANGES
    }


def _field_row(name: str, old: Any, new: Any) -> dict[str, Any]:
    row = {"field": name, "old": old, "new": new}
    if isinstance(old, list) and isinstance(new, list):
        # For a list (an allowlist, asset limits) what enters and leaves it, each entry whole.
        row["added"] = [item for item in new if item not in old]
        row["removed"] = [item for item in old if item not in new]
    return row


def policy_change(in_force: AgentPolicy | None, proposed: AgentPolicy) -> dict[str, Any]:
    """Every field of the policy that differs from the one in force, old and new (every field,
    with ``old`` null, when the agent has none yet)."""
    return {
        "kind": "policy",
        "agent_id": proposed.agent_id,
        "version": {"old": None if in_force is None else in_force.version, "new": proposed.version},
        "fields": fields_change({} if in_force is None else _fields(in_force), _fields(proposed)),
    }


def fields_change(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Every field of two policies' fields as JSON (``old`` empty: none) that differs, old and new
    (a list's entries added and removed too); who signed is left out."""
    return [
        _field_row(name, old.get(name), value)
        for name, value in new.items()
        if name not in _NOT_CHANGES and (name not in old or old[name] != value)
    ]


def chain_set_change(in_force: ChainSet | None, proposed: ChainSet) -> dict[str, Any]:
    """Every network of either admins' table, old and new as a reader knows it (a built-in
    network the table leaves out is its built-in self): ``added``, ``removed``, ``changed`` (with
    the fields that differ) or ``unchanged``."""
    old_registry, new_registry = ChainRegistry(), ChainRegistry()
    old_registry.adopt(() if in_force is None else in_force.chains)
    new_registry.adopt(proposed.chains)
    old_all, new_all = old_registry.all(), new_registry.all()
    names = {c.name for c in old_registry.admin_table()} | {c.name for c in proposed.chains}
    chains: list[dict[str, Any]] = []
    for name in sorted(names):
        before = dataclasses.asdict(old_all[name]) if name in old_all else None
        after = dataclasses.asdict(new_all[name]) if name in new_all else None
        if before is None or after is None:
            chains.append(
                {"chain": name, "change": "added" if before is None else "removed", "old": before, "new": after}
            )
            continue
        differs = [_field_row(k, before[k], after[k]) for k in after if before[k] != after[k]]
        chains.append(
            {
                "chain": name,
                "change": "changed" if differs else "unchanged",
                "old": before,
                "new": after,
                "fields": differs,
            }
        )
    return {
        "kind": "chains",
        "version": {"old": 0 if in_force is None else in_force.version, "new": proposed.version},
        "chains": chains,
    }


def _sealed(value: Any) -> str:
    return "sha256:" + event_digest(json.dumps(value, sort_keys=True).encode())[:16]


def vault_change(change: VaultChange) -> dict[str, Any]:
    """Each vault event of the change, in order: its record key, its digest (what the admins'
    signatures cover) and its fields, sealed ones by their SHA-256 only. A change that does not
    carry its events (they are not signed, their digests are) shows each digest with ``key`` and
    ``event`` null: nobody can see what it does, and nobody should sign it."""
    if not change.events:
        return {"kind": "keys", "events": [{"key": None, "digest": d, "event": None} for d in change.event_digests]}
    events = []
    for event, digest in zip(change.events, change.event_digests, strict=True):  # matched when it was read
        try:
            fields = json.loads(event.value)
        except ValueError:
            fields = None
        if isinstance(fields, dict):
            fields = {k: _sealed(v) if k in _SEALED else v for k, v in fields.items()}
        events.append({"key": event.key, "digest": digest, "event": fields})
    return {"kind": "keys", "events": events}


def approval_change(
    approval: HumanApproval, parked: IntentParked | None, policy: AgentPolicy | None = None
) -> dict[str, Any]:
    """The decision and the parked intent it is about, whole (every field, those at their defaults
    too, but its signature), with what it moves (`sdk.moves`, read by the agent's ``policy`` in
    force), when it still waits with the digest the decision names; else ``intent`` is null: the
    decision releases nothing that this client can show."""
    intent: dict[str, Any] | None = None
    parked_because: str | None = None
    moves: list[dict[str, Any]] = []
    if parked is not None and parked.intent_digest == approval.intent_digest:
        intent = _fields(parked.intent)
        parked_because = parked.reason
        moves = [m.as_dict() | {"line": m.line()} for m in moves_of(parked, policy)]
    return {
        "kind": "approval",
        "decision": approval.decision,
        "intent_id": approval.intent_id,
        "agent_id": approval.agent_id,
        "intent_digest": approval.intent_digest,
        "reason": approval.reason,
        "parked_because": parked_because,
        "moves": moves,
        "intent": intent,
    }
