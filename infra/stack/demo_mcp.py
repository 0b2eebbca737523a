"""The demo's agent session through MCP: `warden mcp --agent` started over stdio by the official
`mcp` SDK's client, as an agent runtime starts it, and four tool calls in the order an agent makes
them for one small transfer: simulate it, check it against the policy, submit it, list it.

The session acts for its own agent (``demo_script.MCP_AGENT``: its own chain key, policy and
rolling windows, paying its own payee), so it changes nothing the scripted demo agent is judged on
or that the demo's tests count (its nonces, its balance, what alice and bob received).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import TextContent

from infra.stack.demo_script import FEE_CEILING, MCP_AGENT, MCP_PAYEE, MCP_VALUE
from infra.stack.provision import provision_agent
from runtime.config import Settings, child_environment
from schemas.codes import Code
from signer.custody import CLIENT_MODES

# What the submit must answer. In the client-custody modes every signature needs the client
# share, which `warden mcp` does not hold (it holds the agent's intent key only): the signer
# refuses, and fails closed with the one answer a missing share gets.
MISSING_SHARE = Code.CLIENT_SHARE_INVALID


def server_parameters(settings: Settings, agent: str, timeout_s: float = 90.0) -> StdioServerParameters:
    """How an MCP client starts `warden mcp --agent AGENT` over stdio against the stack of ``settings``."""
    from infra.stack.local import REPO

    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "infra.cli", "mcp", "--agent", agent, "--timeout", str(timeout_s)],
        env=child_environment(settings) | {"PYTHONPATH": str(REPO)},
        cwd=str(REPO),
    )


async def provision(settings: Settings, client_share: str | None) -> str:
    """The session's agent: funded, allowed to pay MCP_PAYEE up to 1 ETH a day. Returns its address.
    ``client_share``: the vault's, in the client-custody modes (the demo agent's provisioning made it)."""
    agent = await provision_agent(
        settings,
        MCP_AGENT,
        client_share=client_share,
        tx_to_allowlist=(MCP_PAYEE,),
        tx_max_value_eth="0.5",
        tx_daily_limit_eth="1",
        tx_max_fee_per_gas=FEE_CEILING,
    )
    return agent.address


def expected_submit(settings: Settings) -> str:
    return MISSING_SHARE if settings.key_mode in CLIENT_MODES else "mined"


async def run_session(
    settings: Settings,
    client_share: str | None,
    go: asyncio.Event | None = None,
    progress: Callable[[str], object] = print,
    timeout_s: float = 90.0,
) -> dict[str, Any]:
    """Provision the session's agent, start its MCP server, wait for ``go``, then make the four
    calls and judge them. The demo sets ``go`` once every scripted outcome is in, so that the
    provisioning and the server's start (seconds of Python imports) overlap the script. Returns the report's ``mcp_session``: each call (tool, arguments,
    the server's one-line summary, its structured result, its seconds), what was expected, and
    ``as_expected``."""
    began = time.monotonic()
    address = await provision(settings, client_share)
    provisioned = time.monotonic()
    transfer = {"chain": "anvil", "to": MCP_PAYEE, "value": MCP_VALUE}
    calls: list[dict[str, Any]] = []
    session: dict[str, Any] = {
        "agent_id": MCP_AGENT,
        "address": address,
        "transfer": transfer,
        "expected_submit": expected_submit(settings),
        "calls": calls,
    }
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    server = server_parameters(settings, MCP_AGENT, timeout_s)
    try:
        with open(settings.log_dir / "mcp.log", "a") as errlog:
            async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as client:
                await client.initialize()
                session["seconds_to_provision"] = round(provisioned - began, 3)
                session["seconds_to_start_server"] = round(time.monotonic() - provisioned, 3)
                if go is not None:
                    await go.wait()
                progress(f"agent {MCP_AGENT} ({address}) drives `warden mcp --agent {MCP_AGENT}` over stdio")
                first_call = time.monotonic()
                for tool, arguments in (
                    ("simulate_transaction", transfer),
                    ("check_policy", transfer),
                    ("submit_transaction", transfer),
                    ("list_transactions", {}),
                ):
                    asked = time.monotonic()
                    answer = await client.call_tool(tool, arguments, read_timeout_seconds=timeout_s + 30)
                    # Warden's server answers with its one-line summary as the first, text, content.
                    first = answer.content[0] if answer.content else None
                    calls.append(
                        {
                            "tool": tool,
                            "arguments": arguments,
                            "is_error": bool(answer.is_error),
                            "summary": first.text if isinstance(first, TextContent) else "",
                            "result": answer.structured_content,
                            "seconds": round(time.monotonic() - asked, 3),
                        }
                    )
                session["seconds_of_calls"] = round(time.monotonic() - first_call, 3)
                answered = time.monotonic()
        # What the SDK's client waits for the server to exit once its stdin is closed.
        session["seconds_to_stop_server"] = round(time.monotonic() - answered, 3)
    except Exception as exc:
        # The demo reports every part it ran; a session that broke off (a server that did not
        # start, a transport error) is shown as such and fails the demo's exit code.
        session["error"] = f"{type(exc).__name__}: {exc} (the server's log: {settings.log_dir / 'mcp.log'})"
    session["checks"] = checks(session)
    session["as_expected"] = "error" not in session and all(session["checks"].values())
    return session


def _result(session: dict[str, Any], tool: str) -> dict[str, Any]:
    found = [c for c in session["calls"] if c["tool"] == tool and not c["is_error"]]
    return (found[0]["result"] or {}) if found else {}


def checks(session: dict[str, Any]) -> dict[str, bool]:
    """What an agent must have been told: the transfer simulates, succeeds and moves exactly its
    value to the payee; the policy allows it; the submit is mined (or refused for want of a client
    share, in the client-custody modes); the listing holds the submitted intent."""
    value = Decimal(session["transfer"]["value"])
    simulated = _result(session, "simulate_transaction")
    steps = simulated.get("steps") or [{}]
    payee = [
        Decimal(r["change"])
        for r in steps[0].get("balance_changes", ())
        if r["address"].lower() == MCP_PAYEE.lower() and r["token"] == "native"
    ]
    submitted = _result(session, "submit_transaction")
    outcome = submitted.get("status")
    if outcome == "refused":
        outcome = submitted["refusal"]["code"]
    listed = _result(session, "list_transactions").get("transactions", ())
    return {
        "simulated": simulated.get("decision") == "allowed" and steps[0].get("status") == "success",
        "payee_receives_value": payee == [value],
        "check_allowed": _result(session, "check_policy").get("decision") == "allowed",
        "submit": outcome == session["expected_submit"],
        "listed": bool(submitted) and submitted.get("intent_id") in {t["intent_id"] for t in listed},
    }


def render(session: dict[str, Any]) -> str:
    """A few lines for a person: what the agent asked, what Warden answered."""
    transfer = session["transfer"]
    lines = [
        f"\nagent session through MCP: {session['agent_id']} ({session['address']}) drives `warden mcp` over stdio, "
        f"for a transfer of {transfer['value']} ETH to {transfer['to']} on {transfer['chain']}"
    ]
    calls = session["calls"]
    if "seconds_of_calls" in session:
        lines[0] += (
            f" (the calls took {session['seconds_of_calls']} s; the server started in "
            f"{session['seconds_to_start_server']} s while the script ran)"
        )
    for call in calls:
        mark = "!! " if call["is_error"] else "   "
        lines.append(f"{mark}{call['tool']:21} -> {call['summary']}")
        result = call["result"] or {}
        if call["tool"] == "simulate_transaction" and result.get("steps"):
            step = result["steps"][0]
            changes = ", ".join(
                f"{r['address']} {r['change']}" for r in step["balance_changes"] if r["token"] == "native"
            )
            lines.append(f"{'':24} {step['status']}, gas {step['gas_used']}; ETH balance changes: {changes}")
        elif call["tool"] == "check_policy":
            for window in result.get("windows_24h", ()):
                lines.append(
                    f"{'':24} 24 h window ({window['symbol']}): {window['spent_24h']} spent of {window['limit']}, "
                    f"{window['left']} left"
                )
    if "error" in session:
        lines.append(f"!! the session broke off: {session['error']}")
    failed = [name for name, ok in session["checks"].items() if not ok]
    lines.append(
        "the session went as expected (simulated, allowed, "
        f"{'mined' if session['expected_submit'] == 'mined' else 'refused for want of a client share'}, listed)"
        if session["as_expected"]
        else f"THE SESSION DIFFERS FROM WHAT WAS EXPECTED: {', '.join(failed) or 'it broke off'}"
    )
    return "\n".join(lines)
