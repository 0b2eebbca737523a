"""A fee bump in the signer's windows: judged with the intent's own reservations left out of
every window (native, each asset, the USD window), so the intent counts once, at the new fee;
and what the bump's judgement counted is reserved (raised, never lowered) by writes a changelog
replays to the same rows."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rules.prices import USD
from runtime.admins import Admins
from runtime.clock import to_us
from runtime.registry import REGISTRY
from schemas.auth import public_key_hex
from sdk.client import new_intent
from signer.judging import Judging
from signer.policies import PolicyBook
from signer.state import SignerState
from tests.signer_record_support import record_signed

AGENT = "agent-bump"
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
TOKEN = "anvil:0x5FbDB2315678afecb367f032d93F642f64180aa3"
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)


def _signed(state: SignerState, intent_id: str, nonce: int, wei: int, assets: dict[str, int]) -> list[Any]:
    """An intent signed and committed: the writes a changelog would carry."""
    with state.intent_scope():
        record_signed(state.agent(AGENT), intent_id, now_us=to_us(NOW), wei=wei, nonce=nonce, assets=assets)
    writes = state.writes
    state.commit()
    return writes


def test_a_bump_is_judged_without_its_own_reservations_and_reserves_its_new_usd_price(tmp_path: Path) -> None:
    state = SignerState(tmp_path / "a.db", fsync=False)
    admins = Admins.with_threshold({"admin": public_key_hex(Ed25519PrivateKey.generate())}, 1)
    judging = Judging(state, admins, PolicyBook(admins), max_age_us=600 * 10**6, chains=REGISTRY)
    intent = new_intent(Ed25519PrivateKey.generate(), agent_id=AGENT, chain="anvil", to=DEST, value="0.1", now=NOW)
    log = _signed(state, intent.intent_id, 0, 10**17, {USD: 99_630_000, TOKEN: 5})
    log += _signed(state, "i-other", 1, 2 * 10**17, {USD: 50_000_000, TOKEN: 7})

    spent = judging.spent(intent, NOW)
    # Only the other intent counts: the bump replaces this one's reservations, in every window.
    assert (spent("native"), spent(USD), spent(TOKEN)) == (2 * 10**17, 50_000_000, 7)

    agent = state.agent(AGENT)
    at = to_us(NOW) + 60 * 10**6
    agent.record_replacement(
        intent_id=intent.intent_id,
        tx_hash="0x" + "01" * 32,
        record=b"{}",
        now_us=at,
        spend_wei=10**17 + 10**15,
        assets={USD: 101_150_000, TOKEN: 5},
    )
    # The bump's price is what the USD window holds for it now; an attempt priced lower never lowers it.
    agent.record_replacement(
        intent_id=intent.intent_id,
        tx_hash="0x" + "02" * 32,
        record=b"{}",
        now_us=at,
        spend_wei=10**17,
        assets={USD: 99_000_000},
    )
    log += state.writes
    state.commit()
    held = {asset: agent.asset_entries(asset, at)[intent.intent_id][1] for asset in (USD, TOKEN)}
    assert held == {USD: 101_150_000, TOKEN: 5}
    assert agent.spend_of(intent.intent_id) == 10**17 + 10**15

    # A changelog replayed on another file gives the same rows.
    twin = SignerState(tmp_path / "b.db", fsync=False)
    twin.replay(log)
    twin.commit()
    assert twin.agent(AGENT).asset_entries(USD, at) == agent.asset_entries(USD, at)
