"""Tests for the rolling 24 h spend window (rules/window.py): sliding edges to the
microsecond, idempotent reservations, release, prune and the exact JSON form."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.window import WINDOW_SECONDS, SpendWindow, in_window, window_start_us

US = 1_000_000
DAY_US = 86_400 * US
NOW = 1_795_000_000 * US  # a fixed instant, in µs since the epoch


def test_the_window_is_24_hours() -> None:
    assert WINDOW_SECONDS == 86_400


def test_a_spend_exactly_24_hours_old_has_left_the_window() -> None:
    window = SpendWindow({"old": (NOW - DAY_US, 5)})
    assert window.spent(NOW) == 0


def test_a_spend_one_microsecond_younger_than_24_hours_still_counts() -> None:
    # 86,399.999999 s old.
    window = SpendWindow({"recent": (NOW - DAY_US + 1, 5)})
    assert window.spent(NOW) == 5


def test_a_reservation_slides_out_exactly_24_hours_later() -> None:
    window = SpendWindow()
    window.reserve("i-1", NOW, 7)
    assert window.spent(NOW) == 7
    assert window.spent(NOW + DAY_US - 1) == 7
    assert window.spent(NOW + DAY_US) == 0


def test_spent_sums_only_what_is_inside_the_window() -> None:
    window = SpendWindow()
    window.reserve("a", NOW - DAY_US + 1, 1)
    window.reserve("b", NOW - 3600 * US, 10)
    window.reserve("c", NOW, 100)
    assert window.spent(NOW) == 111
    assert window.spent(NOW + 1) == 110
    # A reservation made after the moment asked about does not count yet.
    assert window.spent(NOW - 1) == 11


def test_reserve_is_idempotent_by_intent_id() -> None:
    window = SpendWindow()
    window.reserve("i-1", NOW, 5 * 10**17)
    window.reserve("i-1", NOW + 10 * US, 9 * 10**18)
    window.reserve("i-1", NOW + 20 * US, 5 * 10**17)
    assert window.entries == {"i-1": (NOW, 5 * 10**17)}
    assert window.spent(NOW + 30 * US) == 5 * 10**17


def test_release_removes_the_reservation_once() -> None:
    window = SpendWindow()
    window.reserve("i-1", NOW, 5)
    window.reserve("i-2", NOW, 7)
    assert "i-1" in window.entries
    assert window.release("i-1") is True
    assert "i-1" not in window.entries
    assert window.spent(NOW) == 7
    assert window.release("i-1") is False
    assert window.release("never") is False
    assert window.spent(NOW) == 7


def test_a_released_intent_can_be_reserved_again() -> None:
    window = SpendWindow()
    window.reserve("i-1", NOW, 5)
    window.release("i-1")
    window.reserve("i-1", NOW + US, 6)
    assert window.entries == {"i-1": (NOW + US, 6)}


def test_prune_drops_only_entries_that_can_never_count_again() -> None:
    window = SpendWindow(
        {"gone": (NOW - DAY_US, 1), "older": (NOW - 2 * DAY_US, 2), "kept": (NOW - DAY_US + 1, 4), "fresh": (NOW, 8)}
    )
    window.prune(NOW)
    assert set(window.entries) == {"kept", "fresh"}
    assert window.spent(NOW) == 12


def test_reserve_prunes_as_it_goes() -> None:
    window = SpendWindow({"gone": (NOW - DAY_US, 1)})
    window.reserve("new", NOW, 2)
    assert set(window.entries) == {"new"}


def test_values_beyond_2_to_the_64_stay_exact() -> None:
    window = SpendWindow()
    window.reserve("big", NOW, 2**64 + 1)
    window.reserve("huge", NOW + 1, 2**256 - 1)
    window.reserve("one", NOW + 2, 1)
    assert window.spent(NOW + 2) == 2**64 + 1 + 2**256 - 1 + 1


def test_in_window_is_the_rule_spent_applies() -> None:
    assert not in_window(NOW - DAY_US, NOW) and in_window(NOW - DAY_US + 1, NOW)
    assert in_window(NOW, NOW) and not in_window(NOW + 1, NOW)
    assert window_start_us(NOW) == NOW - DAY_US


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(("reserve", "release", "prune", "spent")),
            st.integers(0, 5),
            st.integers(-2 * DAY_US, 2 * DAY_US),
            st.integers(0, 2**256 - 1),
        ),
        max_size=60,
    )
)
def test_the_kept_total_always_equals_summing_every_reservation(operations: list[tuple[str, int, int, int]]) -> None:
    """`spent` keeps a running total instead of summing the day's reservations: it must say
    exactly what the sum says, whatever the order of reservations, releases, prunes and moments."""
    window = SpendWindow()
    model: dict[str, tuple[int, int]] = {}  # intent id: (at, wei), as `entries` holds them
    for op, n, offset, wei in operations:
        intent_id, at = f"i-{n}", NOW + offset
        if op == "reserve":
            model = {i: e for i, e in model.items() if e[0] > window_start_us(at)}
            model.setdefault(intent_id, (at, wei))
            window.reserve(intent_id, at, wei)
        elif op == "release":
            assert window.release(intent_id) is (model.pop(intent_id, None) is not None)
        elif op == "prune":
            model = {i: e for i, e in model.items() if e[0] > window_start_us(at)}
            window.prune(at)
        else:
            assert window.spent(at) == sum(w for a, w in model.values() if in_window(a, at))
        assert window.entries == model
