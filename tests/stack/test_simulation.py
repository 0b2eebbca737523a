"""Simulation requests on the real stack (Tansu, Anvil, the worker, the signer): balance changes
checked against what Anvil then does, a bundle whose second step succeeds only after its first,
one whose second step reverts, one over the rolling 24 h limit though no step alone is; a
forged result the SDK refuses, a simulation replayed where the signer reads that signs nothing;
and an MCP client calling simulate_transaction and simulate_bundle over stdio."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_utils import to_checksum_address
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent, Tool

from infra import contracts
from infra.stack.local import REPO, LocalStack
from runtime.clock import utcnow
from runtime.config import Settings, child_environment
from runtime.kafka import end_offsets, read_to_quiet
from runtime.rpc import JsonRpc
from runtime.trust import PinnedServiceKeys
from schemas import topics
from schemas.auth import sign_outcome
from schemas.codes import Code
from schemas.fields import format_native_amount
from schemas.outcomes import DeadLetter, IntentRejected, SignedTransaction
from schemas.simulation import BalanceRow, SimulatedStep, SimulationResult
from schemas.stages import Stage
from sdk.client import (
    OUTCOME_TOPICS,
    Client,
    Outcome,
    new_intent,
    new_simulation_request,
    wait_outcomes,
    wait_simulation,
)
from tests.support import make_agent
from tests.token_support import ALICE, UNIT, mint_tokens, token_assets


def _rows(step: SimulatedStep) -> dict[tuple[str, str], BalanceRow]:
    return {(r.address.lower(), r.token): r for r in step.balance_changes}


async def _balance(settings: Settings, address: str) -> int:
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=60)
    try:
        return int(await node.call("eth_getBalance", address, "latest"), 16)
    finally:
        await node.close()


@pytest.fixture(scope="module")
def agent(stack: LocalStack, deployed: dict[str, str]) -> dict[str, Any]:
    """One agent for the module: the token and its router allowlisted, a 1-unit rolling limit."""
    token, router = deployed["token"], deployed["router"]
    payee = "0x" + os.urandom(20).hex()
    name = f"sim-{os.urandom(3).hex()}"
    key, address, _ = asyncio.run(
        make_agent(
            stack.settings,
            name,
            tx_to_allowlist=(token, router, ALICE, to_checksum_address(payee)),
            tx_max_value_eth="1",
            tx_daily_limit_eth="1",
            asset_limits=token_assets(deployed, max_per_tx="50", daily_limit="500"),
            contract_calls=({"contract": router, "selectors": ("pull(address,uint256)",)},),
        )
    )
    asyncio.run(mint_tokens(stack.settings, token, address, 100 * UNIT))
    return {"name": name, "key": key, "address": address, "payee": to_checksum_address(payee)}


def _simulate(settings: Settings, agent: dict[str, Any], steps: list[dict[str, Any]]) -> SimulationResult:
    async def ask() -> SimulationResult:
        async with Client(settings) as client:
            return await client.simulate_bundle(
                agent["key"], agent_id=agent["name"], chain="anvil", steps=steps, timeout_s=90
            )

    return asyncio.run(ask())


def test_a_transfers_balance_changes_are_what_anvil_then_does(stack: LocalStack, agent: dict[str, Any]) -> None:
    settings, payee, sender = stack.settings, agent["payee"], agent["address"]
    result = _simulate(settings, agent, [{"to": payee, "value": "0.25"}])
    assert result.decision == "allowed", result
    (step,) = result.steps
    assert step.status == "success" and step.gas_used == 21_000
    rows = _rows(step)
    assert (rows[(payee.lower(), "native")].before, rows[(payee.lower(), "native")].after) == ("0", "0.25")
    assert rows[(sender.lower(), "native")].change == "-0.25"
    assert [v.stage for v in step.verdicts][-1] == Stage.USD_LIMIT and all(v.passed for v in step.verdicts)

    async def mine() -> tuple[int, Outcome, int, int]:
        before = await _balance(settings, sender)
        intent = new_intent(agent["key"], agent_id=agent["name"], chain="anvil", to=payee, value="0.25", broadcast=True)
        start = await end_offsets(settings, OUTCOME_TOPICS)
        async with Client(settings) as client:
            await client.submit(intent)
        mined = (await wait_outcomes(settings, [intent], 90, start))[intent.intent_id]
        return before, mined, await _balance(settings, payee), await _balance(settings, sender)

    before, mined, payee_after, sender_after = asyncio.run(mine())
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined
    assert mined.fee_wei is not None
    # The simulation's `before` is the chain's balance, and its change is what the chain did: the
    # payee got exactly the value; the sender paid the value and, beyond the simulation, the fee.
    assert rows[(sender.lower(), "native")].before == format_native_amount(before)
    assert payee_after == 25 * 10**16
    assert before - sender_after == 25 * 10**16 + mined.fee_wei


def _pull(deployed: dict[str, str], units: int) -> dict[str, Any]:
    """The "swap": the router pulls ``units`` of the token from the agent, declared as an outflow."""
    token = deployed["token"]
    return {
        "to": deployed["router"],
        "value": "0",
        "data": contracts.calldata("pull(address,uint256)", token, units),
        "declared_outflows": [{"token": token, "amount": str(units)}],
    }


def test_approve_then_swap_succeeds_only_as_a_bundle(
    stack: LocalStack, agent: dict[str, Any], deployed: dict[str, str]
) -> None:
    token, router, sender = deployed["token"], deployed["router"], agent["address"]
    approve = {"to": token, "value": "0", "data": contracts.calldata("approve(address,uint256)", router, 30 * UNIT)}
    swap = _pull(deployed, 20 * UNIT)
    bundle = _simulate(stack.settings, agent, [approve, swap])
    assert bundle.decision == "allowed", bundle
    assert [s.status for s in bundle.steps] == ["success", "success"]
    moved = _rows(bundle.steps[1])
    assert moved[(sender.lower(), token)].change == "-20" and moved[(router.lower(), token)].change == "20"
    assert moved[(sender.lower(), token)].decimals == 6
    assert moved[(sender.lower(), token)].before == "100" and moved[(sender.lower(), token)].after == "80"
    alone = _simulate(stack.settings, agent, [swap])
    (step,) = alone.steps
    assert step.status == "reverted" and step.revert_reason
    assert alone.deciding is not None, alone
    assert (alone.decision, alone.deciding.stage, alone.deciding.code) == (
        "refused",
        Stage.SIMULATION,
        Code.SIMULATION_REVERTED,
    )


def test_a_bundle_whose_second_step_reverts_says_why(
    stack: LocalStack, agent: dict[str, Any], deployed: dict[str, str]
) -> None:
    token = deployed["token"]
    pay = {"to": token, "value": "0", "data": contracts.calldata("transfer(address,uint256)", ALICE, 1 * UNIT)}
    unapproved = _pull(deployed, 20 * UNIT)  # within every limit, but the router was never approved to pull
    result = _simulate(stack.settings, agent, [pay, unapproved])
    assert [s.status for s in result.steps] == ["success", "reverted"]
    assert result.steps[1].revert_reason and not result.steps[1].revert_reason.startswith("0x")
    assert result.decision == "refused" and result.deciding is not None
    assert result.deciding.intent_id == result.steps[1].intent_id
    assert result.deciding.code == Code.SIMULATION_REVERTED
    assert all(v.passed for v in result.steps[0].verdicts)


def test_a_bundle_over_the_rolling_limit_is_refused_though_no_step_alone_is(
    stack: LocalStack, agent: dict[str, Any]
) -> None:
    payee = agent["payee"]
    alone = _simulate(stack.settings, agent, [{"to": payee, "value": "0.6"}])
    assert alone.decision == "allowed", alone
    both = _simulate(stack.settings, agent, [{"to": payee, "value": "0.6"}, {"to": payee, "value": "0.6"}])
    assert all(v.passed for v in both.steps[0].verdicts)
    assert both.deciding is not None, both
    assert (both.deciding.stage, both.deciding.code) == (Stage.DAILY_LIMIT, Code.DAILY_LIMIT_EXCEEDED), both
    assert both.deciding.intent_id == both.steps[1].intent_id


def test_a_forged_result_is_refused_and_a_replayed_simulation_signs_nothing(
    stack: LocalStack, agent: dict[str, Any]
) -> None:
    settings = stack.settings
    request = new_simulation_request(
        agent["key"], agent_id=agent["name"], chain="anvil", steps=[{"to": agent["payee"], "value": "0.01"}]
    )

    async def scenario() -> tuple[SimulationResult, list[str], Outcome, list[DeadLetter], bytes, int]:
        paid_before = await _balance(settings, agent["payee"])
        keys = PinnedServiceKeys(settings)
        start = await end_offsets(settings, (topics.SIMULATIONS_RESULTS,))
        lie = SimulationResult(
            request_id=request.request_id,
            agent_id=request.agent_id,
            chain="anvil",
            decision="allowed",
            simulated_at=utcnow(),
            intent_digest=request.digest(),
        )
        forged: list[str] = []
        async with Client(settings) as client:
            # Written before the request is: the first answer the client reads is the lie.
            await (
                await client.send(
                    topics.SIMULATIONS_RESULTS,
                    request.agent_id,
                    sign_outcome(lie, Ed25519PrivateKey.generate(), "streams-0").to_bytes(),
                )
            )
            await (await client.send(topics.SIMULATIONS_REQUESTED, request.agent_id, request.to_bytes()))
            real = await wait_simulation(settings, request, keys, 90, start, forged)
            # Then the real answer and the request, replayed where the signer and the worker read intents.
            outcomes_start = await end_offsets(settings, OUTCOME_TOPICS)
            dlq_start = await end_offsets(settings, (topics.DLQ,))
            raw_result = real.to_bytes()
            await (await client.send(topics.INTENTS_APPROVED, request.agent_id, raw_result))
            step = request.steps[0].model_copy(update={"signature": request.signature})
            await client.submit(step)
            answered = await wait_outcomes(settings, [step], 60, outcomes_start)
        letters: list[DeadLetter] = []
        async for _, value in read_to_quiet(settings, (topics.DLQ,), 10, dlq_start):
            letters.append(DeadLetter.from_bytes(value))
        paid = await _balance(settings, agent["payee"]) - paid_before
        return real, forged, answered[step.intent_id], letters, raw_result, paid

    real, forged, answered, letters, raw_result, paid = asyncio.run(scenario())
    assert real.decision == "allowed" and forged, (real, forged)
    assert isinstance(answered, IntentRejected) and answered.code == Code.AGENT_SIGNATURE_INVALID
    replayed = [d for d in letters if d.payload_sha256 == hashlib.sha256(raw_result).hexdigest()]
    assert replayed and replayed[0].source_topic == topics.INTENTS_APPROVED
    assert paid == 0  # nothing the simulation or its replays asked for was signed


def test_an_mcp_client_simulates_a_transaction_and_a_bundle(
    stack: LocalStack, agent: dict[str, Any], deployed: dict[str, str], tmp_path: Path
) -> None:
    token, router = deployed["token"], deployed["router"]
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "infra.cli", "mcp", "--agent", agent["name"], "--timeout", "90"],
        env=child_environment(stack.settings) | {"PYTHONPATH": str(REPO)},
        cwd=str(REPO),
    )

    async def session() -> tuple[dict[str, Tool], CallToolResult, CallToolResult]:
        with open(tmp_path / "server.log", "w") as errlog:
            async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as client:
                await client.initialize()
                tools = {t.name: t for t in (await client.list_tools()).tools}
                one = await client.call_tool(
                    "simulate_transaction",
                    {"chain": "anvil", "to": agent["payee"], "value": "0.01"},
                    read_timeout_seconds=120,
                )
                approve = contracts.calldata("approve(address,uint256)", router, 5 * UNIT)
                pull = contracts.calldata("pull(address,uint256)", token, 20 * UNIT)  # more than approved
                bundle = await client.call_tool(
                    "simulate_bundle",
                    {
                        "chain": "anvil",
                        "transactions": [
                            {"to": token, "value": "0", "data": approve},
                            {"to": router, "value": "0", "data": pull},
                        ],
                    },
                    read_timeout_seconds=120,
                )
                return tools, one, bundle

    tools, one, bundle = asyncio.run(session())
    for name in ("simulate_transaction", "simulate_bundle"):
        output_schema = tools[name].output_schema
        assert (
            tools[name].input_schema["type"] == "object"
            and output_schema is not None
            and output_schema["type"] == "object"
        )
    assert "transactions" in tools["simulate_bundle"].input_schema["properties"]
    single = one.structured_content
    assert single["decision"] == "allowed" and single["steps"][0]["status"] == "success", (one.content, single)
    assert {r["change"] for r in single["steps"][0]["balance_changes"]} == {"-0.01", "0.01"}
    assert isinstance(one.content[0], TextContent) and "nothing signed" in one.content[0].text
    steps = bundle.structured_content["steps"]
    assert [s["status"] for s in steps] == ["success", "reverted"] and steps[1]["revert_reason"]
    assert bundle.structured_content["decision"] == "refused"


def test_warden_simulate_prints_one_transaction_and_a_bundle(
    stack: LocalStack, agent: dict[str, Any], deployed: dict[str, str], tmp_path: Path
) -> None:
    from tests.support import warden

    settings, payee = stack.settings, agent["payee"]
    one = warden(settings, "simulate", "--agent", agent["name"], "--to", payee, "--value", "0.02", "--json")
    assert one.returncode == 0, one.stderr
    doc = orjson.loads(one.stdout)
    assert doc["decision"] == "allowed" and doc["steps"][0]["status"] == "success"
    steps = tmp_path / "steps.json"
    steps.write_bytes(orjson.dumps([{"to": payee, "value": "0.6"}, {"to": payee, "value": "0.6"}]))
    bundle = warden(settings, "simulate", "--agent", agent["name"], "--chain", "anvil", "--bundle", str(steps))
    assert bundle.returncode == 3, bundle.stderr  # refused
    assert "refused by stage daily_limit (DAILY_LIMIT_EXCEEDED)" in bundle.stdout
    assert "step 2" in bundle.stdout and "nothing was reserved or signed" in bundle.stdout
    missing = warden(settings, "simulate", "--agent", agent["name"], "--to", payee)
    assert missing.returncode == 2 and "--to and --value" in missing.stderr
