"""Paying an x402 resource through Warden, against the official x402 Python SDK's own server (its
Flask payment middleware, resource server and EVM facilitator: tests/x402_support.py) settling on
Anvil with a deployed EIP-3009 token (infra/contracts/AuthToken.sol). Warden wrote none of the
server side: it must accept Warden's payment, and the token must move on chain.

The same server sells six routes; the agent pays through each surface once: `warden pay` (the
CLI, in a child process), the MCP tool `pay_x402` (through the SDK's stdio client), and the SDK's
`pay`. A payment outside the policy is refused with the rule that refused it, and the server
records that no payment header reached it."""

from __future__ import annotations

import asyncio
import os
from io import TextIOWrapper
from typing import Any

import orjson
import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, Tool
from x402.mechanisms.evm.eip712 import hash_eip3009_authorization
from x402.mechanisms.evm.types import ExactEIP3009Payload

from infra import contracts
from infra.stack.local import LocalStack
from infra.stack.x402_server import Paid
from runtime.config import Settings
from schemas.codes import Code
from schemas.policy import Eip712DomainRule
from schemas.stages import Stage
from sdk.client import agent_transactions
from sdk.x402 import X402Error, decode_header
from sdk.x402_pay import Payment, pay
from tests.support import make_agent, warden, warden_mcp
from tests.token_support import DEPLOYER, balance_of, mint_tokens, on_anvil
from tests.x402_support import paid_server

NAME = "Warden Auth"
UNIT = 10**6
PRICE = 10_000  # 0.01 of the token
PAYEE = "0x00000000000000000000000000000000000A11cE"


async def _mcp_pay(settings: Settings, agent: str, url: str, errlog: TextIOWrapper) -> tuple[Tool, CallToolResult]:
    server = warden_mcp(settings, agent)
    async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        result = await session.call_tool("pay_x402", {"url": url}, read_timeout_seconds=150)
        return tools["pay_x402"], result


def _policy_fields(token: str) -> dict[str, Any]:
    return dict(
        tx_to_allowlist=(token, PAYEE),
        asset_limits=({"chain": "anvil", "token": token, "symbol": "WAUTH", "decimals": 6, "max_per_tx": "0.05"},),
        # What an admin does to let the token's authorizations be signed at all: its domain allowlisted.
        eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=token, chain_id=31337),),
    )


@pytest.fixture(scope="module")
def paid(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two agents (one with tokens, one without), one official server, and every payment made once, in order."""
    settings = stack.settings
    mallory = to_checksum_address("0x" + os.urandom(20).hex())  # fresh: any token it holds came from here
    token = asyncio.run(
        on_anvil(settings, lambda node: contracts.deploy(node, "AuthToken", NAME, "WAUTH", 6, sender=DEPLOYER))
    )
    agent = f"agent-x402-{os.urandom(3).hex()}"
    key, address, _ = asyncio.run(make_agent(settings, agent, **_policy_fields(token)))
    asyncio.run(mint_tokens(settings, token, address, 100 * UNIT))
    # An agent with the same policy and no tokens: Warden signs its payment, the server refuses it.
    poor = f"agent-x402-poor-{os.urandom(3).hex()}"
    poor_key, _, _ = asyncio.run(make_agent(settings, poor, **_policy_fields(token)))
    routes = [
        Paid("/cli", PAYEE, PRICE),
        Paid("/mcp", PAYEE, PRICE),
        Paid("/mallory", mallory, PRICE),
        Paid("/dear", PAYEE, 90_000),  # 0.09, above the 0.05 cap
        Paid("/elsewhere", PAYEE, PRICE, network="eip155:999999"),
        Paid("/poor", PAYEE, PRICE),
    ]
    got: dict[str, Any] = {"token": token, "agent": agent, "address": address, "mallory": mallory}
    with paid_server(settings.rpc_url_for("anvil"), token, NAME, routes) as server:
        asyncio.run(on_anvil(settings, lambda node: node.call("anvil_setBalance", server.facilitator, hex(10**20))))
        got["cli"] = warden(settings, "pay", f"{server.url}/cli", "--agent", agent, "--json")
        got["cli_text"] = warden(settings, "pay", f"{server.url}/dear", "--agent", agent)
        log = tmp_path_factory.mktemp("x402") / "mcp.log"
        with open(log, "w") as errlog:
            got["mcp_tool"], got["mcp"] = asyncio.run(_mcp_pay(settings, agent, f"{server.url}/mcp", errlog))
        got["mcp_log"] = log.read_text()

        async def sdk_payments() -> dict[str, Payment | str]:
            out: dict[str, Payment | str] = {}
            for name in ("mallory", "dear"):
                out[name] = await pay(settings, agent, key, f"{server.url}/{name}", timeout_s=90)
            out["poor"] = await pay(settings, poor, poor_key, f"{server.url}/poor", timeout_s=90)
            for name, max_amount in (("elsewhere", None), ("over_max", "0.005")):
                path = "cli" if name == "over_max" else name
                try:
                    await pay(settings, agent, key, f"{server.url}/{path}", timeout_s=90, max_amount=max_amount)
                except X402Error as exc:
                    out[name] = str(exc)
            return out

        got.update(asyncio.run(sdk_payments()))
        got["payments"], got["served"] = list(server.payments), list(server.served)
        got["facilitator"] = server.facilitator
    got["balances"] = {
        who: asyncio.run(balance_of(settings, token, addr))
        for who, addr in (("agent", address), ("payee", PAYEE), ("mallory", mallory))
    }
    got["records"] = asyncio.run(agent_transactions(settings, agent))
    return got


def test_the_official_server_accepts_warden_s_payment_and_the_token_moves(paid: dict[str, Any]) -> None:
    cli = paid["cli"]
    assert cli.returncode == 0, cli.stderr
    payment = orjson.loads(cli.stdout)
    assert payment["status"] == "paid" and payment["http_status"] == 200, payment
    assert orjson.loads(payment["body"]) == {"report": "the paid content of /cli"}
    asked = payment["requirement"]
    assert (asked["network"], asked["chain"], asked["pay_to"], asked["amount"]) == (
        "eip155:31337",
        "anvil",
        PAYEE,
        "10000",
    )
    assert asked["amount_text"] == "0.01 WAUTH"
    # The settlement the server reported: the SDK's facilitator sent the authorization on Anvil.
    settled = payment["settlement"]
    assert settled["success"] is True and settled["network"] == "eip155:31337", settled
    assert settled["payer"] == paid["address"] == payment["from"]
    # The MCP tool paid its route the same way.
    mcp = paid["mcp"]
    assert not mcp.is_error and mcp.structured_content["status"] == "paid", (mcp.content, paid["mcp_log"][-3000:])
    assert mcp.structured_content["settlement"]["success"] is True
    assert mcp.content[0].text.startswith(f"paid 0.01 WAUTH to {PAYEE} on anvil")
    assert "settlement" in paid["mcp_tool"].output_schema["properties"]
    # Two payments of 0.01 left the agent and reached the payee; nothing reached anyone else.
    assert paid["balances"] == {"agent": 100 * UNIT - 2 * PRICE, "payee": 2 * PRICE, "mallory": 0}
    assert sorted(paid["served"]) == ["/cli", "/mcp"]


def test_the_payment_is_warden_s_signature_from_the_agent_s_address(paid: dict[str, Any]) -> None:
    header = next(value for path, value in paid["payments"] if path == "/cli")
    sent = decode_header(header, "PAYMENT-SIGNATURE")
    authorization = sent["payload"]["authorization"]
    assert (authorization["from"], authorization["to"], authorization["value"]) == (paid["address"], PAYEE, "10000")
    # The digest as the official SDK's facilitator computes it, and the address that signed it.
    inner = ExactEIP3009Payload.from_dict(sent["payload"])
    digest = hash_eip3009_authorization(inner.authorization, 31337, paid["token"], NAME, "1")
    assert inner.signature is not None
    recovered = Account._recover_hash(digest, signature=bytes.fromhex(inner.signature[2:]))
    assert recovered == paid["address"]


def test_a_payee_off_the_allowlist_is_refused_by_its_rule_and_the_server_gets_nothing(paid: dict[str, Any]) -> None:
    refused = paid["mallory"]
    assert refused.status == "refused", refused
    assert (refused.refusal.stage, refused.refusal.code) == (Stage.ASSETS, Code.RECIPIENT_NOT_ALLOWLISTED)
    assert paid["mallory"].signature is None
    assert [path for path, _ in paid["payments"] if path == "/mallory"] == []
    assert paid["balances"]["mallory"] == 0
    # What the pipeline recorded: the agent's refusals, and no signature for them.
    refused_ids = {r.intent_id for r in paid["records"].rejected}
    assert refused.intent_id in refused_ids


def test_an_amount_above_the_asset_cap_is_refused_and_the_cli_names_the_rule(paid: dict[str, Any]) -> None:
    dear = paid["dear"]
    assert dear.status == "refused", dear
    assert (dear.refusal.stage, dear.refusal.code) == (Stage.ASSETS, Code.ASSET_OVER_CAP), dear
    assert "/dear" not in [path for path, _ in paid["payments"]]
    cli = paid["cli_text"]
    assert cli.returncode == 1 and cli.stdout == ""
    assert "refused 0.09 WAUTH to" in cli.stderr and "at stage assets: ASSET_OVER_CAP" in cli.stderr, cli.stderr
    assert "nothing was signed" in cli.stderr


def test_a_server_asking_on_an_unknown_network_gets_a_clear_error(paid: dict[str, Any]) -> None:
    message = paid["elsewhere"]
    assert "accepts[0].network 'eip155:999999' is no chain of Warden's registry" in message
    assert (
        "eip155:31337 (anvil)" in message
        and "admins add one with `warden chains add`, signed by their quorum" in message
    )
    assert "/elsewhere" not in [path for path, _ in paid["payments"]]


def test_the_callers_own_maximum_refuses_before_anything_is_signed(paid: dict[str, Any]) -> None:
    assert "asks 0.01 WAUTH, more than the most you allowed (0.005 WAUTH); nothing was signed" in paid["over_max"]
    # The only payment /cli was sent is the CLI's.
    assert len([path for path, _ in paid["payments"] if path == "/cli"]) == 1


def test_a_payment_the_server_refuses_is_reported_with_its_words(paid: dict[str, Any]) -> None:
    poor = paid["poor"]
    # Warden's policy allowed it and the signer signed; the SDK's facilitator found no funds to move.
    assert poor.status == "payment_not_accepted" and poor.signature is not None, poor
    # The error the SDK's server answers with: its verifier's code.
    assert poor.http_status == 402 and poor.server_error.startswith("invalid_exact_evm_"), poor
    assert [path for path, _ in paid["payments"] if path == "/poor"] == ["/poor"]
    assert "/poor" not in paid["served"]
