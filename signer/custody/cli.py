"""`warden keys provision|provision-signer|list|rotate|deactivate`: the CLI side of KeyStore.

The lead's `warden` entry point mounts ``keys_main``. The actor comes from
``--actor`` or WARDEN_ACTOR (``admin:<key id>``); anything else is refused with
exit status 3, the CLI's 403. Output never contains key material: addresses and
public keys only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

from signer.custody.errors import CustodyError, PermissionDenied

EXIT_REFUSED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warden keys", description="Manage agents' signing keys (admins only).")
    parser.add_argument("--actor", default=os.environ.get("WARDEN_ACTOR"),
                        help="who is acting: admin:<key id> (default: $WARDEN_ACTOR)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("provision", "rotate", "deactivate"):
        p = sub.add_parser(command)
        p.add_argument("--agent", required=True)
        p.add_argument("--chain", required=True)
        if command == "deactivate":
            p.add_argument("--version", type=int, help="one version (default: every active version)")
    p = sub.add_parser("provision-signer", help="the shared keys/{chain}-signer key")
    p.add_argument("--chain", required=True)
    p = sub.add_parser("list")
    p.add_argument("--agent")
    p.add_argument("--chain")
    return parser


def keys_main(argv: Sequence[str] | None = None, *, vaults: Any = None, settings: Any = None,
              out: TextIO | None = None, err: TextIO | None = None) -> int:
    from signer.custody.keys import KeyStore
    from signer.custody.vault import Vaults

    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    if not args.actor:
        print("warden keys: say who is acting with --actor admin:<key id> (or WARDEN_ACTOR)", file=err)
        return 2
    try:
        if vaults is None:
            if settings is None:
                from infra.config import load

                settings = load()
            vaults = Vaults.from_settings(settings)
        store = KeyStore(vaults)
        if args.command == "provision":
            result: Any = asdict(store.provision(args.agent, args.chain, args.actor))
        elif args.command == "provision-signer":
            result = asdict(store.provision_signer(args.chain, args.actor))
        elif args.command == "rotate":
            result = asdict(store.rotate(args.agent, args.chain, args.actor))
        elif args.command == "deactivate":
            versions = store.deactivate(args.agent, args.chain, args.actor, version=args.version)
            result = {"agent_id": args.agent, "chain": args.chain, "deactivated_versions": versions}
        else:
            result = [
                {**asdict(k), "created_at": k.created_at.isoformat()}
                for k in store.list_keys(args.actor, agent_id=args.agent, chain=args.chain)
            ]
    except PermissionDenied as exc:
        print(f"warden keys: refused: {exc}", file=err)
        return EXIT_REFUSED
    except CustodyError as exc:
        print(f"warden keys: {exc}", file=err)
        return 1
    if args.json:
        print(json.dumps(result, indent=2), file=out)
    elif isinstance(result, list):
        for k in result:
            state = "active" if k["active"] else "inactive"
            print(f"{k['path']}  v{k['version']}  {k['chain']:<8}  {k['address']}  {state}", file=out)
    else:
        print("  ".join(f"{k}={v}" for k, v in result.items()), file=out)
    return 0
