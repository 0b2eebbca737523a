"""The signer's record of EVM sign-only spend (signer/state.py, signer/agent_state.py): held in every
window (native, each asset, USD) whatever its age while open, counted from its landing once its
nonce is taken, by writes a changelog replays to the same rows; its bytes are never among the
final records a restarted signer reconciles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rules.prices import USD
from signer.state import SignerState
from tests.signer_record_support import record_signed

AGENT = "agent-sign-only"
TOKEN = "anvil:0x5FbDB2315678afecb367f032d93F642f64180aa3"
US = 1_000_000
DAY = 86_400 * US
AT = 1_795_000_000 * US


def _signed(state: SignerState, intent_id: str, wei: int, held: bool) -> list[Any]:
    with state.intent_scope():
        record_signed(
            state.agent(AGENT),
            intent_id,
            now_us=AT,
            wei=wei,
            assets={USD: 7, TOKEN: 3},
            held=held,
            record=b'{"final":true,"status":"sign_only"}',
        )
    writes = state.writes
    state.commit()
    return writes


def test_held_spend_counts_whatever_its_age_until_it_lands_and_a_replay_holds_the_same(tmp_path: Path) -> None:
    state = SignerState(tmp_path / "a.db", fsync=False)
    log = _signed(state, "i-held", 5, held=True) + _signed(state, "i-broadcast", 2, held=False)
    agent = state.agent(AGENT)
    later = AT + 10 * DAY
    assert (agent.spent(later), agent.outstanding(later)) == (5, 5)
    assert (agent.asset_spent(USD, later), agent.asset_spent(TOKEN, later)) == (7, 3)
    assert agent.spent(later, excluding="i-held") == 0 and agent.outstanding(later, excluding="i-held") == 0
    twin = SignerState(tmp_path / "b.db", fsync=False)
    twin.replay(log)
    twin.commit()
    assert twin.agent(AGENT).spent(later) == 5

    # It lands 10 days on (what the chain took: 4, and its tokens): counted from then, for 24 h.
    agent.sign_only_landed("i-held", later, 4, executed=True)
    state.commit()
    assert (agent.spent(later), agent.outstanding(later), agent.asset_spent(TOKEN, later)) == (4, 0, 3)
    assert agent.spent(later + DAY) == 0 and state.sign_only_open() == []
    assert state.final_since(AT - 1) == []  # never reconciled, never sent by the signer


def test_a_nonce_another_transaction_took_counts_nothing(tmp_path: Path) -> None:
    state = SignerState(tmp_path / "a.db", fsync=False)
    agent = state.agent(AGENT)
    assert agent.spent(AT) == 0  # the in-memory copy of the window, kept in step by the writes below
    _signed(state, "i-held", 5, held=True)
    assert agent.spent(AT + 3 * DAY) == 5
    agent.sign_only_landed("i-held", AT + DAY, 0, executed=False)
    state.commit()
    assert (agent.spent(AT + DAY), agent.asset_spent(USD, AT + DAY), agent.asset_spent(TOKEN, AT + DAY)) == (0, 0, 0)
