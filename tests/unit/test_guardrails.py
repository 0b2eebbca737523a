"""Tests for the guardrails in rules/guardrails.py, each at its edges.

Processors are pure: an intent, a policy, its fee quote, the spend already counted, and out
comes a StageVerdict. No broker, no node, no clock. ``FREE`` is a quote that costs nothing
per gas, so the value-only edges stay exact; fees have their own section.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from eth_abi import encode as abi_encode

from rules.fees import check_fee
from rules.guardrails import check_allowlist, check_chain, check_daily_limit, check_value_cap
from rules.judge import check_freshness
from rules.simulation import decode_revert, simulation_skipped
from rules.verdicts import simulation_required
from schemas.codes import Code
from schemas.fields import MAX_UINT256, format_native_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
THIRD = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"
ETH = 10**18
GWEI = 10**9
FREE = FeeQuote(gas_limit=21_000, fee_per_gas=0)


def intent(**fields: Any) -> TransactionIntent:
    return TransactionIntent(
        **{
            "intent_id": "i-1",
            "agent_id": "agent-1",
            "chain": "anvil",
            "to": DEST,
            "value": "0.5",
            "created_at": T0,
            **fields,
        }
    )


def policy(**fields: Any) -> AgentPolicy:
    return AgentPolicy(
        **{"agent_id": "agent-1", "version": 1, "agent_public_key": "0x" + "11" * 32, "issued_at": T0, **fields}
    )


def assert_verdict(verdict: StageVerdict, stage: Stage, passed: bool, code: Code) -> None:
    assert (verdict.intent_id, verdict.stage, verdict.passed, verdict.code) == ("i-1", stage, passed, code)


# --- chain restriction ---------------------------------------------------------------------------


def test_empty_allowed_chains_allows_any_chain() -> None:
    for chain in ("anvil", "ethereum", "base", "sepolia"):
        verdict = check_chain(intent(chain=chain), policy())
        assert_verdict(verdict, Stage.CHAIN, True, Code.CHAIN_ALLOWED)
        assert verdict.facts == {"chain": chain}


def test_listed_chain_is_allowed() -> None:
    assert_verdict(
        check_chain(intent(chain="base"), policy(tx_allowed_chains=("ethereum", "base"))),
        Stage.CHAIN,
        True,
        Code.CHAIN_ALLOWED,
    )


def test_unlisted_chain_is_rejected_naming_the_chain_and_the_allowed_ones() -> None:
    verdict = check_chain(intent(chain="anvil"), policy(tx_allowed_chains=("ethereum", "base")))
    assert_verdict(verdict, Stage.CHAIN, False, Code.CHAIN_NOT_ALLOWED)
    assert verdict.reason == "chain 'anvil' is not in this agent's allowed chains (ethereum, base)"
    assert verdict.facts == {"chain": "anvil", "allowed": ["ethereum", "base"]}


# --- address allowlist ---------------------------------------------------------------------------


def test_empty_allowlist_allows_any_address() -> None:
    for to in (DEST, OTHER, THIRD):
        verdict = check_allowlist(intent(to=to), policy())
        assert_verdict(verdict, Stage.ALLOWLIST, True, Code.RECIPIENT_ALLOWED)
        assert verdict.facts == {"to": to}


@pytest.mark.parametrize(
    "listed, sent",
    [
        (DEST, DEST),
        (DEST.lower(), DEST),
        (DEST, DEST.lower()),
        (DEST.lower(), "0x" + DEST[2:].upper()),
        ("0x" + DEST[2:].upper(), DEST.lower()),
    ],
)
def test_allowlist_matches_whatever_case_either_side_was_written_in(listed: str, sent: str) -> None:
    verdict = check_allowlist(intent(to=sent), policy(tx_to_allowlist=(OTHER, listed)))
    assert_verdict(verdict, Stage.ALLOWLIST, True, Code.RECIPIENT_ALLOWED)
    assert verdict.facts == {"to": DEST}


def test_recipient_off_the_allowlist_is_rejected() -> None:
    verdict = check_allowlist(intent(to=THIRD.lower()), policy(tx_to_allowlist=(DEST, OTHER)))
    assert_verdict(verdict, Stage.ALLOWLIST, False, Code.RECIPIENT_NOT_ALLOWLISTED)
    assert THIRD in verdict.reason and "(2 addresses)" in verdict.reason
    assert verdict.facts == {"to": THIRD}


# --- per-transaction value cap -------------------------------------------------------------------


def test_value_exactly_at_the_cap_passes() -> None:
    verdict = check_value_cap(intent(value="1.5"), policy(tx_max_value_eth="1.5"), FREE)
    assert_verdict(verdict, Stage.VALUE_CAP, True, Code.VALUE_WITHIN_CAP)
    assert verdict.facts["spend_wei"] == verdict.facts["cap_wei"] == str(15 * ETH // 10)


def test_value_one_wei_over_the_cap_fails() -> None:
    verdict = check_value_cap(intent(value="1.500000000000000001"), policy(tx_max_value_eth="1.5"), FREE)
    assert_verdict(verdict, Stage.VALUE_CAP, False, Code.VALUE_OVER_CAP)
    assert verdict.reason == (
        "spend 1.500000000000000001 (value 1.500000000000000001 + worst-case fee 0 "
        "(gas 21000 x 0 wei)) exceeds the per-transaction cap of 1.5"
    )
    assert (verdict.facts["value_wei"], verdict.facts["cap_wei"]) == ("1500000000000000001", "1500000000000000000")


def test_zero_cap_allows_only_zero() -> None:
    assert check_value_cap(intent(value="0"), policy(tx_max_value_eth="0"), FREE).passed
    failed = check_value_cap(intent(value="0.000000000000000001"), policy(tx_max_value_eth="0"), FREE)
    assert_verdict(failed, Stage.VALUE_CAP, False, Code.VALUE_OVER_CAP)


def test_null_cap_passes_anything() -> None:
    huge = format_native_amount(MAX_UINT256)
    verdict = check_value_cap(intent(value=huge), policy(tx_max_value_eth=None), FREE)
    assert_verdict(verdict, Stage.VALUE_CAP, True, Code.VALUE_WITHIN_CAP)
    assert (verdict.facts["value_wei"], verdict.facts["cap_wei"]) == (str(MAX_UINT256), None)


# --- rolling 24 h limit --------------------------------------------------------------------------


def test_spent_plus_value_exactly_at_the_limit_passes() -> None:
    verdict = check_daily_limit(intent(value="0.6"), policy(tx_daily_limit_eth="1"), 4 * ETH // 10, FREE)
    assert_verdict(verdict, Stage.DAILY_LIMIT, True, Code.WITHIN_DAILY_LIMIT)
    assert {k: verdict.facts[k] for k in ("spend_wei", "spent_wei", "limit_wei")} == {
        "spend_wei": str(6 * ETH // 10),
        "spent_wei": str(4 * ETH // 10),
        "limit_wei": str(ETH),
    }


def test_spent_plus_value_one_wei_over_the_limit_fails() -> None:
    verdict = check_daily_limit(intent(value="0.6"), policy(tx_daily_limit_eth="1"), 4 * ETH // 10 + 1, FREE)
    assert_verdict(verdict, Stage.DAILY_LIMIT, False, Code.DAILY_LIMIT_EXCEEDED)
    assert verdict.reason == (
        "0.400000000000000001 already spent in the last 24 h; 0.6 more (value 0.6 + "
        "worst-case fee 0 (gas 21000 x 0 wei)) would exceed the rolling limit of 1"
    )
    assert {k: verdict.facts[k] for k in ("value_wei", "spent_wei", "limit_wei")} == {
        "value_wei": str(6 * ETH // 10),
        "spent_wei": "400000000000000001",
        "limit_wei": str(ETH),
    }


def test_a_single_value_over_the_limit_fails_with_nothing_spent() -> None:
    verdict = check_daily_limit(intent(value="2"), policy(tx_daily_limit_eth="1"), 0, FREE)
    assert_verdict(verdict, Stage.DAILY_LIMIT, False, Code.DAILY_LIMIT_EXCEEDED)
    assert verdict.reason.startswith("0 already spent")


def test_null_daily_limit_passes_anything() -> None:
    verdict = check_daily_limit(intent(value="1000000"), policy(tx_daily_limit_eth=None), MAX_UINT256, FREE)
    assert_verdict(verdict, Stage.DAILY_LIMIT, True, Code.WITHIN_DAILY_LIMIT)
    assert verdict.facts["limit_wei"] is None


# --- fees: spend is value + worst-case fee ------------------------------------------------------


def test_the_worst_case_fee_counts_against_the_cap_to_the_wei() -> None:
    quote = FeeQuote(gas_limit=21_000, fee_per_gas=10 * GWEI, priority_fee_per_gas=GWEI)
    fee = 21_000 * 10 * GWEI
    at_cap = check_value_cap(intent(value="0.5"), policy(tx_max_value_eth=format_native_amount(ETH // 2 + fee)), quote)
    assert at_cap.passed and at_cap.facts["spend_wei"] == str(ETH // 2 + fee)
    over = check_value_cap(
        intent(value="0.5"), policy(tx_max_value_eth=format_native_amount(ETH // 2 + fee - 1)), quote
    )
    assert_verdict(over, Stage.VALUE_CAP, False, Code.VALUE_OVER_CAP)
    assert "value 0.5 + worst-case fee 0.00021 (gas 21000 x 10000000000 wei)" in over.reason


def test_a_zero_value_intent_with_a_huge_fee_is_over_the_cap_and_the_limit() -> None:
    """The fee drain: value 0, fees of 1e15 wei per gas. Without fees in the spend both passed."""
    drain = FeeQuote(gas_limit=21_000, fee_per_gas=10**15, priority_fee_per_gas=10**15)
    rules = policy(tx_max_value_eth="0.1", tx_daily_limit_eth="0.1")
    assert not check_value_cap(intent(value="0"), rules, drain).passed
    assert not check_daily_limit(intent(value="0"), rules, 0, drain).passed
    assert check_value_cap(intent(value="0"), rules, FREE).passed


def test_the_fee_ceiling_is_inclusive_and_names_fee_and_limit() -> None:
    at = FeeQuote(gas_limit=21_000, fee_per_gas=100 * GWEI, priority_fee_per_gas=GWEI)
    assert_verdict(
        check_fee(intent(), policy(tx_max_fee_per_gas=100 * GWEI), at), Stage.FEE, True, Code.FEE_WITHIN_CEILING
    )
    over = FeeQuote(gas_limit=21_000, fee_per_gas=100 * GWEI + 1, priority_fee_per_gas=GWEI, base_fee_per_gas=50 * GWEI)
    verdict = check_fee(intent(), policy(tx_max_fee_per_gas=100 * GWEI), over)
    assert_verdict(verdict, Stage.FEE, False, Code.FEE_OVER_CEILING)
    assert "the node's suggested fee of 100000000001 wei per gas (base fee now 50000000000 wei)" in verdict.reason
    assert "ceiling of 100000000000 wei per gas" in verdict.reason
    assert verdict.facts["ceiling_wei"] == str(100 * GWEI) and verdict.facts["fee_per_gas_wei"] == str(100 * GWEI + 1)
    named = check_fee(
        intent(max_fee_per_gas=10**30, max_priority_fee_per_gas=1),
        policy(tx_max_fee_per_gas=1),
        FeeQuote(gas_limit=21_000, fee_per_gas=10**30, priority_fee_per_gas=1),
    )
    assert not named.passed and named.reason.startswith("the intent's fee of")


def test_no_ceiling_allows_any_fee_but_the_spend_limits_still_count_it() -> None:
    quote = FeeQuote(gas_limit=21_000, fee_per_gas=10**30)
    assert check_fee(intent(), policy(), quote).passed
    assert not check_daily_limit(intent(value="0"), policy(tx_daily_limit_eth="1000000"), 0, quote).passed


def test_a_fee_quote_is_told_in_its_verdict_facts_and_travels_typed() -> None:
    quote = FeeQuote(gas_limit=50_000, fee_per_gas=7 * GWEI, priority_fee_per_gas=GWEI, base_fee_per_gas=3 * GWEI)
    verdict = check_fee(intent(), policy(), quote)
    assert verdict.facts["fee_per_gas_wei"] == str(7 * GWEI) and verdict.facts["gas_limit"] == 50_000
    assert verdict.facts["max_fee_wei"] == str(50_000 * 7 * GWEI)
    # Between stages (a stage envelope) the quote travels as itself, wei as decimal strings.
    assert FeeQuote.model_validate_json(quote.model_dump_json()) == quote
    assert '"fee_per_gas":"7000000000"' in quote.model_dump_json()
    assert quote.fees(2) == {"max_fee_per_gas": 7 * GWEI, "max_priority_fee_per_gas": GWEI}
    assert quote.fees(0) == {"gas_price": 7 * GWEI}


# --- freshness -----------------------------------------------------------------------------------

TEN_MINUTES_US = 600 * 1_000_000


def test_an_intent_is_fresh_until_its_window_closes() -> None:
    assert check_freshness(intent(), T0 + timedelta(minutes=10) - timedelta(microseconds=1), TEN_MINUTES_US).passed
    expired = check_freshness(intent(), T0 + timedelta(minutes=10), TEN_MINUTES_US)
    assert_verdict(expired, Stage.INTAKE, False, Code.INTENT_EXPIRED)
    assert "older than the 600 s" in expired.reason


def test_an_intent_from_2001_expires_and_one_from_2100_is_from_the_future() -> None:
    now = T0
    old = check_freshness(intent(created_at=datetime(2001, 1, 1, tzinfo=timezone.utc)), now, TEN_MINUTES_US)
    assert old.code == Code.INTENT_EXPIRED
    future = check_freshness(intent(created_at=datetime(2100, 1, 1, tzinfo=timezone.utc)), now, TEN_MINUTES_US)
    assert future.code == Code.INTENT_FROM_THE_FUTURE and "check the agent's clock" in future.reason


def test_clock_skew_of_two_minutes_is_tolerated_and_not_a_microsecond_more() -> None:
    ahead = T0 + timedelta(minutes=2)
    assert check_freshness(intent(created_at=ahead), T0, TEN_MINUTES_US).passed
    assert (
        check_freshness(intent(created_at=ahead + timedelta(microseconds=1)), T0, TEN_MINUTES_US).code
        == Code.INTENT_FROM_THE_FUTURE
    )


def test_expires_at_can_only_shorten_the_window() -> None:
    soon = intent(expires_at=T0 + timedelta(seconds=30))
    assert check_freshness(soon, T0 + timedelta(seconds=29), TEN_MINUTES_US).passed
    assert check_freshness(soon, T0 + timedelta(seconds=30), TEN_MINUTES_US).code == Code.INTENT_EXPIRED
    late = intent(expires_at=T0 + timedelta(days=365))
    assert check_freshness(late, T0 + timedelta(minutes=11), TEN_MINUTES_US).code == Code.INTENT_EXPIRED


# --- simulation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "simulate_first, require_simulation, required",
    [
        (False, False, False),
        (True, False, True),
        (False, True, True),
        (True, True, True),
    ],
)
def test_simulation_required_when_the_intent_or_the_policy_asks(
    simulate_first: bool, require_simulation: bool, required: bool
) -> None:
    assert (
        simulation_required(intent(simulate_first=simulate_first), policy(require_simulation=require_simulation))
        is required
    )


def test_skipped_simulation_passes_with_its_own_code() -> None:
    verdict = simulation_skipped(intent())
    assert_verdict(verdict, Stage.SIMULATION, True, Code.SIMULATION_NOT_REQUIRED)


def _revert(selector: str, types: list[str], values: list[Any]) -> str:
    return "0x" + selector + abi_encode(types, values).hex()


def test_decode_revert_reads_error_string() -> None:
    assert (
        decode_revert(_revert("08c379a0", ["string"], ["ERC20: transfer amount exceeds balance"]))
        == "ERC20: transfer amount exceeds balance"
    )


@pytest.mark.parametrize(
    "code, text", [(0x11, "panic 0x11"), (0x01, "panic 0x01"), (0x32, "panic 0x32"), (0x100, "panic 0x100")]
)
def test_decode_revert_reads_panic_codes(code: int, text: str) -> None:
    assert decode_revert(_revert("4e487b71", ["uint256"], [code])) == text


def test_decode_revert_shows_a_custom_error_by_its_selector_and_first_word() -> None:
    data = _revert("deadbeef", ["uint256", "address"], [42, OTHER])
    assert decode_revert(data) == f"custom error {data[:74]}"
    assert decode_revert("0xdeadbeef") == "custom error 0xdeadbeef"


def test_decode_revert_falls_back_to_bytes_for_a_malformed_known_selector() -> None:
    truncated = "0x08c379a0" + "00" * 8
    assert decode_revert(truncated) == f"custom error {truncated}"


@pytest.mark.parametrize("nothing", [None, "", "0x", "0x1234", "08c379a0" + "00" * 32, 42, b"\x08\xc3\x79\xa0"])
def test_decode_revert_without_a_selector_says_so(nothing: str | bytes | int | None) -> None:
    assert decode_revert(nothing) == "reverted without a reason"


@pytest.mark.parametrize("garbage", ["0xnot-hex-at-all", "0x08c379a0f", "0xdeadbeefZZ", "0x" + "g" * 70])
def test_decode_revert_never_raises_on_garbage(garbage: str) -> None:
    # A node's malformed revert data must end up in the verdict, not crash the simulation stage.
    reason = decode_revert(garbage)
    assert isinstance(reason, str) and garbage[:10] in reason
