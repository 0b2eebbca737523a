"""USD limits on the real stack: Chainlink-style feeds (infra/contracts/PriceFeed.sol) on Anvil
price what an intent moves; the streams worker and the signer read them themselves. A feed moved
between two intents changes what passes; a stale, non-positive or unknown feed, a round from the
future and a feed of impossible decimals each refuse with its own code; a hundred intents at once
across ETH and a token never pass one USD daily limit, on Anvil; and every price used is on the
ledger with its round."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import clickhouse_connect
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra import contracts
from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedTransaction
from schemas.stages import Stage
from sdk.client import OUTCOME_TOPICS, Client, Outcome, new_intent, wait_outcomes
from tests.signer_support import DEST, LoneSigner
from tests.support import make_agent
from tests.token_support import DEPLOYER, UNIT, balance_of, mint_tokens, on_anvil, token_assets

FEED_DECIMALS = 8
DOLLAR = 10**FEED_DECIMALS


async def _feed(settings: Settings, description: str, answer: int) -> str:
    return await on_anvil(
        settings, lambda node: contracts.deploy(node, "PriceFeed", FEED_DECIMALS, description, answer, sender=DEPLOYER)
    )


async def _set(settings: Settings, feed: str, answer: int, updated_at: int | None = None) -> None:
    data = (
        contracts.calldata("setAnswer(int256)", answer)
        if updated_at is None
        else contracts.calldata("setAnswerAt(int256,uint256)", answer, updated_at)
    )
    await on_anvil(settings, lambda node: contracts.send(node, DEPLOYER, feed, data))


async def _submit(settings: Settings, intents: list[TransactionIntent], timeout_s: float = 90.0) -> dict[str, Outcome]:
    start = await end_offsets(settings, OUTCOME_TOPICS)
    async with Client(settings) as client:
        await asyncio.gather(*(client.submit(i) for i in intents))
    return await wait_outcomes(settings, intents, timeout_s, start, final=True)


def _agent(
    settings: Settings, deployed: dict[str, str], eth_feed: str, wusd_feed: str, recipient: str, **fields: Any
) -> tuple[str, Ed25519PrivateKey, str]:
    """An agent whose policy prices ETH and WUSD on Anvil by the two feeds."""
    agent = f"usd-{os.urandom(3).hex()}"
    feeds = (
        {"chain": "anvil", "asset": "native", "feed": eth_feed},
        {"chain": "anvil", "asset": deployed["token"], "feed": wusd_feed},
    )
    key, address, _ = asyncio.run(
        make_agent(
            settings,
            agent,
            tx_to_allowlist=(deployed["token"], recipient),
            asset_limits=token_assets(deployed)[:1],
            price_feeds=feeds,
            **fields,
        )
    )
    return agent, key, address


def _ledger_facts(settings: Settings, intent_id: str) -> dict[str, Any]:
    host, _, port = settings.ledger_http.rpartition(":")
    client = clickhouse_connect.get_client(host=host, port=int(port))
    rows = client.query(
        "SELECT details FROM audit_log WHERE intent_id = {i:String} AND action IN ('stage.passed', 'stage.failed') "
        "AND JSONExtractString(details, 'stage') = 'usd_limit'",
        parameters={"i": intent_id},
    ).result_rows
    facts: dict[str, Any] = orjson.loads(rows[0][0])
    return facts


def test_a_moved_feed_a_stale_one_and_a_missing_one(
    stack: LocalStack, run: Callable[..., Any], deployed: dict[str, str]
) -> None:
    settings = stack.settings
    recipient = "0x" + os.urandom(20).hex()
    eth_feed = run(_feed(settings, "ETH / USD", 3000 * DOLLAR))
    wusd_feed = run(_feed(settings, "WUSD / USD", 1 * DOLLAR))
    agent, key, _ = _agent(settings, deployed, eth_feed, wusd_feed, recipient, usd_max_per_tx="100")

    def pay(value: str) -> tuple[TransactionIntent, Outcome]:
        intent = new_intent(key, agent_id=agent, chain="anvil", to=recipient, value=value, broadcast=True)
        outcome: Outcome = run(_submit(settings, [intent]))[intent.intent_id]
        return intent, outcome

    # $90 of ETH (and a fee of cents) under a $100 cap: mined.
    first, mined = pay("0.03")
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined
    # ETH moves to $4,000: the same 0.03 ETH is $120 now.
    run(_set(settings, eth_feed, 4000 * DOLLAR))
    second, refused = pay("0.03")
    assert isinstance(refused, IntentRejected), refused
    assert (refused.stage, refused.code) == (Stage.USD_LIMIT, Code.USD_OVER_CAP), refused
    assert "$120." in refused.reason
    # Stale: updated two hours ago, the policy allows an hour.
    # (Wall-clock time: the decision's `now`; other tests may have moved Anvil's clock.)
    run(_set(settings, eth_feed, 3000 * DOLLAR, int(time.time()) - 7200))
    _, stale = pay("0.01")
    assert isinstance(stale, IntentRejected), stale
    assert (stale.stage, stale.code) == (Stage.USD_LIMIT, Code.PRICE_STALE), stale
    run(_set(settings, eth_feed, 0))
    _, zero = pay("0.01")
    assert isinstance(zero, IntentRejected), zero
    assert (zero.stage, zero.code) == (Stage.USD_LIMIT, Code.PRICE_NOT_POSITIVE), zero
    # A feed address with no contract behind it.
    nowhere, nkey, _ = _agent(settings, deployed, "0x" + "00" * 19 + "77", wusd_feed, recipient, usd_daily_limit="1000")
    intent = new_intent(nkey, agent_id=nowhere, chain="anvil", to=recipient, value="0.01", broadcast=True)
    unknown = run(_submit(settings, [intent]))[intent.intent_id]
    assert (unknown.stage, unknown.code) == (Stage.USD_LIMIT, Code.PRICE_FEED_UNKNOWN), unknown

    # What the ledger holds of the first decision: the round and answer it was priced at.
    facts = _ledger_facts(settings, first.intent_id)["facts"]
    (price,) = facts["prices"]
    assert price["feed"] == eth_feed and price["answer"] == str(3000 * DOLLAR) and price["decimals"] == FEED_DECIMALS
    assert price["round_id"] == "1" and price["updated_at"] > 0
    assert int(facts["usd"]) >= 90_000_000  # $90 and the fee, in millionths, rounded up
    moved = _ledger_facts(settings, second.intent_id)["facts"]["prices"][0]
    assert moved["round_id"] == "2" and moved["answer"] == str(4000 * DOLLAR)


def test_a_hundred_intents_across_two_assets_never_pass_one_usd_daily_limit(
    stack: LocalStack, run: Callable[..., Any], deployed: dict[str, str]
) -> None:
    """50 ETH transfers of $30 and 50 WUSD transfers of $20, all at once, against $500 a day:
    what reaches the recipient on Anvil, priced at the feeds, is never above $500."""
    settings = stack.settings
    token = deployed["token"]
    recipient = "0x" + os.urandom(20).hex()
    eth_feed = run(_feed(settings, "ETH / USD", 3000 * DOLLAR))
    wusd_feed = run(_feed(settings, "WUSD / USD", 1 * DOLLAR))
    agent, key, address = _agent(settings, deployed, eth_feed, wusd_feed, recipient, usd_daily_limit="500")
    run(mint_tokens(settings, token, address, 1_000 * UNIT))
    data = contracts.calldata("transfer(address,uint256)", recipient, 20 * UNIT)
    intents = []
    for n in range(100):
        if n % 2:
            intents.append(
                new_intent(key, agent_id=agent, chain="anvil", to=token, value="0", data=data, broadcast=True)
            )
        else:
            intents.append(new_intent(key, agent_id=agent, chain="anvil", to=recipient, value="0.01", broadcast=True))
    outcomes = run(_submit(settings, intents, timeout_s=240.0))
    assert len(outcomes) == 100
    mined = [o for o in outcomes.values() if isinstance(o, SignedTransaction)]
    refused = [o for o in outcomes.values() if isinstance(o, IntentRejected)]
    assert {o.status for o in mined} == {"mined"}
    assert {(o.stage, o.code) for o in refused} == {(Stage.USD_LIMIT, Code.USD_DAILY_LIMIT_EXCEEDED)}
    # On Anvil: the ETH and WUSD the recipient holds, at the feeds' prices, within $500; and the
    # limit was used, not refused from the start.
    left = int(run(on_anvil(settings, lambda node: node.call("eth_getBalance", address, "latest"))), 16)
    eth_spent = 100 * 10**18 - left  # make_agent funds exactly 100 ETH: value sent and every fee paid
    wusd = run(balance_of(settings, token, recipient))
    usd_micro = -(-eth_spent * 3000 * 10**6 // 10**18) + wusd * 10**6 // UNIT
    print(f"\n{len(mined)} mined, {len(refused)} refused; ${usd_micro / 10**6:.6f} moved of $500")
    assert usd_micro <= 500 * 10**6
    assert usd_micro >= 450 * 10**6, usd_micro  # the limit was used, not refused from the start


def test_a_round_from_the_future_and_a_feed_of_255_decimals_are_refused_and_nothing_is_signed(
    stack: LocalStack, run: Callable[..., Any], deployed: dict[str, str], lone: LoneSigner
) -> None:
    """A price feed that lies: a round dated ten years ahead would pass the age check for ten years, and
    a feed reporting 255 decimals prices $1,000 of ETH at about $0. Each is refused with its own
    code, naming the feed and what it found, by the worker and by the signer handed the approval
    straight (as anyone who can write to warden.intents.approved could): nothing is signed."""
    settings = stack.settings
    recipient = "0x" + os.urandom(20).hex()
    ten_years_ahead = int(time.time()) + 10 * 365 * 86_400
    future = run(_feed(settings, "ETH / USD", 3000 * DOLLAR))
    run(_set(settings, future, 3000 * DOLLAR, ten_years_ahead))
    wide = run(
        on_anvil(
            settings, lambda node: contracts.deploy(node, "PriceFeed", 255, "ETH / USD", 3000 * DOLLAR, sender=DEPLOYER)
        )
    )
    cases = (
        (future, "0.01", Code.PRICE_FROM_THE_FUTURE, f"updated at {ten_years_ahead}"),  # $30, under the cap
        (wide, "0.333", Code.PRICE_DECIMALS_OUT_OF_RANGE, "reports 255 decimals"),  # $999, priced at ~$0
    )
    fees: dict[str, Any] = dict(gas_limit=21_000, max_fee_per_gas=10**10, max_priority_fee_per_gas=10**9)
    for feed, value, code, found in cases:
        agent, key, _ = _agent(settings, deployed, feed, feed, recipient, usd_max_per_tx="100")
        intent = new_intent(key, agent_id=agent, chain="anvil", to=recipient, value=value, broadcast=True, **fees)
        refused = run(_submit(settings, [intent]))[intent.intent_id]
        assert isinstance(refused, IntentRejected), refused
        assert (refused.stage, refused.code) == (Stage.USD_LIMIT, code), refused
        assert feed in refused.reason and found in refused.reason, refused.reason

        lone.set_policy(usd_max_per_tx="100", price_feeds=({"chain": "anvil", "asset": "native", "feed": feed},))
        outcome, _, to_send = run(lone.handle(lone.intent(to=DEST, value=value, broadcast=True, **fees)))
        assert isinstance(outcome, IntentRejected) and to_send is None, outcome
        assert (outcome.stage, outcome.code) == (Stage.SIGNING, code), outcome
        assert feed in outcome.reason and found in outcome.reason, outcome.reason
