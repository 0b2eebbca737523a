"""A bundle's pure parts (`rules.bundle`): the balance-change table of each step, the spend of the
earlier steps added to the windows of the later ones; and a simulation request's shape and
signature (`schemas.simulation`), which is never an intent's. tests/stack/test_simulation.py runs
bundles on Anvil through the worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_utils import to_checksum_address
from pydantic import ValidationError

from evm.rpc_results import CallResult, Log
from rules import judge
from rules.bundle import (
    TraceUnreadable,
    balance_table,
    holdings,
    priced,
    signed_amount,
    step_spend,
    trace,
    with_earlier,
)
from rules.movements import NATIVE, NATIVE_TRANSFER_ADDRESS, TRANSFER_TOPIC
from schemas.auth import intent_signature_valid, public_key_hex, sign_simulation_request
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.simulation import MAX_BUNDLE_STEPS, SimulationRequest

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
AGENT = "0x" + "a1" * 20
ROUTER = "0x" + "b2" * 20
SHOP = "0x" + "c3" * 20
TOKEN = to_checksum_address("0x0000000000000000000000000000000000700c3a")
ZERO = "0x" + "00" * 20


def _log(asset: str, source: str, dest: str, amount: int) -> Log:
    def topic(address: str) -> str:
        return "0x" + address[2:].lower().rjust(64, "0")

    return {"address": asset, "topics": [TRANSFER_TOPIC, topic(source), topic(dest)], "data": "0x" + f"{amount:064x}"}


def _step(intent_id: str, value: str = "0", **fields: Any) -> TransactionIntent:
    body = dict(intent_id=intent_id, agent_id="agent-1", chain="anvil", to=SHOP, value=value, created_at=NOW)
    return TransactionIntent(**{**body, **fields})


def test_each_step_shows_every_address_it_touches_before_after_and_change_in_the_assets_unit() -> None:
    step1: CallResult = {"status": "0x1", "logs": [_log(NATIVE_TRANSFER_ADDRESS, AGENT, SHOP, 25 * 10**16)]}
    step2: CallResult = {
        "status": "0x1",
        "logs": [
            _log(TOKEN, AGENT, ROUTER, 3_500_000),  # through the router...
            _log(TOKEN, ROUTER, SHOP, 3_500_000),  # ...to the shop
            _log(TOKEN, ZERO, AGENT, 1),  # a mint: the zero address has no balance to show
        ],
    }
    outcomes = [step1, step2]
    wanted = holdings(outcomes)
    assert (ZERO, TOKEN) not in wanted and (AGENT.lower(), NATIVE) in wanted
    before = {
        (AGENT.lower(), NATIVE): 10**18,
        (SHOP.lower(), NATIVE): 0,
        (AGENT.lower(), TOKEN): 10_000_000,
        (ROUTER.lower(), TOKEN): 0,
        (SHOP.lower(), TOKEN): None,  # a token that could not say
    }
    table = balance_table(outcomes, before, {NATIVE: 18, TOKEN: 6})
    first = {(r.address.lower(), r.token): r for r in table[0]}
    assert first[(AGENT.lower(), NATIVE)].model_dump(include={"before", "after", "change"}) == {
        "before": "1",
        "after": "0.75",
        "change": "-0.25",
    }
    assert first[(SHOP.lower(), NATIVE)].change == "0.25"
    second = {(r.address.lower(), r.token): r for r in table[1]}
    assert (second[(AGENT.lower(), TOKEN)].before, second[(AGENT.lower(), TOKEN)].after) == ("10", "6.500001")
    assert second[(ROUTER.lower(), TOKEN)].change == "0"  # passed through: involved, unchanged
    assert (second[(SHOP.lower(), TOKEN)].before, second[(SHOP.lower(), TOKEN)].change) == (None, "3.5")
    assert all(r.decimals == 6 for r in table[1])
    assert (ZERO, TOKEN) not in second


def test_a_later_steps_before_is_the_earlier_steps_after() -> None:
    pay: CallResult = {"status": "0x1", "logs": [_log(NATIVE_TRANSFER_ADDRESS, AGENT, SHOP, 10**17)]}
    table = balance_table([pay, pay], {(AGENT.lower(), NATIVE): 10**18, (SHOP.lower(), NATIVE): 0}, {NATIVE: 18})
    agent = [next(r for r in rows if r.address.lower() == AGENT.lower()) for rows in table]
    assert [(r.before, r.after) for r in agent] == [("1", "0.9"), ("0.9", "0.8")]
    assert signed_amount(-1, 18) == "-0.000000000000000001"


def test_a_later_step_is_judged_against_the_window_with_the_earlier_steps_spend_added() -> None:
    step = _step("s-1", value="0.4", gas_limit=21_000)
    quote = FeeQuote(gas_limit=21_000, fee_per_gas=10**9)
    judged = judge.Judgement(quote=quote, asset_spend=MappingProxyType({TOKEN: 7}))
    spend = step_spend(step, judged)
    assert spend == {NATIVE: 4 * 10**17 + 21_000 * 10**9, TOKEN: 7}
    window = {NATIVE: 10**18}
    later = with_earlier(lambda asset: window.get(asset, 0), spend)
    assert later(NATIVE) == 10**18 + 4 * 10**17 + 21_000 * 10**9
    assert later(TOKEN) == 7 and later("other") == 0
    # Refused before the fee stage priced it: its value alone still counts for the steps after it.
    assert step_spend(step, judge.Judgement()) == {NATIVE: 4 * 10**17}


def test_a_step_naming_no_gas_is_priced_at_the_gas_it_used_in_the_bundle_with_headroom() -> None:
    assert priced(_step("s-1"), {"gasUsed": hex(50_000)}).gas_limit == 60_000
    assert priced(_step("s-1"), {"gasUsed": "0x0"}).gas_limit == 21_000
    assert priced(_step("s-1", gas_limit=90_000), {"gasUsed": hex(50_000)}).gas_limit == 90_000


class _Answering:
    """A node that answers eth_simulateV1 with ``calls``: a malformed answer is what is tested, and
    Anvil never gives one."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls

    async def call(self, method: str, *params: Any) -> list[dict[str, Any]]:
        assert method == "eth_simulateV1"
        return [{"calls": self.calls}]


@pytest.mark.parametrize("gas", [None, "", "0xzz", 21000], ids=repr)
def test_a_trace_without_a_readable_gas_used_is_unreadable_not_free(gas: str | int | None) -> None:
    # A later step is priced at the gas it used; a missing figure must not price it at nothing.
    good: dict[str, Any] = {"status": "0x1", "gasUsed": hex(21_000), "logs": []}
    bad: dict[str, Any] = (
        {"status": "0x1", "logs": []} if gas is None else {"status": "0x1", "gasUsed": gas, "logs": []}
    )
    steps = [_step("s-1"), _step("s-2")]
    assert asyncio.run(trace(steps, AGENT, _Answering([good, good]), 7)) == [good, good]
    with pytest.raises(TraceUnreadable, match="no gasUsed for step 2"):
        asyncio.run(trace(steps, AGENT, _Answering([good, bad]), 7))


def test_a_request_signature_is_no_intent_signature_and_steps_carry_none() -> None:
    key = Ed25519PrivateKey.generate()
    policy = AgentPolicy(agent_id="agent-1", version=1, agent_public_key=public_key_hex(key), issued_at=NOW)
    request = sign_simulation_request(
        SimulationRequest(request_id="r-1", agent_id="agent-1", chain="anvil", steps=(_step("s-1", "0.1"),)), key
    )
    # The request's signature, put on its step, does not make the step a signed intent.
    step = request.steps[0].model_copy(update={"signature": request.signature})
    assert not intent_signature_valid(step, policy)
    with pytest.raises(ValidationError, match="carries a signature"):
        SimulationRequest(request_id="r-2", agent_id="agent-1", chain="anvil", steps=(step,))


@pytest.mark.parametrize(
    ("steps", "why"),
    [
        ((), "at least 1"),
        (tuple(_step(f"s-{i}") for i in range(MAX_BUNDLE_STEPS + 1)), f"at most {MAX_BUNDLE_STEPS}"),
        ((_step("s-1"), _step("s-1")), "repeats an intent_id"),
        ((_step("s-1", agent_id="agent-2"),), "agent 'agent-2'"),
        ((_step("s-1", chain="sepolia"),), "one block of one chain"),
    ],
)
def test_a_request_is_refused_with_what_is_wrong(
    steps: tuple[TransactionIntent, ...],
    why: str,
) -> None:
    with pytest.raises(ValidationError, match=why):
        SimulationRequest(request_id="r-1", agent_id="agent-1", chain="anvil", steps=steps)
