"""``warden schemas`` and ``warden chains``: the contract as JSON Schemas for producers in other
languages, and the chain registry."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from infra.cli.output import add_json_flag, fail, print_json
from runtime.config import load
from schemas.chains import REGISTRY, Chain
from schemas.export import export


def cmd_schemas(args) -> int:
    written = export(Path(args.dir))
    if args.json:
        print_json([str(p) for p in written])
    else:
        for path in written:
            print(f"wrote {path}")
    return 0


def cmd_chains(args) -> int:
    load()  # attaches $WARDEN_HOME/chains.json, where an admin's chains and finality changes live
    if args.action == "add":
        try:
            REGISTRY.add(
                Chain(
                    args.name,
                    args.chain_id,
                    args.currency,
                    args.explorer or "",
                    key_chain=args.key_chain,
                    testnet=args.testnet,
                    finalized_tag=args.finalized_tag != "no",
                    confirmations=12 if args.confirmations is None else args.confirmations,
                )
            )
        except ValueError as exc:
            return fail("warden chains add", exc)
    if args.action == "finality":
        if args.name is None or (args.confirmations is None and args.finalized_tag is None):
            return fail(
                "warden chains finality",
                ValueError("name the chain (--name) and what changes: --confirmations N and/or --finalized-tag yes|no"),
            )
        try:
            REGISTRY.set_finality(
                args.name,
                confirmations=args.confirmations,
                finalized_tag=None if args.finalized_tag is None else args.finalized_tag == "yes",
            )
        except ValueError as exc:
            return fail("warden chains finality", exc)
    chains = [dataclasses.asdict(c) for c in REGISTRY.all().values()]
    if args.json:
        print_json(chains)
    else:
        for c in chains:
            print(
                f"{c['name']:15} {c['chain_id']:>11}  {c['currency']:7} key:{c['key_chain']:9} "
                f"final:{_finality(c):38} {'testnet ' if c['testnet'] else ''}{c['explorer']}"
            )
    return 0


def _finality(chain: dict) -> str:
    deep = f"{chain['confirmations']} confirmations"
    return f"finalized tag, else {deep}" if chain["finalized_tag"] else deep


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
