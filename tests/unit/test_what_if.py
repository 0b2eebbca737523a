"""The what-if replay (sdk.what_if.replay) without a ledger: recorded intents judged again under
another policy with windows of the replay's own, and the chain never asked. No processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rules.prices import Price
from schemas.auth import public_key_hex
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from sdk.client import new_intent
from sdk.what_if import Recorded, replay, report

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
A, B = "0x" + "aa" * 20, "0x" + "bb" * 20
FEED = "0x" + "cc" * 20
QUOTE = FeeQuote(gas_limit=21_000, fee_per_gas=10**9)


def policy(**fields) -> AgentPolicy:
    return AgentPolicy(
        agent_id="agent-w",
        version=2,
        agent_public_key=public_key_hex(KEY),
        issued_at=T0,
        tx_to_allowlist=(A, B),
        **fields,
    )


def recorded(n: int, to: str, value: str, outcome: str = "approved", **fields) -> Recorded:
    at = T0 + timedelta(minutes=n)
    intent = new_intent(KEY, agent_id="agent-w", chain="anvil", to=to, value=value, now=at)
    return Recorded(intent, at, outcome, quote=fields.pop("quote", QUOTE), **fields)


def test_windows_are_the_replays_own_and_in_order():
    history = [recorded(0, A, "0.4"), recorded(1, A, "0.4"), recorded(2, B, "0.4")]
    replayed = asyncio.run(replay(history, policy(tx_daily_limit_eth="1"), 600 * 10**6))
    assert [r.outcome for r in replayed] == ["approved", "approved", "refused"]
    assert replayed[2].code == "DAILY_LIMIT_EXCEEDED"
    doc = report(replayed, "agent-w", T0, policy())
    assert [c["intent_id"] for c in doc["changes"]] == [history[2].intent.intent_id]
    assert doc["totals"]["moved"] == {"native": str(12 * 10**17)}
    assert doc["totals"]["would_have_moved"] == {"native": str(8 * 10**17)}


def test_a_fee_never_quoted_or_a_price_never_read_is_undetermined_not_guessed():
    never_quoted = recorded(0, A, "0.1", "refused", quote=None)
    replayed = asyncio.run(replay([never_quoted], policy(), 600 * 10**6))
    assert (replayed[0].outcome, replayed[0].stage) == ("undetermined", "fee")
    usd = policy(usd_daily_limit="1000", price_feeds=({"chain": "anvil", "asset": "native", "feed": FEED},))
    replayed = asyncio.run(replay([recorded(0, A, "0.1")], usd, 600 * 10**6))
    assert (replayed[0].outcome, replayed[0].code) == ("undetermined", "PRICE_NOT_RECORDED")


def test_recorded_prices_are_used_and_held_to_the_new_staleness_bound():
    price = Price(FEED, 7, 3000 * 10**8, 8, int(T0.timestamp()) - 600)
    usd = dict(usd_max_per_tx="200", price_feeds=({"chain": "anvil", "asset": "native", "feed": FEED},))
    one = recorded(1, A, "0.1", prices={"native": price})  # $300 and a fee
    replayed = asyncio.run(replay([one], policy(**usd), 600 * 10**6))
    assert (replayed[0].outcome, replayed[0].code) == ("refused", "USD_OVER_CAP")
    replayed = asyncio.run(replay([one], policy(**usd, price_max_age_s=60), 600 * 10**6))
    assert (replayed[0].outcome, replayed[0].code) == ("refused", "PRICE_STALE")
