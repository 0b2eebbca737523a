"""An EVM transaction in the signer's record (`AgentState.record_signed`), with what the tests of
its windows vary (when, how much, which assets, sign-only or not) and the rest fixed; and a run of
operations on a record and on its twin, which replays each committed batch (`run_with_twin`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st

from signer.agent_state import AgentState
from signer.state import SignerState
from tests.support import NOW_US

# (operation, intent number, agent, seconds on, a number the operation takes)
Operation = tuple[str, int, str, int, int]

ADDRESS = "0x00000000000000000000000000000000000000aa"


def record_signed(
    agent: AgentState,
    intent_id: str,
    *,
    now_us: int,
    wei: int,
    nonce: int = 0,
    assets: dict[str, int] | None = None,
    held: bool = False,
    record: bytes = b"{}",
) -> None:
    """Call it inside the file's `intent_scope`, as the signer does."""
    agent.record_signed(
        intent_id=intent_id,
        record=record,
        now_us=now_us,
        chain="anvil",
        address=ADDRESS,
        nonce=nonce,
        spend_wei=wei,
        counts=True,
        policy_version=1,
        idempotency_slot=None,
        assets=assets,
        held=held,
    )


def operations_of(
    names: tuple[str, ...], agents: tuple[str, ...], seconds: list[int], numbers: int
) -> st.SearchStrategy:
    """Lists of up to 50 `Operation`s: one of ``names``, on intent 0-5 of one of ``agents``, that
    many ``seconds`` on, with a number up to ``numbers``."""
    operation = st.tuples(
        st.sampled_from(names),
        st.integers(0, 5),
        st.sampled_from(agents),
        st.sampled_from(seconds),
        st.integers(0, numbers),
    )
    return st.lists(operation, max_size=50)


def run_with_twin(
    folder: Path,
    operations: list[Operation],
    apply: Callable[[SignerState, Operation, int], None],
    check: Callable[[SignerState, Operation, int], None],
    start: Callable[[SignerState], None] = lambda state: None,
) -> None:
    """Each operation on a record at a clock moved on by its seconds, ``apply`` doing it, but for
    "commit" (the batch committed, and replayed on ``twin``, which restores the same partition
    from its changelog; then ``twin`` checked) and "check" (the record checked); both checked at
    the end. ``start``: what each does first."""
    state, twin = SignerState(folder / "a.db", fsync=False), SignerState(folder / "b.db", fsync=False)
    start(state)
    start(twin)
    clock = NOW_US
    for operation in operations:
        clock += operation[3] * 1_000_000
        if operation[0] == "commit":
            writes = state.writes
            state.commit()
            twin.replay(writes)
            twin.commit()
            check(twin, operation, clock)
        elif operation[0] == "check":
            check(state, operation, clock)
        else:
            apply(state, operation, clock)
    check(state, ("check", 0, "", 0, 0), clock)
    check(twin, ("check", 0, "", 0, 0), clock)
    state.close()
    twin.close()
