"""``warden policy what-if``: what a new policy would have decided, asked of the audit ledger
before it goes live (`sdk.what_if`): every recorded decision that would change, with the
deciding rule, then the totals, the recorded intents not replayed and why, and whether the rows
read were checked against the ledger's hash chains and signed checkpoints (`check_rows`, before
anything read is replayed)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from infra.cli.output import add_json_flag, fail, print_json
from ledger.cosigning import parse_witnesses
from ledger.keys import SigningKeyError, local_public_key
from ledger.store import StoreError, open_reader
from ledger.verify import verify
from runtime.clock import utcnow
from runtime.config import Settings, load
from runtime.registry import REGISTRY
from schemas.errors import explain
from schemas.fields import format_native_amount
from schemas.policy import AgentPolicy
from sdk.client import policy_in_force
from sdk.what_if import LedgerRead, parse_since, read_ledger, what_if


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
        return AgentPolicy.model_validate(
            {**base, **fields, "agent_id": agent_id, "version": current.version + 1}, context=REGISTRY.context
        )
    except ValidationError as exc:
        raise ValueError(f"--policy {path}: the policy is not valid: {'; '.join(explain(exc))}") from None


def render(doc: dict[str, Any]) -> str:
    lines = []
    for c in doc["changes"]:
        was = c["was"] + (f" ({c['was_stage']} {c['was_code']})" if c["was_code"] else "")
        would = c["would_be"] + (f" ({c['deciding_stage']} {c['deciding_code']})" if c["deciding_code"] else "")
        lines.append(f"{c['intent_id']:40} {c['at'][:19]}  {c['value'] or '':>10} to {c['to']}: {was} -> {would}")
        lines.append(f"{'':40} {c['reason']}")
    t = doc["totals"]

    def amounts(moved: dict[str, Any]) -> str:
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
    if doc["skipped"]:
        why = ", ".join(f"{reason} ({count})" for reason, count in doc["skipped"].items())
        lines.append(f"skipped {t['skipped']}: {why}; not replayed")
    lines.append(_checked(doc["ledger_check"]))
    return "\n".join(lines)


def _checked(check: dict[str, Any]) -> str:
    if not check["checked"]:
        return f"ledger: NOT checked ({check['reason']}): the rows read were believed as stored"
    newer = (
        f", {check['chain_only']} newer than the last signed checkpoint (checked by their hash chain only)"
        if check["chain_only"]
        else ""
    )
    late = f", {check['not_checked']} appended after the check and NOT checked" if check["not_checked"] else ""
    return (
        f"ledger: {check['rows_read']} rows read, checked against the hash chains and signed checkpoints: "
        f"{check['under_checkpoint']} under a signed checkpoint{newer}{late}"
    )


def run_what_if(
    settings: Settings, agent_id: str, policy: AgentPolicy, since: str, check: bool = True
) -> dict[str, Any]:
    """The what-if report; the rows read are checked against the ledger first unless ``check`` is
    False (``--no-verify``), which the report says. ValueError says why there is none."""
    begin = utcnow() - parse_since(since)
    read = read_ledger(settings, agent_id, begin)
    checked = check_rows(settings, read) if check else {"checked": False, "reason": "--no-verify"}
    doc = asyncio.run(what_if(read, agent_id, policy, begin, settings.intent_max_age_s * 1_000_000))
    return doc | {"ledger_check": checked}


def check_rows(settings: Settings, read: LedgerRead) -> dict[str, Any]:
    """Every row ``read`` holds, checked as `warden audit verify --since` checks the chains they are
    on: from the last signed checkpoint before the oldest of them, every row hashed and linked,
    every checkpoint after it verified (with the pinned witnesses' cosignatures). A problem on those
    chains refuses the replay (ValueError). Rows newer than the last checkpoint are counted as
    checked by their chain only: a checkpoint signs them within WARDEN_LEDGER_CHECKPOINT_SECONDS."""
    chains = sorted({chain for chain, _ in read.rows})
    if not chains:
        return {
            "checked": True,
            "chains": [],
            "since": None,
            "rows_read": 0,
            "under_checkpoint": 0,
            "chain_only": 0,
            "not_checked": 0,
        }
    try:
        key = local_public_key(settings.home)
        store = open_reader(settings)
    except (SigningKeyError, StoreError) as exc:
        raise ValueError(
            f"cannot check the rows read against the ledger: {exc}; or replay them unchecked with "
            "`warden policy what-if --no-verify`"
        ) from None
    try:
        witnesses = [w.key for w in parse_witnesses(settings.ledger.witnesses)]
        found = verify(store, key, chains, since=read.oldest, log_name=settings.ledger.log_name, witnesses=witnesses)
    except StoreError as exc:
        raise ValueError(f"cannot check the rows read against the ledger: {exc}") from None
    finally:
        store.close()
    if not found.ok:
        raise ValueError(
            f"the ledger's rows do not verify ({found.problems[0].describe()}); nothing was replayed: run "
            "`warden audit verify` to see every problem"
        )
    results = {c.chain: c for c in found.chains}
    counts = {"under_checkpoint": 0, "chain_only": 0, "not_checked": 0}
    for chain, seq in read.rows:
        result = results[chain]
        if result.last_checkpoint_seq is not None and seq <= result.last_checkpoint_seq:
            counts["under_checkpoint"] += 1
        elif result.last_seq is not None and seq <= result.last_seq:
            counts["chain_only"] += 1
        else:  # appended after the check began
            counts["not_checked"] += 1
    # from_rows gives rows an oldest time; None only for a LedgerRead made with rows but without it.
    since = None if read.oldest is None else read.oldest.isoformat()
    return {"checked": True, "chains": chains, "since": since, "rows_read": len(read.rows), **counts}


def cmd_what_if(args: argparse.Namespace) -> int:
    settings = load()
    try:
        policy = proposed_policy(settings, args.agent, args.policy)
        doc = run_what_if(settings, args.agent, policy, args.since, check=not args.no_verify)
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
    w.add_argument(
        "--no-verify",
        action="store_true",
        help="replay the rows read without checking them against the ledger's hash chains and signed "
        "checkpoints (the report says so)",
    )
    w.set_defaults(handler=cmd_what_if)
