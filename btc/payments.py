"""A plain payment written as a PSBT: ``amount`` satoshis to one script, from the agent's own
unspent outputs, its change back to its own P2WPKH script, the fee at a rate per virtual byte.

Coins are taken largest first until they cover the payment and the fee the transaction then
needs (a payment's cancellation, `cancellation`, the same way from the outputs it spends); change below the dust limit is left to the fee rather than made into an output nobody
can spend at a profit. Every input says the output it spends (witness_utxo) and signals BIP-125
replacement, so a payment that waits can be bumped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from btc import psbt as psbts
from btc.wallet import OwnScripts

# Below this an output to P2WPKH costs more to spend than it holds at 3 sat/vB (Bitcoin Core's
# dust threshold for P2WPKH is 294 satoshis): such change goes to the fee.
DUST_SATS = 546
RBF_SEQUENCE = 0xFFFFFFFD


class PaymentImpossible(ValueError):
    """The agent's outputs cannot pay it: the message says how much is there and how much is needed."""


@dataclass(frozen=True)
class Coin:
    """An unspent output of the agent's: where it is, what it holds, its script."""

    txid: str
    vout: int
    amount: int
    script: bytes


def payment(coins: Sequence[Coin], to: bytes, amount: int, own: OwnScripts, fee_rate: int) -> bytes:
    """The PSBT (serialized) paying ``amount`` satoshis to script ``to`` from ``coins`` (each the
    agent's: ``own``), at ``fee_rate`` satoshis per virtual byte."""
    if amount <= 0:
        raise PaymentImpossible(f"the amount must be above zero satoshis, not {amount}")
    chosen: list[Coin] = []
    for coin in sorted(coins, key=lambda c: (-c.amount, c.txid, c.vout)):
        chosen.append(coin)
        raw = _draft(chosen, to, amount, own, fee_rate)
        if raw is not None:
            return raw
    held = sum(c.amount for c in coins)
    raise PaymentImpossible(
        f"the wallet holds {held} satoshis in {len(coins)} unspent outputs, and paying {amount} with its fee "
        f"at {fee_rate} sat/vB needs more: fund it first"
    )


def cancellation(coins: Sequence[Coin], own: OwnScripts, fee_of: Callable[[int], int]) -> bytes:
    """The PSBT (serialized) spending ``coins`` (outputs a payment spends: the largest first, as
    few as pay the fee) back to the agent's own P2WPKH script, paying ``fee_of(its vsize)``: once
    it is in a block, the payment can never be."""
    chosen: list[Coin] = []
    for coin in sorted(coins, key=lambda c: (-c.amount, c.txid, c.vout)):
        chosen.append(coin)
        fee = fee_of(psbts.vsize(psbts.read(_psbt(chosen, [(own.p2wpkh, 0)])), own))
        back = sum(c.amount for c in chosen) - fee
        if back >= DUST_SATS:
            return _psbt(chosen, [(own.p2wpkh, back)])
    raise PaymentImpossible(
        f"the {len(coins)} outputs the payment spends hold {sum(c.amount for c in coins)} satoshis, too little to "
        "pay a cancellation's fee and keep an output above the dust limit"
    )


def _draft(chosen: list[Coin], to: bytes, amount: int, own: OwnScripts, fee_rate: int) -> bytes | None:
    """The PSBT spending ``chosen``, or None when they do not cover the payment and its fee."""
    held = sum(c.amount for c in chosen)
    # A transaction's size does not depend on its amounts: priced with none, so a draft that
    # pays more than its coins hold is still read.
    fee = fee_rate * psbts.vsize(psbts.read(_psbt(chosen, [(to, 0), (own.p2wpkh, 0)])), own)
    change = held - amount - fee
    if change >= DUST_SATS:
        return _psbt(chosen, [(to, amount), (own.p2wpkh, change)])
    if held - amount >= fee_rate * psbts.vsize(psbts.read(_psbt(chosen, [(to, 0)])), own):
        return _psbt(chosen, [(to, amount)])
    return None


def _psbt(coins: Sequence[Coin], outputs: Sequence[tuple[bytes, int]]) -> bytes:
    tx = Transaction(
        version=2,
        vin=[TransactionInput(bytes.fromhex(c.txid), c.vout, sequence=RBF_SEQUENCE) for c in coins],
        vout=[TransactionOutput(value, Script(script)) for script, value in outputs],
    )
    psbt = PSBT(tx)
    for scope, coin in zip(psbt.inputs, coins, strict=True):
        scope.witness_utxo = TransactionOutput(coin.amount, Script(coin.script))
    serialized: bytes = psbt.serialize()
    return serialized
