"""The USD limits: what an intent moves, priced in US dollars by the policy's price feeds.

Each asset the intent moves (the native spend, its worst-case fee included, and every token the
assets stage counted) is priced by the Chainlink-style feed the policy names for it, read on the
caller's own node (``latestRoundData`` and ``decimals`` of ``AggregatorV3Interface``): the worker
and the signer each read it themselves. A price is refused when the policy names no feed for the
asset or the address answers no feed's calls (PRICE_FEED_UNKNOWN), when its answer is not
positive (PRICE_NOT_POSITIVE), when it is older than ``price_max_age_s`` (PRICE_STALE), when it
is dated later than now by more than ``PRICE_MAX_FUTURE_S`` (PRICE_FROM_THE_FUTURE: such a round
would pass the age check for as long as it is ahead), when the feed's decimals are outside 0 to
``PRICE_MAX_DECIMALS`` (PRICE_DECIMALS_OUT_OF_RANGE: 255 decimals price anything at nothing), or
when the node cannot be asked (PRICE_UNAVAILABLE). Every price used is in the verdict's facts, and
so on the ledger: feed, round id, answer, decimals, updatedAt.

Integers only. An amount of ``units`` of an asset with ``d`` decimals at ``answer`` with ``f``
decimals is ``units * answer * 10**6 / 10**(d + f)`` millionths of a dollar, rounded **up**:
against the agent, so no sum of rounded amounts is ever below what moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_abi import decode

from rules import movements
from rules.verdicts import verdict
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.codes import Code
from schemas.errors import WardenError
from schemas.fields import format_token_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import USD_DECIMALS, AgentPolicy, PriceFeed, parse_usd
from schemas.quote import FeeQuote
from schemas.stages import Stage

USD = "usd"  # the USD window's key beside the assets' in spend records
_LATEST_ROUND_DATA = "0xfeaf968c"
_DECIMALS = "0x313ce567"
NATIVE_DECIMALS = 18
# How far a round's updatedAt may be ahead of the decider's clock: the feed's chain and the decider
# keep their own time. Further ahead is no price: it would never be stale.
PRICE_MAX_FUTURE_S = 60
# The most decimals a feed may report (Chainlink's use 8 or 18); beyond, an answer means nothing.
PRICE_MAX_DECIMALS = 36


@dataclass(frozen=True)
class Price:
    """One round of one feed, as read."""

    feed: str
    round_id: int
    answer: int
    decimals: int
    updated_at: int  # seconds since the epoch, the feed's updatedAt


class PriceRefused(WardenError):
    def __init__(self, code: Code, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def usd_of(units: int, asset_decimals: int, price: Price) -> int:
    """``units`` of an asset with ``asset_decimals`` decimals at ``price``, in millionths of a dollar, rounded up."""
    # Annotated: int ** int is Any to mypy (a negative exponent makes a float); these exponents are not negative.
    numerator: int = units * price.answer * 10**USD_DECIMALS
    denominator: int = 10 ** (asset_decimals + price.decimals)
    return -(-numerator // denominator)


def format_usd(micro: int) -> str:
    return "$" + format_token_amount(micro, USD_DECIMALS)


async def read_price(node: Node, feed: PriceFeed, now: datetime, max_age_s: int) -> Price:
    """The feed's latest round, refused (`PriceRefused`) when it cannot be believed now."""
    try:
        raw_round = await node.call("eth_call", {"to": feed.feed, "data": _LATEST_ROUND_DATA}, "latest")
        raw_decimals = await node.call("eth_call", {"to": feed.feed, "data": _DECIMALS}, "latest")
    except RpcUnavailable as exc:
        raise PriceRefused(
            Code.PRICE_UNAVAILABLE, f"the {feed.chain} node could not be asked for the price: {exc}"
        ) from None
    except RpcError as exc:
        raise PriceRefused(
            Code.PRICE_FEED_UNKNOWN,
            f"{feed.feed} on {feed.chain} does not answer latestRoundData() ({exc.message}); it is no price "
            "feed: an admin names the asset's Chainlink-style aggregator in price_feeds",
        ) from None
    try:
        round_id, answer, _, updated_at, _ = decode(
            ["uint80", "int256", "uint256", "uint256", "uint80"], bytes.fromhex(raw_round[2:])
        )
        (decimals,) = decode(["uint8"], bytes.fromhex(raw_decimals[2:]))
    except Exception:  # noqa: BLE001 - whatever the bytes are, they are no feed's answer
        raise PriceRefused(
            Code.PRICE_FEED_UNKNOWN,
            f"{feed.feed} on {feed.chain} answers latestRoundData() and decimals() with something that is not "
            "AggregatorV3Interface's answer (no contract there?); an admin names the asset's real feed in price_feeds",
        ) from None
    return believed(Price(feed.feed, round_id, answer, decimals, updated_at), feed, now, max_age_s)


def believed(price: Price, feed: PriceFeed, now: datetime, max_age_s: int) -> Price:
    """``price``, if a decision at ``now`` may use it: decimals in range, positive, not dated
    ahead of ``now`` (beyond the clocks' skew), and no older than ``max_age_s``."""
    round_id, answer, updated_at = price.round_id, price.answer, price.updated_at
    if not 0 <= price.decimals <= PRICE_MAX_DECIMALS:
        raise PriceRefused(
            Code.PRICE_DECIMALS_OUT_OF_RANGE,
            f"the {feed.key} price feed {feed.feed} reports {price.decimals} decimals; a feed may have 0 to "
            f"{PRICE_MAX_DECIMALS}, so its answer {answer} means no known price. An admin names the asset's real "
            "feed in price_feeds",
        )
    if answer <= 0:
        raise PriceRefused(
            Code.PRICE_NOT_POSITIVE,
            f"the {feed.key} price from {feed.feed} (round {round_id}) is {answer}, not positive; nothing is "
            "priced at it. Wait for the feed to recover, or an admin names another feed",
        )
    age = int(now.timestamp()) - updated_at
    if -age > PRICE_MAX_FUTURE_S:
        raise PriceRefused(
            Code.PRICE_FROM_THE_FUTURE,
            f"the {feed.key} price from {feed.feed} (round {round_id}) says it was updated at {updated_at}, "
            f"{-age} s after now ({int(now.timestamp())}); at most {PRICE_MAX_FUTURE_S} s of clock skew is allowed, "
            "and a round from the future would never be stale. The feed is broken or forged: an admin names "
            "another feed",
        )
    if age > max_age_s:
        raise PriceRefused(
            Code.PRICE_STALE,
            f"the {feed.key} price from {feed.feed} (round {round_id}) was updated {age} s ago, more than the "
            f"policy's price_max_age_s of {max_age_s}; retry when the feed updates",
        )
    return price


def _moved(
    intent: TransactionIntent, policy: AgentPolicy, quote: FeeQuote | None, asset_spend: Mapping[str, int]
) -> list[tuple[str, int, int]]:
    """(asset key, units, decimals) of each asset the intent moves, the native spend first."""
    moved: list[tuple[str, int, int]] = []
    native = 0 if quote is None else quote.spend_wei(intent)
    if native > 0:
        moved.append((movements.NATIVE, native, NATIVE_DECIMALS))
    for key, units in sorted(asset_spend.items()):
        if key == USD or units <= 0:
            continue
        chain, _, token = key.partition(":")
        asset = policy.asset(chain, token)
        # The assets stage counts only assets the policy names; one it does not is priced as nothing known.
        moved.append((key, units, asset.decimals if asset is not None else -1))
    return moved


async def check_usd(
    intent: TransactionIntent,
    policy: AgentPolicy,
    node: Node,
    spent_usd: int,
    quote: FeeQuote | None,
    asset_spend: Mapping[str, int],
    now: datetime,
    recorded: Mapping[str, Price] | None = None,
) -> tuple[StageVerdict, int | None]:
    """The USD cap and rolling limit: the verdict, and what to reserve in the USD window
    (millionths of a dollar; None when the policy sets no USD limit). ``recorded``: the prices
    the ledger holds for this intent, per asset key, read instead of the feeds (a replay); an
    asset without one is refused PRICE_NOT_RECORDED."""
    if not policy.usd_limited:
        return verdict(intent, Stage.USD_LIMIT, True, Code.NO_USD_LIMIT, "the policy sets no USD limit"), None
    prices, total = [], 0
    for key, units, decimals in _moved(intent, policy, quote, asset_spend):
        feed = policy.price_feed(intent.chain, key)
        if feed is None or decimals < 0:
            return verdict(
                intent,
                Stage.USD_LIMIT,
                False,
                Code.PRICE_FEED_UNKNOWN,
                f"the intent moves {key} on {intent.chain}, and the policy names no price feed for it, so its USD "
                "value is unknown; an admin adds the asset's feed to price_feeds",
                asset=key,
            ), None
        try:
            if recorded is None:
                price = await read_price(node, feed, now, policy.price_max_age_s)
            elif key in recorded:
                price = believed(recorded[key], feed, now, policy.price_max_age_s)
            else:
                raise PriceRefused(
                    Code.PRICE_NOT_RECORDED,
                    f"no {key} price was recorded for this intent when it was decided, and a replay never asks "
                    "today's chain",
                )
        except PriceRefused as refused:
            return verdict(
                intent, Stage.USD_LIMIT, False, refused.code, refused.reason, asset=key, feed=feed.feed
            ), None
        usd = usd_of(units, decimals, price)
        total += usd
        prices.append(
            dict(
                asset=key,
                units=str(units),
                feed=price.feed,
                round_id=str(price.round_id),
                answer=str(price.answer),
                decimals=price.decimals,
                updated_at=price.updated_at,
                usd=str(usd),
            )
        )
    facts = dict(prices=prices, usd=str(total), usd_spent=str(spent_usd))
    cap = None if policy.usd_max_per_tx is None else parse_usd(policy.usd_max_per_tx)
    if cap is not None and total > cap:
        return verdict(
            intent,
            Stage.USD_LIMIT,
            False,
            Code.USD_OVER_CAP,
            f"the intent moves {format_usd(total)} (priced by the policy's feeds, rounded up), more than the "
            f"per-transaction cap of {format_usd(cap)} (usd_max_per_tx)",
            **facts,
        ), None
    over = recheck_usd_window(intent, policy, spent_usd, total, facts)
    if over is not None:
        return over, None
    return verdict(intent, Stage.USD_LIMIT, True, Code.WITHIN_USD_LIMITS, f"moves {format_usd(total)}", **facts), total


def recheck_usd_window(
    intent: TransactionIntent, policy: AgentPolicy, spent_usd: int, usd: int, facts: dict[str, Any] | None = None
) -> StageVerdict | None:
    """The rolling USD limit on ``usd`` more, with ``spent_usd`` in the window: the stage's last
    check, and again where other intents may have been reserved between the stage and the
    reservation (the split topology), with the amount the stage priced. None when it holds."""
    if policy.usd_daily_limit is None or spent_usd + usd <= (limit := parse_usd(policy.usd_daily_limit)):
        return None
    return verdict(
        intent,
        Stage.USD_LIMIT,
        False,
        Code.USD_DAILY_LIMIT_EXCEEDED,
        f"{format_usd(spent_usd)} already moved in the last 24 h; {format_usd(usd)} more would exceed the "
        f"rolling limit of {format_usd(limit)} (usd_daily_limit); wait for earlier spend to leave the window",
        **(facts if facts is not None else dict(usd=str(usd), usd_spent=str(spent_usd))),
    )
