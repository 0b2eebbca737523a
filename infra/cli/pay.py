"""``warden pay URL --agent A``: fetch a resource and pay its HTTP 402 challenge (x402) through
Warden (`sdk.x402_pay`): the agent's policy judges the payment like any transfer before a signer
signs it. The resource goes to stdout, as curl writes it, and what was paid to stderr; with
``--json``, one document with both."""

from __future__ import annotations

import argparse
import asyncio
import sys

import httpx2

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.config import load
from sdk.client import intent_key_file, load_or_create_agent_key
from sdk.x402 import X402Error
from sdk.x402_pay import pay, payment_summary

# Exit codes: 0 the resource was served, 1 it was not (refused, waiting, not accepted), 2 an error.
SERVED = ("paid", "no_payment_required")


def cmd_pay(args: argparse.Namespace) -> int:
    settings = load()
    command = "warden pay"
    if not intent_key_file(settings.home, args.agent).exists():
        return fail(
            command,
            f"agent {args.agent!r} has no intent key under {settings.home}: an admin provisions it "
            f"(`warden agents create --agent {args.agent} ...`)",
            2,
        )
    key = load_or_create_agent_key(settings.home, args.agent)
    try:
        payment = asyncio.run(pay(settings, args.agent, key, args.url, max_amount=args.max, timeout_s=args.timeout))
    except X402Error as exc:
        return fail(command, exc, 2)
    except httpx2.HTTPError as exc:
        return fail(command, f"{args.url} could not be fetched: {exc}", 2)
    code = 0 if payment.status in SERVED else 1
    if args.json:
        print_json(payment.model_dump(mode="json", by_alias=True))
        return code
    note(f"{command}: {payment_summary(payment)}")
    if payment.refusal is not None:
        note(f"  reason: {payment.refusal.reason}")
    if payment.server_error is not None:
        note(f"  the server said: {payment.server_error}")
    if payment.body is not None and payment.status in SERVED:
        sys.stdout.write(payment.body)
        if payment.body_truncated:
            note(f"{command}: the body was cut at its first {len(payment.body.encode())} bytes")
    return code


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_pay)
    p.add_argument("url", help="the resource, http:// or https://")
    p.add_argument("--agent", required=True, help="the agent that pays (its intent key under WARDEN_HOME)")
    p.add_argument(
        "--max",
        help='the most to pay, in the token\'s unit (e.g. "0.05"); a dearer requirement is refused before '
        "anything is signed. The policy's per-asset limits apply either way",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for Warden's signature")
    add_json_flag(p)
