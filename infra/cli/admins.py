"""``warden admins show|key|propose``: the admin set in force, this admin's key, and a change to
the set (new admins, removed ones, new thresholds), which the current set's quorum for
``admins`` must sign (`warden approvals sign`) before any service takes it, and each admin whose
key it changes too, with their current key. An admin's key is an Ed25519 key (the command line's)
or a passkey (the console's, `schemas.passkeys`).

``propose`` signs only as an admin in force, with the key in force under that id, read from this
home (never made here), and reports what the services said of what it published: both services'
verdict on a set published at once, the streams worker's record of the signature on a proposal."""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.admins import Admins
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import end_offsets, follow_records
from runtime.trust import PinnedAuditKeys, admin_key_file
from schemas import topics
from schemas.actions import AuditAction
from schemas.admins import AdminSet, key_changes, key_fingerprint, parse_thresholds
from schemas.audit import AuditEvent, readable_audit_events
from schemas.auth import audit_writer, public_key_hex, read_ed25519, sign_admin_set
from schemas.errors import WardenError
from schemas.passkeys import is_passkey
from sdk.admin import load_or_create_admin_key
from sdk.quorum import publish_or_propose
from sdk.records import SettledVerdicts, admins_in_force, settled_verdicts


def cmd_show(args: argparse.Namespace) -> int:
    admins = asyncio.run(admins_in_force(load()))
    fingerprints = {key_id: key_fingerprint(public) for key_id, public in admins.keys.items()}
    doc = {
        "version": admins.version,
        "admins": admins.keys,
        "fingerprints": fingerprints,
        "thresholds": admins.thresholds,
    }
    if args.json:
        print_json(doc)
        return 0
    print(
        f"admin set v{admins.version}{' (the configured one)' if admins.version == 0 else ''}; "
        "each key by its kind and fingerprint (SHA-256 of the public key, first 16 hex), then in full"
    )
    for key_id, public in sorted(admins.keys.items()):
        kind = "passkey" if is_passkey(public) else "ed25519"
        print(f"  {key_id:20} {kind:8}{fingerprints[key_id]}  {public}")
    print("thresholds: " + ", ".join(f"{action} {m} of {len(admins.keys)}" for action, m in admins.thresholds.items()))
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    """This admin's key (made on first use); its pin line for WARDEN_ADMIN_KEYS or `propose --admins`."""
    settings = load()
    public = public_key_hex(load_or_create_admin_key(settings.home, settings.admin_id))
    if args.json:
        print_json({"admin_key_id": settings.admin_id, "public_key": public, "fingerprint": key_fingerprint(public)})
    else:
        print(f"{settings.admin_id}={public}")
    return 0


class NotAProposer(WardenError, LookupError):
    """This home cannot sign for ``WARDEN_ADMIN_ID`` what the services would count: the id is not
    in the admin set in force, its key there is a passkey, or this home holds no key, or another
    key, under it. Nothing is signed, published or made."""


def _proposer_key(settings: Settings, admins: Admins) -> Ed25519PrivateKey:
    """The key in this home of ``settings.admin_id``, which must be the one the set in force pins
    under that id. Read, never made: a key made here would be pinned nowhere, and a proposal
    signed with it counts for no service (`admins.refused`, `proposal.refused`)."""
    me, pinned = settings.admin_id, admins.key(settings.admin_id)
    if pinned is None:
        raise NotAProposer(
            f"{me} (WARDEN_ADMIN_ID) is not an admin of the set in force (v{admins.version}: "
            f"{', '.join(sorted(admins.keys)) or 'none'}), so no service would count its signature; "
            "nothing was signed or published",
            f"run it as an admin in force (WARDEN_ADMIN_ID=<id>); to add {me}, an admin in force proposes a set "
            f"with {me}'s key in it",
        )
    if is_passkey(pinned):
        raise NotAProposer(
            f"{me}'s key in force is a passkey, which signs in the web console, not with a key file here; "
            "nothing was signed or published",
            "an admin whose key is an Ed25519 key proposes the set; the passkey admin cosigns it in the console",
        )
    path = admin_key_file(settings.home, me)
    if not path.exists():
        raise NotAProposer(
            f"this home holds no key of {me} ({path}); nothing was signed or published",
            f"run it where {me}'s key is (WARDEN_HOME), or as another admin in force",
        )
    key = read_ed25519(path)
    if public_key_hex(key) != pinned:
        raise NotAProposer(
            f"{me}'s key in {path} is not the key the set in force pins under {me} "
            f"({key_fingerprint(pinned)}); nothing was signed or published",
            f"sign with the key in force (`warden admins show` prints it); if {me} lost it, the quorum removes "
            f"{me} and adds a new admin under a new id",
        )
    return key


def cmd_propose(args: argparse.Namespace) -> int:
    settings = load()
    admins = asyncio.run(admins_in_force(settings))
    pairs = (item.split("=", 1) for item in args.admins.split(",") if item.strip())
    try:
        keys = {key_id.strip(): public.strip() for key_id, public in pairs}
        proposed = AdminSet(
            version=admins.version + 1,
            admins=keys,
            thresholds=parse_thresholds(args.quorum, keys),
            issued_at=utcnow(),
        )
    except ValueError as exc:
        return fail("warden admins propose", exc)
    signed = sign_admin_set(proposed, _proposer_key(settings, admins), settings.admin_id)
    said = asyncio.run(_publish_and_hear(settings, signed, admins, args.wait))
    if args.json:
        print_json(said.doc)
    elif said.code == 0:
        print(said.text)
    else:
        note(f"warden admins propose: {said.text}")
    return said.code


@dataclass
class _Said:
    """What `warden admins propose` reports: its JSON document, its line for people and its exit
    code (0: taken, or proposed and counted; 1: refused; 3: no verdict heard within the wait)."""

    doc: dict[str, Any]
    text: str
    code: int


async def _publish_and_hear(settings: Settings, signed: AdminSet, admins: Admins, wait_s: float) -> _Said:
    """``signed`` published (one admin is the quorum for ``admins`` and it changes no other admin's
    key) or proposed, and what the services said of it within ``wait_s``: the signer's and a
    streams worker's verdict on a published set, the worker's on a proposal's signature."""
    start = await end_offsets(settings, (topics.AUDIT_EVENTS,))
    needed = admins.threshold("admins")
    proposal = await publish_or_propose(settings, "admins", signed, needed, utcnow(), admins)
    if proposal is None:
        return published_said(
            signed, settings.admin_id, await settled_verdicts(settings, signed, wait_s, start), wait_s
        )
    heard = await proposal_verdict(settings, proposal.proposal_id, settings.admin_id, wait_s, start)
    # Each admin whose key the set changes signs it too, with their current key (schemas.admins).
    own = [key_id for key_id in key_changes(admins.keys, signed) if key_id != settings.admin_id]
    return proposed_said(signed, settings.admin_id, (proposal.proposal_id, needed, admins.version, own), heard, wait_s)


def published_said(signed: AdminSet, me: str, verdicts: SettledVerdicts, wait_s: float) -> _Said:
    """The report of an admin set published on warden.admins, by what the services said of it."""
    doc: dict[str, Any] = {
        "version": signed.version,
        "published": True,
        "needed": 1,
        "outcome": verdicts.outcome,
        "verdicts": verdicts.as_dict(),
    }
    where = f"admin set v{signed.version} signed by {me} and published on warden.admins"
    if verdicts.outcome == AuditAction.ADMINS_CHANGED:
        return _Said(doc, f"{where}: in force (the signer and a streams worker took it: {verdicts.outcome})", 0)
    if verdicts.outcome == AuditAction.ADMINS_REFUSED:
        why = "; ".join(
            f"the {role}: {said['reason']}" for role, said in verdicts.as_dict().items() if said and said["reason"]
        )
        return _Said(doc, f"{where}, and refused ({verdicts.outcome}): {why}; the set in force is unchanged", 1)
    return _Said(
        doc,
        f"{where}; no verdict from the signer and a streams worker within {wait_s:g} s: `warden admins show` "
        "shows the set in force",
        3,
    )


def proposed_said(
    signed: AdminSet, me: str, proposal: tuple[str, int, int, list[str]], heard: AuditEvent | None, wait_s: float
) -> _Said:
    """The report of an admin set proposed on warden.admin.proposals (``proposal``: its id, the
    admins needed, the version in force and who must sign their own key change), by the streams
    worker's record of this admin's signature on it (``heard``)."""
    proposal_id, needed, in_force, own = proposal
    doc: dict[str, Any] = {
        "version": signed.version,
        "published": False,
        "needed": needed,
        "proposal_id": proposal_id,
        "own_signatures_missing": own,
        "outcome": None if heard is None else heard.action,
    }
    where = f"admin set v{signed.version} proposed ({proposal_id[:16]}), signed by {me}"
    if heard is None:
        text = f"{where}; the streams worker did not record it within {wait_s:g} s: `warden approvals list` shows it"
        return _Said(doc, text, 3)
    if heard.action == AuditAction.PROPOSAL_REFUSED:
        doc["reason"] = heard.details.get("reason", "")
        return _Said(doc, f"{where}, and refused ({heard.action}): {doc['reason']}", 1)
    text = (
        f"{where}; {needed} admins of v{in_force} must sign"
        + (f", and {' and '.join(own)} too, with their current key (the set changes it)" if own else "")
        + f": `warden approvals sign {proposal_id[:16]}`"
    )
    return _Said(doc, text, 0)


async def proposal_verdict(
    settings: Settings, proposal_id: str, admin_id: str, wait_s: float, start: dict[TopicPartition, int]
) -> AuditEvent | None:
    """The streams worker's ``proposal.signed`` or ``proposal.refused`` of ``admin_id``'s signature
    on ``proposal_id``, on warden.audit.events from ``start``; None when none came within
    ``wait_s``. Only a pinned worker's record counts: a topic writer's must not tell an admin that
    a proposal no service counts is open."""
    keys, deadline = PinnedAuditKeys(settings), time.monotonic() + wait_s
    actions = (AuditAction.PROPOSAL_SIGNED, AuditAction.PROPOSAL_REFUSED)
    # An admin set's proposal is about no agent: its events are in the partition of the empty key.
    async for found in follow_records(
        settings, (topics.AUDIT_EVENTS,), start, fetch_max_wait_ms=settings.fetch_wait_ms, keys=("",)
    ):
        if found is not None and audit_writer(found.value, found.headers, keys) == ("worker", None):
            for event in readable_audit_events(found.value):
                if (
                    event.action in actions
                    and event.details.get("proposal_id") == proposal_id
                    and event.details.get("admin_key_id") == admin_id
                ):
                    return event
        if time.monotonic() > deadline:
            return None
    return None


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    show = sub.add_parser("show", help="the admin set in force and its thresholds")
    add_json_flag(show)
    show.set_defaults(handler=cmd_show)
    key = sub.add_parser("key", help="this admin's key (WARDEN_ADMIN_ID), made on first use: its pin line")
    add_json_flag(key)
    key.set_defaults(handler=cmd_key)
    change = sub.add_parser("propose", help="a new admin set and thresholds; the current quorum must sign it")
    add_json_flag(change)
    change.add_argument(
        "--admins",
        required=True,
        help=(
            "the whole new set: id=<key>,..., each key an Ed25519 public key (0x and 64 hex) or a passkey "
            "(passkey:<credential id>:<COSE public key>, as the console registers it)"
        ),
    )
    change.add_argument("--quorum", required=True, help='thresholds: "2", or "policy=2,approval=2,...,admins=3"')
    change.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for what the services say of it (default 30): exit 1 when refused, 3 when not heard",
    )
    change.set_defaults(handler=cmd_propose)
