"""A plain payment written as a PSBT (`btc.payments`): coins largest first, change back to the
agent unless it is dust, the fee at the rate asked for the signed size, and a PSBT the signer
signs into a transaction of exactly the size it was priced at; and a payment's cancellation, its
coins spent back to the agent at the fee asked."""

from __future__ import annotations

import os

import pytest

from btc import payments, signing
from btc import psbt as psbts
from tests.btc_support import OTHER, OWN, seed


def _coin(amount: int) -> payments.Coin:
    return payments.Coin(os.urandom(32).hex(), 0, amount, OWN.p2wpkh)


def test_a_payment_takes_the_largest_coin_first_and_returns_the_change() -> None:
    coins = [_coin(30_000), _coin(5_000_000), _coin(200_000)]
    psbt = psbts.read(payments.payment(coins, OTHER.p2wpkh, 1_000_000, OWN, fee_rate=3))
    assert [(i.txid, i.amount) for i in psbt.inputs] == [(coins[1].txid, 5_000_000)]
    assert psbt.signals_rbf
    (paid, change) = psbt.outputs
    assert (paid.script, paid.amount) == (OTHER.p2wpkh, 1_000_000) and change.script == OWN.p2wpkh
    fee = psbt.fee()
    assert fee == 3 * psbts.vsize(psbt, OWN) and change.amount == 5_000_000 - 1_000_000 - fee
    signed = signing.sign(payments.payment(coins, OTHER.p2wpkh, 1_000_000, OWN, fee_rate=3), seed())
    assert signed.vsize == psbts.vsize(psbt, OWN)  # priced at the size signed: the rate asked is the rate paid


def test_coins_are_added_until_they_cover_the_payment_and_its_fee() -> None:
    coins = [_coin(600_000), _coin(500_000)]
    psbt = psbts.read(payments.payment(coins, OTHER.p2wpkh, 1_000_000, OWN, fee_rate=2))
    assert len(psbt.inputs) == 2 and psbt.outputs[0].amount == 1_000_000


def test_change_below_the_dust_limit_goes_to_the_fee() -> None:
    psbt = psbts.read(payments.payment([_coin(1_000_500)], OTHER.p2wpkh, 1_000_000, OWN, fee_rate=1))
    assert [o.script for o in psbt.outputs] == [OTHER.p2wpkh] and psbt.fee() == 500


@pytest.mark.parametrize(("amount", "words"), [(2_000_000, "holds 1000000 satoshis in 1"), (0, "above zero")])
def test_what_the_coins_cannot_pay_is_refused_saying_how_much_is_there(amount: int, words: str) -> None:
    with pytest.raises(payments.PaymentImpossible, match=words):
        payments.payment([_coin(1_000_000)], OTHER.p2wpkh, amount, OWN, fee_rate=2)


def test_a_cancellation_spends_the_largest_coin_back_to_the_agent_paying_more_than_the_payment() -> None:
    coins = [_coin(40_000), _coin(900_000)]
    psbt = psbts.read(payments.cancellation(coins, OWN, lambda vsize: 282 + 2 * vsize))
    assert [i.txid for i in psbt.inputs] == [coins[1].txid] and psbt.signals_rbf
    (back,) = psbt.outputs
    assert back.script == OWN.p2wpkh and psbt.fee() == 282 + 2 * psbts.vsize(psbt, OWN)
    assert back.amount == 900_000 - (psbt.fee() or 0)


def test_a_cancellation_takes_more_of_the_payments_coins_when_one_cannot_pay_its_fee() -> None:
    coins = [_coin(900), _coin(800)]
    psbt = psbts.read(payments.cancellation(coins, OWN, lambda vsize: 400 + vsize))
    assert len(psbt.inputs) == 2 and psbt.outputs[0].amount >= payments.DUST_SATS
    with pytest.raises(payments.PaymentImpossible, match="too little to pay a cancellation's fee"):
        payments.cancellation([_coin(900)], OWN, lambda vsize: 800)
