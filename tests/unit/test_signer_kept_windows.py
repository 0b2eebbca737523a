"""The signer's windows kept in memory (`SignerState.spend_windows`, native and per asset, and
`SignerState.held_intents`) against its tables: whatever sequence of signings (sign-only or not),
landings, cancellations, voids, fee bumps, landings counted again, scope and batch rollbacks and
changelog replays, and at whatever moment asked, `spent`, `outstanding` and `asset_spent` say what
a window read afresh from the tables says (`spend_entries` / `asset_entries` / `held`)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings

from rules.prices import USD
from rules.window import SpendWindow
from signer.agent_state import AgentState
from signer.state import SignerState
from tests.signer_record_support import Operation, operations_of, record_signed, run_with_twin

TOKEN = "anvil:0x5FbDB2315678afecb367f032d93F642f64180aa3"
# A limit a fee bump's judgement counts that the intent's signing did not (a policy changed meanwhile).
OTHER = "anvil:0x0000000000000000000000000000000000000bbb"
ASSETS = (None, USD, TOKEN, OTHER)  # None: native
AGENTS = ("agent-a", "agent-b")
OPS = (
    "sign_only",
    "sign",
    "sign_then_fail",
    "land",
    "land_unexecuted",
    "ask_cancel",
    "cancel",
    "bump",
    "void",
    "settle_unexecuted",
    "count_landing",
    "commit",
    "rollback",
    "check",
)


class _Failed(Exception):
    pass


def _table(agent: AgentState, asset: str | None, at: int, excluding: str) -> tuple[int, int]:
    """(spent, outstanding) at ``at`` leaving out ``excluding``, from a window read from the tables."""
    entries = agent.spend_entries(at) if asset is None else agent.asset_entries(asset, at)
    entries.pop(excluding, None)
    window = SpendWindow(entries, agent.held())
    return window.spent(at), window.outstanding(at)


def _check(state: SignerState, at: int, excluding: str) -> None:
    for agent_id in AGENTS:
        agent = state.agent(agent_id)
        spent, outstanding = _table(agent, None, at, excluding)
        assert agent.spent(at, excluding=excluding) == spent
        assert agent.outstanding(at, excluding=excluding) == outstanding
        for asset in ASSETS[1:]:
            assert agent.asset_spent(asset, at, excluding=excluding) == _table(agent, asset, at, excluding)[0]


def _sign(state: SignerState, agent: AgentState, intent_id: str, at: int, wei: int, op: str) -> None:
    try:
        with state.intent_scope():
            record_signed(
                agent, intent_id, now_us=at, wei=wei, nonce=wei, assets={USD: 2 * wei, TOKEN: wei}, held=op != "sign"
            )
            if op == "sign_then_fail":
                raise _Failed
    except _Failed:
        pass


def _apply(state: SignerState, op: str, agent: AgentState, n: int, at: int, wei: int) -> None:
    # An intent id names one agent's intent: one reused by another agent is refused before anything
    # is written (`Signer.handle`, INTENT_ID_REUSED).
    intent_id = f"{agent.agent_id}/i-{n}"
    # The signer signs an intent once (a repeat is answered from its record) and bumps or cancels
    # only a transaction it signed.
    signed = agent.spend_of(intent_id) is not None
    if op in ("sign_only", "sign", "sign_then_fail"):
        if not signed:
            _sign(state, agent, intent_id, at, wei, op)
    elif op in ("land", "land_unexecuted"):
        agent.sign_only_landed(intent_id, at, wei, executed=op == "land")
    elif op == "ask_cancel":
        agent.ask_cancel(intent_id, "by a test")
    elif op in ("cancel", "bump") and signed:
        agent.record_replacement(
            intent_id=intent_id,
            tx_hash=f"0x{n:064x}",
            record=b"{}",
            now_us=at,
            spend_wei=wei,
            assets={USD: 3 * wei, OTHER: wei},
        )
        if op == "cancel":
            agent.cancel_sign_only(intent_id, b"{}")
    elif op == "void":
        agent.void_assets(intent_id)
    elif op == "settle_unexecuted":
        agent.settle_spend(intent_id, wei, executed=False)
    elif op == "count_landing":
        agent.count_landing(intent_id, f"landed-{wei}", at)
    elif op == "commit":
        state.commit()
    elif op == "rollback":
        state.rollback()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Seconds on: a day passes, or goes back.
@given(operations=operations_of(OPS, AGENTS, [0, 0, 10, 3_600, 40_000, 90_000, -3_600], 10))
# A fee bump counts a limit the signing did not have, for an intent still held: held in that window
# too, whether the agent's windows were read before the intent was signed (agent-a) or after
# (agent-b). Then its tokens are voided while it is held: its asset windows count nothing of it.
@example(
    operations=[
        ("sign_only", 1, "agent-b", 0, 5),
        ("check", 2, "agent-a", 0, 0),
        ("sign_only", 1, "agent-a", 0, 5),
        ("bump", 1, "agent-a", 0, 7),
        ("bump", 1, "agent-b", 0, 7),
        ("check", 2, "agent-a", 90_000, 0),
        ("void", 1, "agent-a", 0, 0),
        ("check", 2, "agent-a", 0, 0),
    ]
)
def test_the_kept_windows_are_always_what_the_tables_say(
    tmp_path_factory: pytest.TempPathFactory, operations: list[Operation]
) -> None:
    # The clock mostly runs forward, as a signer's does (and now and then a moment before).
    def apply(state: SignerState, operation: Operation, clock: int) -> None:
        op, n, agent_id, _, wei = operation
        _apply(state, op, state.agent(agent_id), n, clock, wei)

    def check(state: SignerState, operation: Operation, clock: int) -> None:
        _check(state, clock, f"{operation[2]}/i-{operation[1]}")

    run_with_twin(tmp_path_factory.mktemp("kept"), operations, apply, check)
