"""The demo's agent over HTTP: `warden api`, run by the demo's stack as `warden up` runs it, driven
with plain HTTP requests shaped as the Intents API specifies them: an API key an admin issued, a token for
it, a transfer, a transfer over the cap, and a sign-only transaction.

The session acts for its own agent (`HTTP_AGENT`, its own chain key, policy and payee), so it
changes nothing the scripted demo agent is judged on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp

from gateway.http_api.api_keys import issue_api_key
from infra.stack.demo_script import FEE_CEILING
from infra.stack.provision import provision_agent
from runtime.clock import utcnow
from runtime.config import Settings
from signer.custody import CLIENT_MODES

HTTP_AGENT = "demo-http-agent"
HTTP_PAYEE = "0x00000000000000000000000000000000000047e1"


def _requests(settings: Settings) -> list[tuple[str, str, dict[str, Any], int]]:
    """(what, path, body, the status expected). In the client-custody modes every signature needs
    the client share, which the API does not hold: the signer refuses, 403."""
    signs = 403 if settings.key_mode in CLIENT_MODES else 201
    return [
        ("transfer", "/transactions", {"chain": "anvil", "to": HTTP_PAYEE, "value": "0.01", "data": "0x"}, signs),
        ("over the cap", "/transactions", {"chain": "anvil", "to": HTTP_PAYEE, "value": "0.6"}, 403),
        ("sign-only", "/transactions/sign", {"chain": "anvil", "to": HTTP_PAYEE, "value": "0.02"}, signs),
    ]


async def run_session(
    settings: Settings, client_share: str | None, progress: Callable[[str], object], timeout_s: float = 60.0
) -> dict[str, Any]:
    agent = await provision_agent(
        settings,
        HTTP_AGENT,
        client_share=client_share,
        tx_to_allowlist=(HTTP_PAYEE,),
        tx_max_value_eth="0.5",
        tx_daily_limit_eth="1",
        tx_max_fee_per_gas=FEE_CEILING,
    )
    api_key, record = issue_api_key(settings.home, HTTP_AGENT, utcnow())
    base = f"http://{settings.api_http}"
    progress(f"agent {HTTP_AGENT} over HTTP at {base}/v1 with API key {record.key_id}")
    calls = []
    began = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
        async with http.post(
            f"{base}/v1/auth/agent-token", json={"agent_id": HTTP_AGENT, "api_key": api_key}
        ) as answer:
            token = (await answer.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for what, path, body, expected in _requests(settings):
            async with http.post(f"{base}/v1/agents/{HTTP_AGENT}{path}", json=body, headers=headers) as answer:
                doc = await answer.json()
                calls.append(
                    {
                        "what": what,
                        "request": f"POST /v1/agents/{HTTP_AGENT}{path}",
                        "body": body,
                        "status": answer.status,
                        "expected_status": expected,
                        "answer": doc,
                    }
                )
    return {
        "agent_id": HTTP_AGENT,
        "address": agent.address,
        "seconds": round(time.monotonic() - began, 3),
        "calls": calls,
        "as_expected": all(c["status"] == c["expected_status"] for c in calls),
    }


def render(session: dict[str, Any]) -> str:
    lines = [
        f"\nagent over HTTP: {session['agent_id']} ({session['address']}) sends the Intents API's requests to `warden api` "
        f"({session['seconds']} s)"
    ]
    for call in session["calls"]:
        mark = "   " if call["status"] == call["expected_status"] else "!! "
        doc = call["answer"]
        if call["status"] in (200, 201, 202):
            said = f"{doc.get('status')} {doc.get('tx_hash', '')}".strip()
        else:
            said = f"{doc.get('code') or doc.get('error')} at {doc.get('stage')}: {str(doc.get('detail'))[:70]}"
        lines.append(f"{mark}{call['what']:13} {call['request']:52} {call['status']} {said}")
    return "\n".join(lines)
