"""The dry run's window arithmetic (`sdk.dry_run`), without a broker: which signed transactions
the rolling 24 h window holds, one spend per nonce, and what each limit has left.
tests/stack/test_mcp_server.py checks the dry run against what the pipeline then decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.outcomes import SignedTransaction
from schemas.policy import AgentPolicy
from sdk.dry_run import spent_in_window, windows_left
from sdk.records import AgentRecords

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SENDER = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
TOKEN = "0x0000000000000000000000000000000000700c3a"


def _signed(intent_id: str, nonce: int, spend: int, at: datetime) -> SignedTransaction:
    return SignedTransaction(
        intent_id=intent_id,
        agent_id="agent-dry",
        chain="anvil",
        chain_id=31337,
        signed_tx="0x02",
        tx_hash="0x" + f"{nonce:064x}",
        **{"from": SENDER},
        to=SENDER,
        nonce=nonce,
        value_wei=spend,
        tx_type=2,
        status="mined",
        tee="none",
        signed_at=at,
        max_spend_wei=spend,
    )


def _policy(**fields: Any) -> AgentPolicy:
    base = dict(agent_id="agent-dry", version=1, agent_public_key="0x" + "11" * 32, issued_at=NOW)
    return AgentPolicy(**base, **fields)


def test_the_window_holds_the_last_24_hours_once_per_nonce() -> None:
    records = AgentRecords(
        transactions=[
            _signed("i-old", 0, 7 * 10**17, NOW - timedelta(hours=24)),  # just left the window
            _signed("i-a", 1, 3 * 10**17, NOW - timedelta(hours=23, minutes=59)),
            _signed("i-retry-of-a", 1, 3 * 10**17, NOW - timedelta(hours=1)),  # answered with i-a's transaction
            _signed("i-b", 2, 5 * 10**16, NOW),
            _signed("i-later", 3, 10**18, NOW + timedelta(seconds=1)),  # not yet
        ],
        rejected=[],
        forged=0,
    )
    assert spent_in_window(records, {}, NOW) == {"native": 3 * 10**17 + 5 * 10**16}


def test_each_rolling_limit_shows_what_is_left_and_never_less_than_nothing() -> None:
    policy = _policy(
        tx_daily_limit_eth="0.5",
        asset_limits=({"chain": "anvil", "token": TOKEN, "symbol": "WUSD", "decimals": 6, "daily_limit": "150"},),
    )
    key = policy.asset_limits[0].key
    windows = windows_left(policy, {"native": 35 * 10**16, key: 160_000_000})
    assert [(w.asset, w.symbol, w.limit, w.spent_24h, w.left) for w in windows] == [
        ("native", "native", "0.5", "0.35", "0.15"),
        (key, "WUSD", "150", "160", "0"),
    ]
    assert windows_left(_policy(), {"native": 1}) == []
