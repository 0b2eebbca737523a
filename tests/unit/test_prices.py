"""The USD arithmetic of rules.prices: exact integers, rounded up (against the agent), and the
policy's USD amounts read without floats."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.prices import Price, format_usd, usd_of
from schemas.policy import parse_usd


def price(answer: int, decimals: int = 8) -> Price:
    return Price(feed="0x" + "11" * 20, round_id=1, answer=answer, decimals=decimals, updated_at=0)


def test_known_amounts():
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
def test_a_sum_of_rounded_amounts_is_never_below_what_moved(amounts, answer, asset_decimals, feed_decimals):
    p = price(answer, feed_decimals)
    rounded = sum(usd_of(a, asset_decimals, p) for a in amounts)
    exact_numerator = sum(amounts) * answer * 10**6
    denominator = 10 ** (asset_decimals + feed_decimals)
    assert rounded * denominator >= exact_numerator  # never below
    assert (rounded - len(amounts)) * denominator < exact_numerator or rounded == 0  # by less than a millionth each


@pytest.mark.parametrize(
    ("text", "why"), [("1.0000001", "at most 6 are allowed"), ("-5", ">= 0"), ("1e3", "plain decimal")]
)
def test_usd_amounts_are_decimal_strings_of_at_most_six_decimals(text, why):
    with pytest.raises(ValueError, match=why):
        parse_usd(text)
    assert parse_usd("5000.25") == 5_000_250_000
