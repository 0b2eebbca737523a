"""``warden policy what-if``: what a new policy would have decided, asked of the audit ledger
before it goes live (`sdk.what_if`): every recorded decision that would change, with the
deciding rule, then the totals."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import orjson
from pydantic import ValidationError

from infra.cli.output import add_json_flag, fail, print_json
from runtime.clock import utcnow
from runtime.config import Settings, load
from schemas.errors import explain
from schemas.fields import format_native_amount
from schemas.policy import AgentPolicy
from sdk.client import policy_in_force
from sdk.what_if import parse_since, what_if


def proposed_policy(settings: Settings, agent_id: str, path: str) -> AgentPolicy:
    """The policy in force with the fields of ``path`` (a JSON object) over it. ValueError says why not."""
    try:
        fields = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"--policy {path}: {exc}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"--policy {path} must hold one JSON object of policy fields")
    current = asyncio.run(policy_in_force(settings, agent_id))
    if current is None:
        raise ValueError(f"agent {agent_id!r} has no policy in force to compare with")
    base = current.model_dump(exclude={"signature", "cosignatures", "admin_key_id", "schema_version"})
    try:
        return AgentPolicy.model_validate({**base, **fields, "agent_id": agent_id, "version": current.version + 1})
    except ValidationError as exc:
        raise ValueError(f"--policy {path}: the policy is not valid: {'; '.join(explain(exc))}") from None


def render(doc: dict) -> str:
    lines = []
    for c in doc["changes"]:
        was = c["was"] + (f" ({c['was_stage']} {c['was_code']})" if c["was_code"] else "")
        would = c["would_be"] + (f" ({c['deciding_stage']} {c['deciding_code']})" if c["deciding_code"] else "")
        lines.append(f"{c['intent_id']:40} {c['at'][:19]}  {c['value'] or '':>10} to {c['to']}: {was} -> {would}")
        lines.append(f"{'':40} {c['reason']}")
    t = doc["totals"]

    def amounts(moved: dict) -> str:
        return (
            ", ".join(
                f"{format_native_amount(int(v))} native" if k == "native" else f"{v} units of {k}"
                for k, v in moved.items()
            )
            or "nothing"
        )

    lines.append(
        f"{t['intents']} intents of {doc['agent_id']} since {doc['since'][:19]}: {t['changed']} would change "
        f"({t['undetermined']} undetermined: a stage needed the chain and nothing was recorded); "
        f"approved then {t['approved_then']}, under this policy {t['approved_now']}"
    )
    lines.append(f"moved: {amounts(t['moved'])}; would have moved: {amounts(t['would_have_moved'])}")
    return "\n".join(lines)


def run_what_if(settings: Settings, agent_id: str, policy: AgentPolicy, since: str) -> dict:
    return asyncio.run(what_if(settings, agent_id, policy, parse_since(since), utcnow()))


def cmd_what_if(args) -> int:
    settings = load()
    try:
        policy = proposed_policy(settings, args.agent, args.policy)
        doc = run_what_if(settings, args.agent, policy, args.since)
    except ValueError as exc:
        return fail("warden policy what-if", exc, 2)
    if args.json:
        print_json(doc)
    else:
        print(render(doc))
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    w = sub.add_parser("what-if", help="replay the agent's recorded intents under a new policy; nothing published")
    add_json_flag(w)
    w.add_argument("--agent", required=True)
    w.add_argument(
        "--policy", required=True, metavar="FILE", help="a JSON object of policy fields over the one in force"
    )
    w.add_argument("--since", default="30d", help="how far back: 30d, 12h (default 30d)")
    w.set_defaults(handler=cmd_what_if)
