"""``warden console``: the web console (`gateway.console.server`), on loopback by default
(WARDEN_CONSOLE_HTTP, its origin WARDEN_CONSOLE_ORIGIN); `warden up` runs the same as a supervised
process (``python -m gateway.console.server``). ``warden console enrol --admin ID`` prints a one-time link
(10 minutes) that registers a passkey for that admin (`gateway.console.enrolment`)."""

from __future__ import annotations

import argparse

from gateway.console import server
from gateway.console.enrolment import TOKEN_TTL, enrol_key, enrol_token
from gateway.console.security import page_party
from infra.cli.output import add_json_flag, print_json
from runtime.clock import utcnow
from runtime.config import load


def cmd_enrol(args: argparse.Namespace) -> int:
    settings = load()
    origin = page_party(settings).origins[0]
    link = f"{origin}/enrol/{enrol_token(enrol_key(settings.home), args.admin, utcnow())}"
    if args.json:
        print_json({"admin_id": args.admin, "link": link, "expires_in_s": int(TOKEN_TTL.total_seconds())})
    else:
        print(
            f"open within {int(TOKEN_TTL.total_seconds()) // 60} minutes, once, to register a passkey for {args.admin}:"
        )
        print(link)
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    server.add_arguments(p)
    p.set_defaults(handler=server.run)
    sub = p.add_subparsers(dest="action")
    enrol = sub.add_parser("enrol", help="a one-time link that registers a passkey for an admin")
    add_json_flag(enrol)
    enrol.add_argument("--admin", required=True, help="the admin's id, as the admin set names them")
    enrol.set_defaults(handler=cmd_enrol)
