"""``warden simulate``: ask the pipeline what a transaction, or a bundle of them, would do, signed
with the agent's intent key and answered by the worker (verified before it is shown); nothing is
reserved or signed.

``warden simulate --agent A --to X --value V [--data 0x..]`` simulates one transaction;
``warden simulate --agent A --bundle FILE`` the steps of FILE (a JSON list, each a transaction
intent's fields: ``to``, ``value``, optionally ``data``, ``gas_limit``, ``declared_outflows``) in
order in one block."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson
from pydantic import ValidationError

from infra.cli.output import add_json_flag, fail, print_json
from runtime.config import Settings, load
from schemas.errors import explain
from schemas.simulation import MAX_BUNDLE_STEPS, SimulationResult
from sdk.client import (
    Client,
    SimulationUnanswered,
    intent_key_file,
    load_or_create_agent_key,
    new_simulation_request,
    policy_in_force,
)


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    add_json_flag(p)
    p.set_defaults(handler=cmd_simulate)
    p.add_argument("--agent", required=True)
    p.add_argument("--chain", help="the chain; when omitted, the one chain the agent's policy allows")
    p.add_argument("--to")
    p.add_argument("--value", help='decimal string in the native unit, e.g. "0.05"')
    p.add_argument("--data", help="calldata, 0x-hex")
    p.add_argument("--gas-limit", type=int)
    p.add_argument(
        "--bundle",
        metavar="FILE",
        help=f"a JSON list of up to {MAX_BUNDLE_STEPS} steps, each a transaction's fields (to, value, data, ...), "
        "simulated in order in one block; --to, --value, --data and --gas-limit do not apply",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer")


def _steps(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.bundle is not None:
        if any(v is not None for v in (args.to, args.value, args.data, args.gas_limit)):
            raise ValueError("--bundle takes its steps from FILE; leave out --to, --value, --data and --gas-limit")
        with open(args.bundle, "rb") as fh:
            steps = orjson.loads(fh.read())
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise ValueError(f"{args.bundle}: expected a JSON list of steps (objects with to, value, ...)")
        return steps
    if args.to is None or args.value is None:
        raise ValueError("a transaction needs --to and --value (or give --bundle FILE)")
    given = {"to": args.to, "value": args.value, "data": args.data, "gas_limit": args.gas_limit}
    return [{k: v for k, v in given.items() if v is not None}]


def cmd_simulate(args: argparse.Namespace) -> int:
    settings = load()
    if not intent_key_file(settings.home, args.agent).exists():
        return fail(
            "simulate",
            f"agent {args.agent!r} has no intent key under {settings.home}; an admin provisions it with "
            f"`warden agents create --agent {args.agent} ...`",
        )
    try:
        steps = _steps(args)
    except (OSError, ValueError) as exc:
        return fail("simulate", exc, 2)
    try:
        result = asyncio.run(_simulate(settings, args, steps))
    except ValidationError as exc:
        return fail("simulate", "the request is not a valid simulation:\n  " + "\n  ".join(explain(exc)), 2)
    except (SimulationUnanswered, ValueError) as exc:
        return fail("simulate", exc)
    if args.json:
        print_json(result.model_dump(mode="json"))
    else:
        print(describe(result))
    return 0 if result.decision != "refused" else 3


async def _simulate(settings: Settings, args: argparse.Namespace, steps: list[dict[str, Any]]) -> SimulationResult:
    chain = args.chain
    if chain is None:
        policy = await policy_in_force(settings, args.agent)
        if policy is None or len(policy.tx_allowed_chains) != 1:
            raise ValueError("name the chain with --chain (the agent's policy does not allow exactly one)")
        chain = policy.tx_allowed_chains[0]
    key = load_or_create_agent_key(settings.home, args.agent)
    request = new_simulation_request(key, agent_id=args.agent, chain=chain, steps=steps)
    async with Client(settings) as client:
        return await client.simulate_request(request, args.timeout)


def describe(result: SimulationResult) -> str:
    """The answer for a person: the decision, then each step, its balance changes and verdicts."""
    head = f"simulation {result.request_id} on {result.chain}"
    if result.block_number is not None:
        head += f" (on top of block {result.block_number})"
    if result.decision == "refused" and result.deciding is not None:
        d = result.deciding
        head += f": refused by stage {d.stage} ({d.code}) for {d.intent_id}\n  {d.reason}"
    elif result.decision == "needs_human":
        head += f": needs a human's approval\n  {result.why_human}"
    else:
        head += ": allowed"
    lines = [head, "nothing was reserved or signed"]
    for number, step in enumerate(result.steps, start=1):
        outcome = "success" if step.status == "success" else f"REVERTED: {step.revert_reason}"
        lines.append(
            f"step {number} ({step.intent_id}) to {step.to}, value {step.value}: {outcome}, gas {step.gas_used}"
        )
        for row in step.balance_changes:
            before = "?" if row.before is None else row.before
            after = "?" if row.after is None else row.after
            lines.append(f"    {row.address} {row.token}: {before} -> {after} ({row.change})")
        verdicts = ", ".join(f"{v.stage} {'ok' if v.passed else 'REFUSED'} {v.code}" for v in step.verdicts)
        lines.append(f"    verdicts: {verdicts}")
        if step.not_judged:
            lines.append(f"    not judged: {', '.join(step.not_judged)}")
    return "\n".join(lines)
