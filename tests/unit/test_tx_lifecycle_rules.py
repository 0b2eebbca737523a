"""A broadcast transaction's lifecycle as rules: a final status is never left, each status names its
next step, and bumped fees are at least an eighth more and never over the ceiling."""

from __future__ import annotations

import pytest

from runtime.clock import US_PER_SECOND
from schemas.outcomes import FINAL_TX_STATUSES
from signer import lifecycle

S = US_PER_SECOND


MOVES = ("broadcast", "stuck", "mined", "failed", "replaced", "dropped")


def test_a_final_record_is_never_left() -> None:
    for status in FINAL_TX_STATUSES - {"sign_only"}:
        for new in MOVES:
            with pytest.raises(lifecycle.IllegalTransition):
                lifecycle.check_transition(status, new, final=True)
    for current in lifecycle.OPEN:
        for new in MOVES:
            lifecycle.check_transition(current, new)
    with pytest.raises(lifecycle.IllegalTransition):
        lifecycle.check_transition("broadcast", "signed")
    with pytest.raises(lifecycle.IllegalTransition):
        lifecycle.check_transition("sign_only", "broadcast")


def test_a_sign_only_record_moves_only_to_what_the_chains_final_block_holds() -> None:
    # Its bytes can land after it was recorded final (sign-only: the agent broadcasts them).
    for new in ("mined", "failed", "dropped", "cancelled"):
        lifecycle.check_transition("sign_only", new, final=True)
        lifecycle.check_transition("cancelled", new, final=False)
    for new in ("broadcast", "stuck", "replaced", "signed"):
        for current in ("sign_only", "cancelled"):
            with pytest.raises(lifecycle.IllegalTransition):
                lifecycle.check_transition(current, new)
    with pytest.raises(lifecycle.IllegalTransition):
        lifecycle.check_transition("cancelled", "mined", final=True)


def test_a_decided_record_not_final_yet_can_be_reorged_or_decided_again_but_not_stuck() -> None:
    for status in lifecycle.DECIDED:
        for new in ("broadcast", "mined", "failed", "replaced", "dropped"):
            lifecycle.check_transition(status, new)
        with pytest.raises(lifecycle.IllegalTransition):
            lifecycle.check_transition(status, "stuck")


def test_next_step() -> None:
    step = lifecycle.next_step
    # The nonce passed: replaced or dropped once it has stayed passed a while (a receipt can lag
    # the nonce), even before the replacement delay.
    # Each Wait says until when nothing but a block can change it.
    assert step(5, 6, 0, 1 * S, 0, 10 * S, 3) == lifecycle.Wait(4 * S)
    assert step(5, 6, 0, 4 * S, 0, 10 * S, 3, nonce_passed_at_us=2 * S) == lifecycle.Wait(5 * S)
    assert step(5, 6, 0, 5 * S, 0, 10 * S, 3, nonce_passed_at_us=2 * S) == lifecycle.NonceUsed()
    assert step(5, 5, 0, 9 * S, 0, 10 * S, 3) == lifecycle.Wait(10 * S)
    assert step(5, 4, 2 * S, 9 * S, 1, 10 * S, 3) == lifecycle.Wait(12 * S)
    assert step(5, 5, 0, 10 * S, 0, 10 * S, 3) == lifecycle.Bump()
    assert step(5, 3, 0, 10 * S, 0, 10 * S, 3) == lifecycle.Gap(range(3, 5))
    stuck = step(5, 5, 0, 10 * S, 3, 10 * S, 3)
    assert isinstance(stuck, lifecycle.Stuck) and "WARDEN_TX_MAX_BUMPS=3" in stuck.reason


def test_bumped_fees_are_at_least_an_eighth_more_and_never_over_the_ceiling() -> None:
    # Type 2: at least 12.5 % over both fees, and enough for twice the current base fee.
    assert lifecycle.bumped_fees(2, 800, 80, 100, None) == (900, 90)
    assert lifecycle.bumped_fees(2, 800, 80, 1000, None) == (2090, 90)
    assert lifecycle.bumped_fees(2, 800, 80, 1000, 1500) == (1500, 90)
    # Types 0/1: at least 12.5 % over the gas price, or the node's price if higher.
    assert lifecycle.bumped_fees(0, 800, None, 5000, None) == (5000, None)
    assert lifecycle.bumped_fees(1, 800, None, 1, None) == (900, None)
    assert lifecycle.bumped_fees(0, 1, None, 0, None) == (2, None)  # rounding never leaves it equal
    with pytest.raises(lifecycle.BumpRefused, match="at least 900 wei per gas .* ceiling of 899"):
        lifecycle.bumped_fees(2, 800, 80, 100, 899)


def test_a_final_record_is_watched_for_an_hour_one_look_per_recheck_at_most_then_no_more() -> None:
    until = 1_000 * S + lifecycle.FINAL_WATCH_US
    assert lifecycle.FINAL_WATCH_US == 3600 * S
    assert lifecycle.final_watch_wait_us(1_000 * S, until, 30 * S) == 30 * S  # woken sooner by a reorg
    assert lifecycle.final_watch_wait_us(until - 5 * S, until, 30 * S) == 5 * S  # the last look at the hour's end
    assert lifecycle.final_watch_wait_us(until, until, 30 * S) is None
    assert lifecycle.final_watch_wait_us(until + 1, until, 30 * S) is None
