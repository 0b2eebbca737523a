"""``warden schemas`` and ``warden chains``: the contract as JSON Schemas for producers in other
languages, and the chain registry.

The networks admins added (and built-in ones whose finality they changed) are a `ChainSet` record
on warden.chains, version after version, which the streams worker and the signer take only with
the admins' quorum for ``chains``. ``add`` and ``finality`` build the next version from the one in
force and sign it as this admin (WARDEN_ADMIN_ID): published when one admin is the quorum, else
proposed for the others (`warden approvals sign`); once published, they wait for what the signer
and a streams worker said of it. ``list`` shows the chains in force, or the built-in ones when no
broker answers."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.kafka import end_offsets
from runtime.registry import REGISTRY
from schemas import topics
from schemas.actions import AuditAction
from schemas.auth import admin_signatures, public_key_hex, sign_chain_set
from schemas.chain_set import ChainSet
from schemas.chains import Chain, finality
from schemas.export import export
from sdk.admin import load_or_create_admin_key
from sdk.quorum import publish_or_propose
from sdk.records import admins_in_force, chains_in_force, settled_verdicts

# How long `warden chains` waits for the broker to answer its read of warden.chains.
READ_S = 15.0
_UNANSWERED = (KafkaError, OSError, TimeoutError)


def cmd_schemas(args: argparse.Namespace) -> int:
    written = export(Path(args.dir))
    if args.json:
        print_json([str(p) for p in written])
    else:
        for path in written:
            print(f"wrote {path}")
    return 0


def cmd_chains(args: argparse.Namespace) -> int:
    settings = load()
    if args.action == "list":
        return cmd_list(settings, args)
    command = f"warden chains {args.action}"
    try:
        doc = asyncio.run(change(settings, args))
    except ValueError as exc:
        return fail(command, exc)
    except _UNANSWERED as exc:
        return fail(
            command,
            f"the broker at {settings.broker} did not answer ({exc or type(exc).__name__}); a chain change is a "
            f"record on {topics.CHAINS}: start the stack (`warden up`) or point WARDEN_BROKER at its broker",
        )
    if args.json:
        print_json(doc)
    else:
        _print_change(doc, args.wait)
    return 0 if not doc["published"] or doc["outcome"] == AuditAction.CHAINS_CHANGED else 1


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    unanswered = None
    try:
        in_force = asyncio.run(asyncio.wait_for(chains_in_force(settings), READ_S))
    except _UNANSWERED as exc:
        in_force, unanswered = None, str(exc) or type(exc).__name__
    legacy = settings.home / "chains.json"
    if legacy.exists():
        note(
            f"{legacy} is no longer read: the chains admins add are signed records on {topics.CHAINS} now; "
            "add each of its networks again with `warden chains add` (docs/configuration.md, Chains)"
        )
    networks = list(REGISTRY.all().values())
    chains = [{**dataclasses.asdict(c), "family": c.family, "caip2": c.caip2} for c in networks]
    if args.json:
        print_json(
            {
                "version": 0 if in_force is None else in_force.version,
                "signed_by": [] if in_force is None else [key_id for key_id, _ in admin_signatures(in_force)],
                "read_from_broker": unanswered is None,
                "chains": chains,
            }
        )
        return 0
    if unanswered is not None:
        note(f"the broker at {settings.broker} did not answer ({unanswered}): the built-in networks only")
    elif in_force is None:
        print(f"the built-in networks ({topics.CHAINS} holds no chain set the admins' quorum signed)")
    else:
        signers = ", ".join(key_id for key_id, _ in admin_signatures(in_force))
        print(f"chain set v{in_force.version} in force, signed by {signers}, over the built-in networks")
    for c in networks:
        print(
            f"{c.name:15} {c.caip2:40} {c.currency:7} final:{finality(c):38} "
            f"{'testnet ' if c.testnet else ''}{c.explorer}"
        )
    return 0


async def change(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The next chain set (``add`` or ``finality`` over the one in force), signed by this admin,
    published or proposed, and what the services said of it once published."""
    in_force = await asyncio.wait_for(chains_in_force(settings), READ_S)
    admins = await admins_in_force(settings)
    key = load_or_create_admin_key(settings.home, settings.admin_id)
    if admins.key(settings.admin_id) != public_key_hex(key):
        raise ValueError(
            f"{settings.admin_id} (WARDEN_ADMIN_ID) is not a pinned admin with the key in {settings.home / 'admin'}; "
            f"only pinned admins' signatures count (pinned: {', '.join(sorted(admins.keys))})"
        )
    if args.action == "add":
        if args.name is None or args.chain_id is None:
            raise ValueError("name the network and its EIP-155 id: --name NAME --chain-id N [--currency SYM]")
        added = Chain(
            args.name,
            args.chain_id,
            args.currency,
            args.explorer or "",
            key_chain=args.key_chain,
            testnet=args.testnet,
            finalized_tag=args.finalized_tag != "no",
            confirmations=12 if args.confirmations is None else args.confirmations,
        )
        table, what = REGISTRY.with_chain(added), f"{added.name} added (chain id {added.chain_id})"
    else:
        if args.name is None or (args.confirmations is None and args.finalized_tag is None):
            raise ValueError(
                "name the chain (--name) and what changes: --confirmations N and/or --finalized-tag yes|no"
            )
        table = REGISTRY.with_finality(
            args.name,
            confirmations=args.confirmations,
            finalized_tag=None if args.finalized_tag is None else args.finalized_tag == "yes",
        )
        what = f"{args.name} final at {finality(next(c for c in table if c.name == args.name))}"
    version = 1 if in_force is None else in_force.version + 1
    signed = sign_chain_set(ChainSet(version=version, chains=table, issued_at=utcnow()), key, settings.admin_id)
    needed = admins.threshold("chains")
    start = await end_offsets(settings, (topics.AUDIT_EVENTS,))  # what the services say of it comes after
    proposal = await publish_or_propose(settings, "chains", signed, needed, utcnow())
    doc = {
        "version": version,
        "change": what,
        "published": proposal is None,
        "signed_by": [settings.admin_id],
        "needed": needed,
        "admin_set": admins.version,
        "outcome": None,
    }
    if proposal is not None:
        return doc | {"proposal_id": proposal.proposal_id}
    verdicts = await settled_verdicts(settings, signed, args.wait, start)
    return doc | {"outcome": verdicts.outcome, "verdicts": verdicts.as_dict()}


def _print_change(doc: dict[str, Any], wait_s: float) -> None:
    version, what = doc["version"], doc["change"]
    if not doc["published"]:
        short = doc["proposal_id"][:16]
        print(
            f"chain set v{version} proposed ({short}), signed by {', '.join(doc['signed_by'])}: {what}; "
            f"{doc['needed']} admins of admin set v{doc['admin_set']} must sign: another admin runs "
            f"`warden approvals sign {short}`"
        )
        return
    print(f"chain set v{version} signed by {', '.join(doc['signed_by'])} and published on {topics.CHAINS}: {what}")
    print_verdicts(doc["verdicts"], wait_s)


def print_verdicts(verdicts: dict[str, Any], wait_s: float) -> None:
    """What the signer and a streams worker said of a chain set (`SettledVerdicts.as_dict`), a
    line each for people; a silent one with what to check."""
    for role, name in (("signer", "signer"), ("worker", "streams worker")):
        said = verdicts[role]
        if said is None:
            note(
                f"{name}: no word of it within {wait_s:.0f} s; is it running (`warden status`)? `warden chains list` shows what is in force"
            )
        else:
            print(f"{name}: {said['action']}: {said['reason']}")


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    add_json_flag(p)
    if command == "schemas":
        p.set_defaults(handler=cmd_schemas)
        p.add_argument("action", choices=("export",))
        p.add_argument("dir")
        return
    p.set_defaults(handler=cmd_chains)
    p.add_argument("action", choices=("list", "add", "finality"))
    p.add_argument("--name")
    p.add_argument("--chain-id", type=int)
    p.add_argument("--currency", default="ETH")
    p.add_argument("--explorer")
    p.add_argument("--key-chain", default="ethereum")
    p.add_argument("--testnet", action="store_true")
    p.add_argument(
        "--confirmations", type=int, help="add/finality: blocks on top of a transaction's block before it is final"
    )
    p.add_argument(
        "--finalized-tag",
        choices=("yes", "no"),
        help="add/finality: final at the node's `finalized` block where it serves that tag (default yes)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="add/finality: seconds to wait for the signer and a streams worker to take it (default 60)",
    )
