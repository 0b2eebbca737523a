"""The sign-only watch's copy of the open rows (`SignerState.open_sign_only`, `signer/open_sign_only.py`)
against the table, and what one pass of the watch (`SignOnly.look_all`) touches: whatever sequence
of signings, closings, cancellations asked and signed, scope and batch rollbacks and changelog
replays, the copy and its indexes say what `sign_only_open` reads; and a pass asks each address's
count once and looks only at the rows whose nonce is taken, whose cancellation was asked (or
signed, when the address is due) or whose policy's TTL passed."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings

from rules.sign_only import LOOK_OFTEN_FOR_US
from runtime.clock import from_us
from runtime.rpc import RpcUnavailable
from schemas.emit import Emit
from signer.open_sign_only import SignOnlyRow
from signer.sign_only import SignOnly
from signer.state import SignerState
from tests.signer_record_support import Operation, operations_of, record_signed, run_with_twin
from tests.support import NOW_US

AGENTS = ("agent-a", "agent-b")
SENDERS = ("0x00000000000000000000000000000000000000aa", "0x00000000000000000000000000000000000000bb")
OPS = ("sign_only", "sign_then_fail", "land", "ask_cancel", "cancel", "commit", "rollback", "check")
US = 1_000_000


class _Failed(Exception):
    pass


def _record(sender: str, nonce: int) -> bytes:
    return orjson.dumps({"chain": "anvil", "from": sender, "nonce": nonce, "status": "sign_only"})


def _check(state: SignerState) -> None:
    """The copy kept (not read again: the caller holds the one followed) against the table."""
    kept = state.open_sign_only()
    table = {row.intent_id: row for row in state.sign_only_open()}
    assert kept.rows == table
    assert kept.cancels == {i for i, row in table.items() if row.cancel is not None or row.cancel_by is not None}
    where: dict[str, tuple[str, str, int]] = {}
    for intent_id in table:
        record = orjson.loads(state.agent(table[intent_id].agent_id).signed_record(intent_id) or b"{}")
        where[intent_id] = ("anvil", record["from"], record["nonce"])
    assert kept.where == where
    for sender in SENDERS:
        for count in range(0, 12):
            expected = {i for i, (_, s, nonce) in where.items() if s == sender and nonce < count}
            assert set(kept.taken(("anvil", sender), count)) == expected
    for agent_id in AGENTS:
        for at in sorted({row.at_us for row in table.values()}):
            expected = {i for i, row in table.items() if row.agent_id == agent_id and row.at_us <= at}
            assert set(kept.signed_by(agent_id, at)) == expected


def _apply(state: SignerState, operation: Operation, at: int) -> None:
    op, n, agent_id, _, nonce = operation
    agent, intent_id = state.agent(agent_id), f"{agent_id}/i-{n}"
    if op in ("sign_only", "sign_then_fail"):
        sender = SENDERS[n % 2]
        try:
            with state.intent_scope():
                record_signed(agent, intent_id, now_us=at, wei=1, nonce=nonce, held=True, record=_record(sender, nonce))
                if op == "sign_then_fail":
                    raise _Failed
        except _Failed:
            pass
    elif op == "land":
        agent.sign_only_landed(intent_id, at, 1, executed=True)
    elif op == "ask_cancel":
        agent.ask_cancel(intent_id, "by a test")
    elif op == "cancel":
        agent.cancel_sign_only(intent_id, b"{}")
    elif op == "rollback":
        state.rollback()
    state.open_sign_only()  # as the watch's next pass does: read again if a rollback dropped it


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Seconds on, and the nonce a signing takes.
@given(operations=operations_of(OPS, AGENTS, [0, 0, 1, 30, 700], 10))
# Asked to cancel, then its cancellation signed, then it lands: followed at each step, and replayed.
@example(
    operations=[
        ("sign_only", 1, "agent-a", 0, 3),
        ("commit", 0, "agent-a", 0, 0),
        ("ask_cancel", 1, "agent-a", 0, 0),
        ("check", 0, "agent-a", 0, 0),
        ("cancel", 1, "agent-a", 0, 0),
        ("commit", 0, "agent-a", 0, 0),
        ("land", 1, "agent-a", 0, 0),
        ("commit", 0, "agent-a", 0, 0),
    ]
)
def test_the_kept_open_rows_are_always_what_the_table_says(
    tmp_path_factory: pytest.TempPathFactory, operations: list[Operation]
) -> None:
    # Each reads its copy before the first operation, as the watch's first pass does.
    def read_copy(state: SignerState) -> None:
        state.open_sign_only()

    run_with_twin(tmp_path_factory.mktemp("open"), operations, _apply, lambda state, *_: _check(state), read_copy)


class _Node:
    """A chain whose final block is 100, each sender's count there as set; every call counted."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.calls: list[tuple[Any, ...]] = []

    async def call(self, method: str, *params: Any) -> str | dict[str, str]:
        self.calls.append((method, *params))
        if method == "eth_getBlockByNumber":
            return {"number": hex(100)}
        if method == "eth_blockNumber":
            return hex(100)
        if method == "eth_getTransactionCount":
            return hex(self.counts[params[0]])
        raise AssertionError(f"not asked in a pass: {method}")

    def counted(self) -> int:
        return sum(1 for call in self.calls if call[0] == "eth_getTransactionCount")


def _watch(state: SignerState, node: _Node, ttl_s: int | None) -> tuple[SignOnly, list[str]]:
    """The watch over a faked node and policy book; `look` replaced by a list of what it was given."""
    policy = SimpleNamespace(sign_only_ttl_s=ttl_s)
    books: Any = SimpleNamespace(current=lambda agent_id: policy)
    unused: Any = None  # outcomes, signing, admins, persist: a pass with `look` replaced reads none
    watch = SignOnly(state, lambda chain: node, unused, unused, books, unused, unused, 0, lambda chain: 2)
    looked: list[str] = []

    async def look(row: SignOnlyRow, now: datetime, reads: object = None) -> list[Emit]:
        looked.append(row.intent_id)
        return []

    cast(Any, watch).look = look  # a test double in place of the method
    return watch, looked


def _open_rows(state: SignerState, per_sender: int, at: int) -> None:
    for agent_id, sender in zip(AGENTS, SENDERS, strict=True):
        for nonce in range(per_sender):
            with state.intent_scope():
                record_signed(
                    state.agent(agent_id),
                    f"{agent_id}/i-{nonce}",
                    now_us=at + nonce * US,
                    wei=1,
                    nonce=nonce,
                    held=True,
                    record=_record(sender, nonce),
                )
    state.commit()


def _pass(watch: SignOnly, state: SignerState, now_us: int) -> None:
    asyncio.run(watch.look_all(state.open_sign_only(), from_us(now_us)))


def test_a_pass_asks_each_address_once_and_looks_only_at_what_can_have_changed(tmp_path: Path) -> None:
    state = SignerState(tmp_path / "a.db", fsync=False)
    _open_rows(state, 200, NOW_US)
    node = _Node({SENDERS[0]: 0, SENDERS[1]: 0})
    watch, looked = _watch(state, node, ttl_s=3_600)
    now = NOW_US + 300 * US
    _pass(watch, state, now)
    assert (node.counted(), looked) == (2, [])  # 400 open, none taken: one count per address, no look

    # Not due yet (2 s after a look, while young): nothing asked at all.
    _pass(watch, state, now + US)
    assert (node.counted(), looked) == (2, [])

    # Two of agent-a's nonces taken, one of agent-b's asked to cancel, another's cancellation signed.
    node.counts[SENDERS[0]] = 2
    state.agent("agent-b").ask_cancel("agent-b/i-7", "by a test")
    state.agent("agent-b").cancel_sign_only("agent-b/i-9", b"{}")
    state.commit()
    _pass(watch, state, now + 2 * US)
    assert node.counted() == 4
    assert sorted(looked) == ["agent-a/i-0", "agent-a/i-1", "agent-b/i-7", "agent-b/i-9"]

    # The asked one is looked at every pass until its cancellation is signed; the signed one only
    # when its address is due.
    looked.clear()
    _pass(watch, state, now + 3 * US)
    assert (node.counted(), looked) == (4, ["agent-b/i-7"])


def test_rows_past_the_ttl_are_looked_at_and_old_addresses_are_asked_every_30_s(tmp_path: Path) -> None:
    state = SignerState(tmp_path / "a.db", fsync=False)
    _open_rows(state, 50, NOW_US)
    node = _Node({SENDERS[0]: 0, SENDERS[1]: 0})
    watch, looked = _watch(state, node, ttl_s=None)
    old = NOW_US + LOOK_OFTEN_FOR_US + 60 * US  # every row older than 10 minutes
    _pass(watch, state, old)
    assert (node.counted(), looked) == (2, [])
    _pass(watch, state, old + 2 * US)
    _pass(watch, state, old + 29 * US)
    assert node.counted() == 2  # not asked again before 30 s
    _pass(watch, state, old + 30 * US)
    assert node.counted() == 4

    # A policy with a TTL: the rows signed at or before now - ttl are looked at, at once.
    cast(Any, watch.policies).current = lambda agent_id: SimpleNamespace(
        sign_only_ttl_s=(old + 31 * US - NOW_US) // US - 10
    )
    _pass(watch, state, old + 31 * US)
    assert sorted(looked) == sorted(f"{a}/i-{n}" for a in AGENTS for n in range(11))
    assert node.counted() == 4


def test_a_node_that_does_not_answer_leaves_the_rows_held_and_asks_again_next_pass(tmp_path: Path) -> None:
    state = SignerState(tmp_path / "a.db", fsync=False)
    _open_rows(state, 3, NOW_US)
    node = _Node({SENDERS[0]: 3, SENDERS[1]: 0})
    calls = node.call

    async def down(method: str, *params: Any) -> str | dict[str, str]:
        raise RpcUnavailable("down")

    cast(Any, node).call = down  # a node that does not answer, then answers again
    watch, looked = _watch(state, node, ttl_s=None)
    _pass(watch, state, NOW_US + US)
    assert looked == [] and len(state.open_sign_only()) == 6
    cast(Any, node).call = calls
    _pass(watch, state, NOW_US + 2 * US)
    assert sorted(looked) == [f"agent-a/i-{n}" for n in range(3)]


def test_a_row_opened_at_an_address_on_the_slow_schedule_is_asked_at_the_next_pass(tmp_path: Path) -> None:
    state = SignerState(tmp_path / "a.db", fsync=False)
    _open_rows(state, 2, NOW_US)
    node = _Node({SENDERS[0]: 0, SENDERS[1]: 0})
    watch, looked = _watch(state, node, ttl_s=None)
    old = NOW_US + LOOK_OFTEN_FOR_US + US
    _pass(watch, state, old)
    with state.intent_scope():
        record_signed(
            state.agent("agent-a"), "agent-a/new", now_us=old, wei=1, nonce=2, held=True, record=_record(SENDERS[0], 2)
        )
    state.commit()
    node.counts[SENDERS[0]] = 3
    _pass(watch, state, old + 2 * US)
    assert node.counted() == 3 and sorted(looked) == ["agent-a/i-0", "agent-a/i-1", "agent-a/new"]
