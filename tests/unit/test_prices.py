"""The USD arithmetic of rules.prices: exact integers, rounded up (against the agent), the
policy's USD amounts read without floats, and the rounds no decision may believe (from the
future, or with decimals no feed has)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.prices import (
    PRICE_MAX_DECIMALS,
    PRICE_MAX_FUTURE_S,
    Price,
    PriceRefused,
    believed,
    format_usd,
    usd_of,
)
from schemas.codes import Code
from schemas.policy import PriceFeed, parse_usd


def price(answer: int, decimals: int = 8) -> Price:
    return Price(feed="0x" + "11" * 20, round_id=1, answer=answer, decimals=decimals, updated_at=0)


def test_known_amounts() -> None:
    assert usd_of(3 * 10**16, 18, price(3000 * 10**8)) == 90_000_000  # 0.03 ETH at $3,000: $90
    assert usd_of(20 * 10**6, 6, price(10**8)) == 20_000_000  # 20 of a 6-decimal dollar token
    assert usd_of(1, 18, price(3000 * 10**8)) == 1  # one wei is not free: it rounds up to a millionth
    assert format_usd(90_000_001) == "$90.000001"


@given(
    st.lists(st.integers(min_value=0, max_value=10**30), min_size=1, max_size=20),
    st.integers(min_value=1, max_value=10**20),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=0, max_value=18),
)
def test_a_sum_of_rounded_amounts_is_never_below_what_moved(
    amounts: list[int], answer: int, asset_decimals: int, feed_decimals: int
) -> None:
    p = price(answer, feed_decimals)
    rounded = sum(usd_of(a, asset_decimals, p) for a in amounts)
    exact_numerator = sum(amounts) * answer * 10**6
    denominator = 10 ** (asset_decimals + feed_decimals)
    assert rounded * denominator >= exact_numerator  # never below
    assert (rounded - len(amounts)) * denominator < exact_numerator or rounded == 0  # by less than a millionth each


@pytest.mark.parametrize(
    ("text", "why"), [("1.0000001", "at most 6 are allowed"), ("-5", ">= 0"), ("1e3", "plain decimal")]
)
def test_usd_amounts_are_decimal_strings_of_at_most_six_decimals(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_usd(text)
    assert parse_usd("5000.25") == 5_000_250_000


FEED = PriceFeed(chain="anvil", asset="native", feed="0x" + "22" * 20)
NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def _refusal(price: Price) -> tuple[str, str]:
    with pytest.raises(PriceRefused) as refused:
        believed(price, FEED, NOW, max_age_s=3600)
    return refused.value.code, refused.value.reason


def test_a_round_from_the_future_is_refused_past_the_clock_skew_however_fresh_it_looks() -> None:
    at = int(NOW.timestamp())
    ten_years = 10 * 365 * 86_400
    code, reason = _refusal(Price(FEED.feed, 7, 3000 * 10**8, 8, at + ten_years))
    assert code == Code.PRICE_FROM_THE_FUTURE
    assert FEED.feed in reason and str(at + ten_years) in reason and f"at most {PRICE_MAX_FUTURE_S} s" in reason
    assert _refusal(Price(FEED.feed, 7, 3000 * 10**8, 8, at + PRICE_MAX_FUTURE_S + 1))[0] == Code.PRICE_FROM_THE_FUTURE
    # Within the skew the chain's clock may be ahead of the decider's: believed.
    ahead = Price(FEED.feed, 7, 3000 * 10**8, 8, at + PRICE_MAX_FUTURE_S)
    assert believed(ahead, FEED, NOW, max_age_s=3600) == ahead


@pytest.mark.parametrize("decimals", [PRICE_MAX_DECIMALS + 1, 255, -1])
def test_a_feed_with_decimals_outside_0_to_36_is_refused(decimals: int) -> None:
    code, reason = _refusal(Price(FEED.feed, 7, 3000 * 10**8, decimals, int(NOW.timestamp())))
    assert code == Code.PRICE_DECIMALS_OUT_OF_RANGE
    assert FEED.feed in reason and f"reports {decimals} decimals" in reason and f"0 to {PRICE_MAX_DECIMALS}" in reason


@pytest.mark.parametrize("decimals", [0, 8, PRICE_MAX_DECIMALS])
def test_decimals_from_0_to_36_are_believed(decimals: int) -> None:
    price = Price(FEED.feed, 7, 3000 * 10**8, decimals, int(NOW.timestamp()))
    assert believed(price, FEED, NOW, max_age_s=3600) == price
