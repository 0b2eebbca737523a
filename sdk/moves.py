"""What a parked intent moves, in the units people read: each asset's amount in its symbol and
decimals (and exactly, in base units), to whom, and its value in US dollars where the agent's
policy names a price feed for it. `warden approvals` prints it and the console heads each parked
intent with it; the exact bytes an admin signs are shown beside it, never instead.

Everything is read from the intent's own bytes, as its family's judge reads them: an EVM
transaction's value, calldata and delegations by the agent's policy in force (`rules.movements`: a
token's symbol and decimals are its ``asset_limits`` entry's), an EIP-712 document by
`rules.typed_movements`, and the worst-case fee the fee stage priced; a Solana transaction's
instructions (`svm.transactions`: lamports, and tokens in the policy's symbol and decimals for their
mint), its fee when the agent pays it; a Bitcoin PSBT's outputs to anyone but the agent's own
wallet, and its fee. A Solana token transfer names a token account, whose owner only the chain
knows: that owner is added as the streams worker's judge read it on its node when it parked the
intent, and said to be that. The native unit is the network's currency
(`schemas.chains.Chain.currency`); nothing Warden cannot read is guessed.

A price is read now, from the feed the policy names for the asset on the intent's network
(`rules.prices.read_price`: fresh, positive, of sane decimals), as the signer reads it when it
signs; Warden reads no price for SOL or BTC, and says so."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from btc import addresses as btc_addresses
from btc import psbt as psbts
from btc import wallet
from rules import movements as evm_movements
from rules.prices import PriceRefused, format_usd, read_price, usd_of
from rules.typed_movements import read_typed_data
from runtime.config import Settings
from runtime.registry import REGISTRY
from runtime.rpc import JsonRpc, NoRpc
from schemas.chains import Family
from schemas.families import FAMILY_OF_KIND, FORMS
from schemas.fields import format_token_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentParked
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from svm import transactions as solana_transactions
from svm.instructions import Kind

NATIVE = evm_movements.NATIVE


@dataclass(frozen=True)
class Move:
    """One thing a parked intent does with value. ``amount``: in the asset's symbol and decimals
    ("2.5 ETH"), ``units`` exactly in its base units; ``to`` whom (a recipient, a spender, a
    delegate; None for a fee or a burn); ``kind`` what it is (transfer, approval, operator,
    delegation, fee, max_fee (an EVM transaction's worst case), burn, call, message); ``dollars`` its value in US dollars ("$5000") and
    ``usd`` how it was priced, or why it has no price (None: not asked). ``asset``,
    ``base_units`` and ``decimals`` are what it is priced by (an asset key of the policy's price
    feeds: ``native`` or chain:contract)."""

    kind: str
    amount: str
    units: str = ""
    to: str | None = None
    asset: str = ""
    base_units: int = 0
    decimals: int | None = None
    usd: str | None = None
    dollars: str | None = None

    def words(self) -> str:
        """The move in words: "2.5 ETH ($5000) to 0x...", "approval of 100 WUSD to spender 0x...", ..."""
        amount = self.amount if self.dollars is None else f"{self.amount} ({self.dollars})"
        return {
            "transfer": f"{amount} to {self.to}",
            "approval": f"approval of {amount} to spender {self.to}",
            "operator": f"{amount}, operator {self.to}",
            "delegation": f"the agent's account delegated to {self.to} (EIP-7702)",
            "fee": f"fee {amount}",
            "max_fee": f"fee up to {amount}",
            "burn": f"{amount} burned",
        }.get(self.kind, amount)

    def line(self) -> str:
        """`words`, then the amount exactly in base units and how it was priced (or why not)."""
        exact = f" [{self.units}]" if self.units else ""
        return self.words() + exact + ("" if self.usd is None else f", {self.usd}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "amount": self.amount,
            "units": self.units,
            "to": self.to,
            "dollars": self.dollars,
            "usd": self.usd,
        }


def headline(moves: Sequence[Move]) -> str:
    """What a person reads first: the first thing the intent moves that is not its fee (the fee
    when that is all), and how many such things more (the fee is listed below them)."""
    main = [m for m in moves if m.kind not in ("fee", "max_fee")] or list(moves)
    if not main:
        return "nothing Warden reads as moving value"
    more = len(main) - 1
    return main[0].words() + (f" (and {more} more below)" if more else "")


# -- the native unit and tokens ---------------------------------------------------------------------


def _native(chain: str, family: Family, units: int, to: str | None = None, kind: str = "transfer") -> Move:
    """``units`` of ``chain``'s native coin, in its currency."""
    form = FORMS[family]
    known = REGISTRY.all().get(chain)
    currency = known.currency if known is not None else f"(the native unit of {chain})"
    return Move(
        kind,
        f"{format_token_amount(units, form.native_decimals)} {currency}",
        f"{units} {form.base_unit}",
        to,
        NATIVE,
        units,
        form.native_decimals,
    )


def _units(amount: int, decimals: int | None, label: str, key: str, kind: str, to: str | None) -> Move:
    """``amount`` base units of a token: in its decimals when they are known, else as they are."""
    if decimals is None:
        return Move(kind, f"{amount} base units of {label} (its decimals are not in the policy)", "", to, key)
    shown = f"{format_token_amount(amount, decimals)} {label}"
    return Move(kind, shown, f"{amount} base units", to, key, amount, decimals)


# -- EVM ------------------------------------------------------------------------------------------


def _evm_token(chain: str, move: evm_movements.Movement, policy: AgentPolicy | None) -> Move:
    """A token movement, in the symbol and decimals of the policy's ``asset_limits`` entry."""
    listed = None if policy is None else policy.asset(chain, move.asset)
    label = listed.label if listed is not None else f"token {move.asset}"
    key = f"{chain}:{move.asset}"
    if move.kind == "operator":
        what = f"every {label} token the agent holds" if move.amount else f"no {label} token (operator revoked)"
        return Move("operator", what, "", move.to, key)
    if move.token_ids and move.standard != "erc1155":
        return Move(move.kind, f"{label} " + ", ".join(f"#{i}" for i in move.token_ids), "", move.to, key)
    return _units(move.amount, None if listed is None else listed.decimals, label, key, move.kind, move.to)


def _evm_reading(intent: TransactionIntent, policy: AgentPolicy | None) -> evm_movements.Reading:
    if intent.intent_type == "typed_data" and intent.typed_data is not None:
        return evm_movements.Reading(tuple(read_typed_data(intent.typed_data)))
    if policy is not None:
        return evm_movements.movements_of(intent, policy)
    # No policy in force to read calldata by: the value alone, and the call as a call.
    to = intent.to or ""
    value = evm_movements.Movement(NATIVE, "native", "transfer", None, to, intent.value_wei or 0)
    return evm_movements.Reading(
        (value,) if intent.value_wei else (), None if intent.data == "0x" else (to, intent.data[:10])
    )


def _fee_wei(parked: IntentParked) -> int | None:
    """The worst-case fee the fee stage priced (gas limit x the most per gas, blob gas included)."""
    for v in parked.verdicts:
        if v.stage == Stage.FEE and str(v.facts.get("max_fee_wei", "")).isdigit():
            return int(v.facts["max_fee_wei"])
    return None


def _evm_moves(parked: IntentParked, policy: AgentPolicy | None) -> list[Move]:
    intent = parked.intent
    if intent.intent_type == "personal_sign":
        size = (len(intent.message or "0x") - 2) // 2
        return [Move("message", f"a message of {size} bytes to sign (personal_sign), which moves nothing by itself")]
    try:
        reading = _evm_reading(intent, policy)
    except evm_movements.MalformedOperation as exc:
        return [Move("call", f"! what it moves cannot be read ({exc.reason}): do not approve it", to=intent.to)]
    moves = []
    for m in reading.movements:
        if m.asset == NATIVE:
            moves.append(_native(intent.chain, Family.EVM, m.amount, m.to))
        elif m.kind == "delegation":
            moves.append(Move("delegation", "", to=m.to))
        else:
            moves.append(_evm_token(intent.chain, m, policy))
    if reading.other_call is not None:
        contract, selector = reading.other_call
        moves.append(Move("call", f"a call to {contract} (selector {selector}), read as moving no token", to=contract))
    if intent.intent_type == "typed_data" and not moves and intent.typed_data is not None:
        moves.append(Move("message", f"an EIP-712 {intent.typed_data.primaryType} to sign, read as moving nothing"))
    fee = _fee_wei(parked)
    if fee:
        moves.append(_native(intent.chain, Family.EVM, fee, kind="max_fee"))
    return moves


# -- Solana ---------------------------------------------------------------------------------------


def _owners_read(parked: IntentParked) -> dict[int, str]:
    """Instruction index → the owner the worker's judge read for what it moves (its verdict's facts)."""
    owners = {}
    for v in parked.verdicts:
        if v.stage == Stage.SOLANA:
            for m in v.facts.get("movements", ()):
                if isinstance(m, dict) and isinstance(m.get("index"), int) and isinstance(m.get("owner"), str):
                    owners[m["index"]] = m["owner"]
    return owners


def _solana_moves(parked: IntentParked, policy: AgentPolicy | None) -> list[Move]:
    intent = parked.intent
    if intent.intent_type == "solana_message":
        return [Move("message", "a Solana off-chain message to sign, which moves nothing by itself")]
    try:
        tx = solana_transactions.read(base64.b64decode(intent.solana_transaction or "", validate=True))
    except (ValueError, binascii.Error) as exc:
        return [Move("call", f"! its transaction cannot be read ({exc}): do not approve it")]
    tokens = {} if policy is None or policy.solana is None else {t.mint: t for t in policy.solana.tokens}
    owners = _owners_read(parked)
    moves = []
    for ix in tx.instructions:
        if ix.amount is None:
            continue
        if ix.kind in (Kind.SOL_TRANSFER, Kind.CREATE_ACCOUNT):
            moves.append(_native(intent.chain, Family.SOLANA, ix.amount, ix.destination))
            continue
        if ix.kind not in (Kind.TOKEN_TRANSFER, Kind.TOKEN_APPROVE, Kind.TOKEN_BURN):
            continue
        token = tokens.get(ix.mint or "")
        label = (token.symbol or ix.mint) if token is not None else f"mint {ix.mint}" if ix.mint else "the token"
        kind = {Kind.TOKEN_TRANSFER: "transfer", Kind.TOKEN_APPROVE: "approval", Kind.TOKEN_BURN: "burn"}[ix.kind]
        to = ix.destination
        if to is not None and kind == "transfer":
            held = owners.get(ix.index)
            to = f"token account {to}" + (
                "" if held is None else f" (owner {held}, as the streams worker's node read it)"
            )
        decimals = token.decimals if token is not None else ix.decimals
        moves.append(_units(ix.amount, decimals, str(label), ix.mint or "", kind, to))
    agent = None if policy is None or policy.solana is None else policy.solana.address
    if tx.fee_payer == agent:
        moves.append(_native(intent.chain, Family.SOLANA, tx.fee_lamports, kind="fee"))
    return moves


# -- Bitcoin --------------------------------------------------------------------------------------


def _bitcoin_moves(parked: IntentParked, policy: AgentPolicy | None) -> list[Move]:
    intent = parked.intent
    try:
        psbt = psbts.summary(psbts.parse(base64.b64decode(intent.bitcoin_psbt or "", validate=True)))
    except (ValueError, binascii.Error) as exc:
        return [Move("call", f"! its PSBT cannot be read ({exc}): do not approve it")]
    own = (
        None
        if policy is None or policy.bitcoin is None
        else wallet.own_scripts(bytes.fromhex(policy.bitcoin.public_key))
    )
    network = btc_addresses.NETWORK_OF_CHAIN.get(intent.chain)
    moves = []
    for index, output in enumerate(psbt.outputs):
        if own is not None and own.owns(output.script):
            continue  # change: it stays in the agent's wallet
        address = None if network is None else btc_addresses.address_of(output.script, network)
        to = address or f"script {output.script.hex()} (output {index}; no address)"
        moves.append(_native(intent.chain, Family.BITCOIN, output.amount, to))
    fee = psbt.fee()
    if fee is not None and fee > 0:
        moves.append(_native(intent.chain, Family.BITCOIN, fee, kind="fee"))
    return moves


_BY_FAMILY = {Family.EVM: _evm_moves, Family.SOLANA: _solana_moves, Family.BITCOIN: _bitcoin_moves}


def moves_of(parked: IntentParked, policy: AgentPolicy | None) -> list[Move]:
    """What ``parked`` moves, read from its bytes (by ``policy``, the agent's in force; None: it has
    none), in the order its transaction moves it, the fee last."""
    return _BY_FAMILY[FAMILY_OF_KIND[parked.intent.intent_type]](parked, policy)


# -- prices ---------------------------------------------------------------------------------------


async def priced(
    settings: Settings, intent: TransactionIntent, policy: AgentPolicy | None, moves: list[Move], now: datetime
) -> list[Move]:
    """``moves`` with their value in US dollars: each amount the policy names a price feed for,
    priced by that feed now on the intent's network; why not, where it cannot be."""
    family = FAMILY_OF_KIND[intent.intent_type]
    if family != Family.EVM:
        return _unpriced(moves, f"Warden reads none for {_COINS[family]} or its tokens")
    if policy is None:
        return _unpriced(moves, "the agent has no policy in force")
    node: JsonRpc | None = None
    shown: list[Move] = []
    try:
        for m in moves:
            feed = None if m.decimals is None else policy.price_feed(intent.chain, m.asset)
            if feed is None or m.decimals is None:
                shown += _unpriced([m], "the policy names no feed for it")
                continue
            node = node or JsonRpc(settings.rpc_url_for(intent.chain))
            try:
                price = await read_price(node, feed, now, policy.price_max_age_s)
            except PriceRefused as exc:
                shown += _unpriced([m], exc.reason)
                continue
            usd = format_usd(usd_of(m.base_units, m.decimals, price))
            shown.append(replace(m, dollars=usd, usd=f"{usd} at feed {price.feed}, round {price.round_id}"))
    except NoRpc as exc:
        return _unpriced(moves, str(exc))
    finally:
        if node is not None:
            await node.close()
    return shown


_COINS = {Family.SOLANA: "SOL", Family.BITCOIN: "BTC"}


def _unpriced(moves: list[Move], why: str) -> list[Move]:
    """``moves``, each amount said to have no US dollar value, and why."""
    return [m if m.decimals is None else replace(m, usd=f"no USD price: {why}") for m in moves]


async def parked_moves(
    settings: Settings, waiting: Iterable[IntentParked], policies: Mapping[str, AgentPolicy | None], now: datetime
) -> dict[str, list[Move]]:
    """What each parked intent moves, priced (`moves_of`, `priced`), by intent id; ``policies``:
    each agent's policy in force."""
    found = {}
    for parked in waiting:
        policy = policies.get(parked.agent_id)
        found[parked.intent_id] = await priced(settings, parked.intent, policy, moves_of(parked, policy), now)
    return found
