"""What the HTTP API's tests share: request bodies the Intents API must refuse, each with the
field its 400 must name (the unit tests over aiohttp's test server and the stack tests over
`warden api` send the same ones), the clock the unit tests hand the service, and what the stack
tests do as a client does (`warden api` served, the CLI's JSON, a token, a scenario over aiohttp)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from runtime.config import Settings
from tests.support import serving, warden

T = TypeVar("T")
TIMEOUT = aiohttp.ClientTimeout(total=180)
# An answer of the API: its status, and its JSON body.
Answer = tuple[int, Any]


class Clock:
    """A clock that says ``at`` until a test moves it."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


RECIPIENT = "0x" + "ab" * 20

BAD_BODIES = {
    "value as a number": ({"chain": "anvil", "to": RECIPIENT, "value": 0.1}, "value"),
    "value negative": ({"chain": "anvil", "to": RECIPIENT, "value": "-1"}, "value"),
    "value hex": ({"chain": "anvil", "to": RECIPIENT, "value": "0x10"}, "value"),
    "value scientific": ({"chain": "anvil", "to": RECIPIENT, "value": "1e18"}, "value"),
    "value over-precise": ({"chain": "anvil", "to": RECIPIENT, "value": "0.0000000000000000001"}, "value"),
    "address too short": ({"chain": "anvil", "to": "0xabcd", "value": "1"}, "to"),
    "address bad checksum": (
        {"chain": "anvil", "to": "0xAbCdEf0123456789abcdef0123456789ABCDEF01", "value": "1"},
        "to",
    ),
    "unknown field": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "valu": "2"}, "valu"),
    "boolean as a string": (
        {"chain": "anvil", "to": RECIPIENT, "value": "1", "simulate_first": "true"},
        "simulate_first",
    ),
    "missing to": ({"chain": "anvil", "value": "1"}, "to"),
    "an EVM address on a Solana network": ({"chain": "solana-local", "to": RECIPIENT, "value": "1"}, "to"),
    "gas_price for type 2": (
        {"chain": "anvil", "to": RECIPIENT, "value": "1", "gas_price": "1", "tx_type": 2},
        "gas_price",
    ),
    "tx_type 3": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "tx_type": 3}, "tx_type"),
    "gas_limit a fraction": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "gas_limit": 21000.5}, "gas_limit"),
    # A JSON integer as written: a float is refused even when its fraction is zero, and so is a boolean.
    "gas_limit a float": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "gas_limit": 21000.0}, "gas_limit"),
    "tx_type a float": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "tx_type": 2.0}, "tx_type"),
    "tx_type a boolean": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "tx_type": True}, "tx_type"),
    "nonce a float": ({"chain": "anvil", "to": RECIPIENT, "value": "1", "nonce": 7.0}, "nonce"),
}

# Bodies `POST /v1/agents/{id}/sign` must refuse, with the field their 400 must name.
_DELEGATION = {"intent_type": "transaction", "chain": "anvil", "to": RECIPIENT, "value": "0", "tx_type": 4}
BAD_SIGN_BODIES = {
    "an authorization's chain_id a float": (
        {**_DELEGATION, "authorization_list": [{"chain_id": 31337.0, "address": RECIPIENT}]},
        "authorization_list.0.chain_id",
    ),
    "an authorization's chain_id a boolean": (
        {**_DELEGATION, "authorization_list": [{"chain_id": True, "address": RECIPIENT}]},
        "authorization_list.0.chain_id",
    ),
    "an authorization's nonce a string": (
        {**_DELEGATION, "authorization_list": [{"chain_id": 31337, "address": RECIPIENT, "nonce": "3"}]},
        "authorization_list.0.nonce",
    ),
    "tx_type a float": ({**_DELEGATION, "tx_type": 4.0}, "tx_type"),
}


@contextlib.contextmanager
def served_api(settings: Settings, log_dir: Path) -> Iterator[tuple[str, Path]]:
    """`warden api` on the stack of ``settings``: its URL, and the file its log goes to."""
    from infra.stack.local import free_port

    port = free_port()
    log = log_dir / "api.log"
    with serving(settings, ["api", "--listen", f"127.0.0.1:{port}", "--timeout", "120"], port, log, "warden api"):
        yield f"http://127.0.0.1:{port}", log


def cli_json(settings: Settings, *argv: str) -> dict[str, Any]:
    """What `warden ARGV --json` printed, once it exited 0."""
    done = warden(settings, *argv, "--json")
    assert done.returncode == 0, done.stderr
    said: dict[str, Any] = json.loads(done.stdout)
    return said


def run_http(scenario: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
    """``scenario`` run with an HTTP client of its own."""

    async def go() -> T:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            return await scenario(http)

    return asyncio.run(go())


async def agent_token(http: aiohttp.ClientSession, api: str, agent: str, key: str) -> str:
    """A token for ``agent``'s API key (never refused for others' failed attempts: schemathesis's
    come from this address too)."""
    async with http.post(f"{api}/v1/auth/agent-token", json={"agent_id": agent, "api_key": key}) as answer:
        assert answer.status == 200, await answer.text()
        token: str = (await answer.json())["access_token"]
        return token
