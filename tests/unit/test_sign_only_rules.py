"""EVM sign-only spend as rules (rules/window.py, rules/sign_only.py): a held reservation counts
whatever its age until it lands, then from its landing; the outstanding bound; the TTL; a nonce's
fate at the final block; a cancellation's fees."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rules import movements, sign_only, stage_table
from rules.sign_only import Fate, cancel_fees, check_outstanding, fate, ttl_expired
from rules.window import SpendWindow, counts_at
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from schemas.stages import Stage

US = 1_000_000
DAY_US = 86_400 * US
NOW = 1_795_000_000 * US
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
ETH = 10**18
FREE = FeeQuote(gas_limit=21_000, fee_per_gas=0)


def intent(**fields: Any) -> TransactionIntent:
    return TransactionIntent(
        **{"intent_id": "i-1", "agent_id": "agent-1", "chain": "anvil", "to": DEST, "value": "0.5", "created_at": T0}
        | fields
    )


def policy(**fields: Any) -> AgentPolicy:
    return AgentPolicy(
        **{"agent_id": "agent-1", "version": 1, "agent_public_key": "0x" + "11" * 32, "issued_at": T0} | fields
    )


def test_a_held_reservation_counts_whatever_its_age_and_an_ordinary_one_leaves_after_24_hours() -> None:
    assert counts_at(NOW - 30 * DAY_US, NOW, held=True)
    assert not counts_at(NOW - DAY_US, NOW, held=False)
    assert not counts_at(NOW + 1, NOW, held=True)  # not before it was signed
    window = SpendWindow({"held": (NOW, 5), "plain": (NOW, 7)}, held=frozenset({"held"}))
    assert window.spent(NOW) == 12 and window.outstanding(NOW) == 5
    assert window.spent(NOW + 3 * DAY_US) == 5 and window.outstanding(NOW + 3 * DAY_US) == 5
    window.prune(NOW + 3 * DAY_US)
    assert window.get("held") == (NOW, 5) and window.get("plain") is None


def test_a_landed_reservation_counts_from_its_landing_and_leaves_24_hours_later() -> None:
    window = SpendWindow()
    window.reserve("i-1", NOW, 5, held=True)
    landed = NOW + 2 * DAY_US
    window.release("i-1")  # its nonce taken: what the chain took, reserved at its landing
    window.reserve("i-1", landed, 4)
    assert window.outstanding(landed) == 0
    assert window.spent(landed) == 4 and window.spent(landed + DAY_US - 1) == 4
    assert window.spent(landed + DAY_US) == 0


def test_put_keeps_a_held_reservation_held_and_release_drops_it() -> None:
    window = SpendWindow()
    window.reserve("i-1", NOW, 5, held=True)
    window.put("i-1", NOW, 9)
    assert window.outstanding(NOW + 5 * DAY_US) == 9
    assert window.release("i-1") and window.spent(NOW) == 0 and not window.release("i-1")
    window.reserve("i-2", NOW, 3)
    window.reserve("i-2", NOW, 3, held=True)  # already reserved: a redelivery changes nothing
    assert window.spent(NOW + 2 * DAY_US) == 0


def test_the_outstanding_bound_refuses_only_a_sign_only_intent_that_would_pass_it() -> None:
    bounded = policy(max_sign_only_outstanding=ETH)
    assert check_outstanding(intent(value="0.5"), bounded, ETH // 2, FREE) is None  # exactly at the bound
    refused = check_outstanding(intent(value="0.5"), bounded, ETH // 2 + 1, FREE)
    assert refused is not None
    assert (refused.stage, refused.passed, refused.code) == (
        Stage.DAILY_LIMIT,
        False,
        Code.SIGN_ONLY_OUTSTANDING_EXCEEDED,
    )
    assert refused.facts["outstanding_wei"] == str(ETH // 2 + 1) and refused.facts["bound_wei"] == str(ETH)
    assert check_outstanding(intent(value="0.5", broadcast=True), bounded, 10 * ETH, FREE) is None
    assert check_outstanding(intent(value="0.5"), policy(), 10 * ETH, FREE) is None


def test_the_judge_counts_the_outstanding_bound_after_the_rolling_limit() -> None:
    bounded = policy(tx_daily_limit_eth="10", max_sign_only_outstanding=ETH)
    spent = {movements.NATIVE: 0, sign_only.OUTSTANDING: ETH}

    def judged(pol: AgentPolicy, spent: dict[str, int]) -> StageVerdict:
        return stage_table.daily_limit(intent(value="0.5"), pol, lambda asset: spent.get(asset, 0), FREE)

    assert judged(bounded, spent).code == Code.SIGN_ONLY_OUTSTANDING_EXCEEDED
    assert judged(bounded, {movements.NATIVE: 10 * ETH, sign_only.OUTSTANDING: ETH}).code == Code.DAILY_LIMIT_EXCEEDED
    assert judged(policy(tx_daily_limit_eth="10"), spent).code == Code.WITHIN_DAILY_LIMIT


def test_the_ttl_passes_at_its_second_and_never_without_one() -> None:
    assert not ttl_expired(NOW, 3600, NOW + 3600 * US - 1)
    assert ttl_expired(NOW, 3600, NOW + 3600 * US)
    assert not ttl_expired(NOW, None, NOW + 365 * DAY_US)


def test_a_nonce_is_decided_only_at_the_final_block() -> None:
    assert fate(5, 5, None, None, 100) == Fate.OPEN  # not taken
    assert fate(5, 6, 99, None, 100) == Fate.LANDED
    assert fate(5, 6, None, 100, 100) == Fate.CANCELLED
    assert fate(5, 6, None, None, 100) == Fate.TAKEN
    assert fate(5, 6, 101, None, 100) == Fate.OPEN  # a receipt above the final block: asked again


def test_a_cancellation_pays_at_least_ten_percent_more_on_both_fees_and_the_market() -> None:
    assert cancel_fees(100, 10, 0) == (110, 11)
    assert cancel_fees(101, 9, 0) == (112, 10)  # rounded up
    assert cancel_fees(0, 0, 0) == (1, 1)  # at least one wei more
    assert cancel_fees(100, None, 500) == (500, None)
    assert cancel_fees(100, 200, 0) == (220, 220)  # the tip never above the fee cap


OPS = st.lists(
    st.tuples(
        st.sampled_from(("reserve", "hold_reserve", "release", "put", "hold", "land")),
        st.integers(0, 5),  # which intent
        st.integers(-2 * DAY_US, 2 * DAY_US),  # when, around NOW
        st.integers(0, 10**20),  # wei
    ),
    max_size=40,
)


@given(OPS, st.integers(-3 * DAY_US, 3 * DAY_US))
@settings(max_examples=300, deadline=None)
def test_the_kept_totals_always_equal_counting_every_reservation(
    ops: list[tuple[str, int, int, int]], asked: int
) -> None:
    window = SpendWindow()
    for op, n, at, wei in ops:
        intent_id = f"i-{n}"
        if op in ("reserve", "hold_reserve"):
            window.reserve(intent_id, NOW + at, wei, held=op == "hold_reserve")
        elif op == "release":
            window.release(intent_id)
        elif op == "put" and window.get(intent_id) is not None:
            window.put(intent_id, NOW + at, wei)
        elif op == "hold":
            window.hold(intent_id)
        elif op == "land":
            window.land(intent_id)
    now = NOW + asked
    counted = [
        (w, i in window.held) for i, (a, w) in window.reservations.items() if counts_at(a, now, i in window.held)
    ]
    assert window.spent(now) == sum(w for w, _ in counted)
    assert window.outstanding(now) == sum(w for w, held in counted if held)


def test_a_sign_only_transaction_is_looked_at_often_while_young_then_less() -> None:
    assert sign_only.look_every_us(0) == 2 * US
    assert sign_only.look_every_us(600 * US - 1) == 2 * US
    assert sign_only.look_every_us(600 * US) == 30 * US
