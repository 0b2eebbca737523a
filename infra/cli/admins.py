"""``warden admins show|key|propose``: the admin set in force, this admin's key, and a change to
the set (new admins, removed ones, new thresholds), which the current set's quorum for
``admins`` must sign (`warden approvals sign`) before any service takes it, and each admin whose
key it changes too, with their current key. An admin's key is an Ed25519 key (the command line's)
or a passkey (the console's, `schemas.passkeys`)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from infra.cli.output import add_json_flag, fail, print_json
from runtime.clock import utcnow
from runtime.config import load
from schemas.admins import AdminSet, key_changes, key_fingerprint, parse_thresholds
from schemas.auth import public_key_hex, sign_admin_set
from schemas.passkeys import is_passkey
from sdk.admin import load_or_create_admin_key
from sdk.quorum import publish_or_propose
from sdk.records import admins_in_force


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
    signed = sign_admin_set(proposed, load_or_create_admin_key(settings.home, settings.admin_id), settings.admin_id)
    needed = admins.threshold("admins")
    proposal = asyncio.run(publish_or_propose(settings, "admins", signed, needed, utcnow(), admins))
    doc: dict[str, Any]
    if proposal is None:
        doc = {"version": signed.version, "published": True, "needed": 1}
        text = f"admin set v{signed.version} signed by {settings.admin_id} and published on warden.admins"
    else:
        # Each admin whose key the set changes signs it too, with their current key (schemas.admins).
        own = [key_id for key_id in key_changes(admins.keys, signed) if key_id != settings.admin_id]
        doc = {
            "version": signed.version,
            "published": False,
            "needed": needed,
            "proposal_id": proposal.proposal_id,
            "own_signatures_missing": own,
        }
        text = (
            f"admin set v{signed.version} proposed ({proposal.proposal_id[:16]}), signed by {settings.admin_id}; "
            f"{needed} admins of v{admins.version} must sign"
            + (f", and {' and '.join(own)} too, with their current key (the set changes it)" if own else "")
            + f": `warden approvals sign {proposal.proposal_id[:16]}`"
        )
    if args.json:
        print_json(doc)
    else:
        print(text)
    return 0


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
    change.set_defaults(handler=cmd_propose)
