"""The Bitcoin judge (`rules.bitcoin.judge`) on PSBTs written with embit: each rule tried around,
with the chain's view of the inputs given as the caller reads it from its node; and the policy's
bounds in satoshis."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest
from embit import ec, script
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from pydantic import ValidationError

from btc import addresses, wallet
from btc import psbt as psbts
from rules.bitcoin import MAX_INPUTS, BitcoinVerdict, fee_rate_refused, judge
from schemas.chains import Family
from schemas.codes import Code
from schemas.policy import BitcoinPolicy
from sdk.policies import PolicyInvalid, unsigned_policy

CHAIN = "bitcoin-regtest"
KEY = ec.PrivateKey(bytes.fromhex("11" * 32)).get_public_key().sec()
OWN = wallet.own_scripts(KEY)
BOB = script.p2wpkh(ec.PrivateKey(bytes.fromhex("22" * 32)).get_public_key())
BOB_ADDRESS = BOB.address(NETWORKS["regtest"])
MALLORY = script.p2wpkh(ec.PrivateKey(bytes.fromhex("33" * 32)).get_public_key())
COIN = 50_000_000


def _policy(**fields: object) -> BitcoinPolicy:
    return BitcoinPolicy.model_validate(
        {"public_key": KEY.hex(), "allowlist": [BOB_ADDRESS], "max_sats_per_tx": 20_000_000, **fields}
    )


def _psbt(
    outputs: Sequence[tuple[bytes, int]],
    inputs: Sequence[tuple[bytes, int]] = ((OWN.p2wpkh, COIN),),
    sighash: int | None = None,
) -> psbts.Psbt:
    txids = [os.urandom(32) for _ in inputs]
    tx = Transaction(
        version=2,
        vin=[TransactionInput(txid, 0, sequence=0xFFFFFFFD) for txid in txids],
        vout=[TransactionOutput(amount, script.Script(spk)) for spk, amount in outputs],
    )
    psbt = PSBT(tx)
    for scope, (spk, amount) in zip(psbt.inputs, inputs, strict=True):
        scope.witness_utxo = TransactionOutput(amount, script.Script(spk))
        if sighash is not None:
            scope.sighash_type = sighash
    return psbts.read(psbt.serialize())


def _held(psbt: psbts.Psbt) -> dict[tuple[str, int], psbts.Output | None]:
    assert all(i.amount is not None and i.script is not None for i in psbt.inputs)
    return {(i.txid, i.vout): psbts.Output(i.script or b"", i.amount or 0) for i in psbt.inputs}


def _judge(
    psbt: psbts.Psbt,
    policy: BitcoinPolicy | None = None,
    spent: int = 0,
    held: dict[tuple[str, int], psbts.Output | None] | None = None,
) -> BitcoinVerdict:
    return judge(
        psbt,
        public_key=KEY.hex(),
        chain=CHAIN,
        allowed_chains=(CHAIN,),
        policy=policy or _policy(),
        held=_held(psbt) if held is None else held,
        spent=spent,
    )


def test_a_payment_to_bob_with_change_spends_the_payment_and_the_fee() -> None:
    psbt = _psbt([(BOB.data, 10_000_000), (OWN.p2wpkh, COIN - 10_000_000 - 1_000)])
    verdict = judge(
        psbt, public_key=KEY.hex(), chain=CHAIN, allowed_chains=(CHAIN,), policy=_policy(), held=_held(psbt), spent=0
    )
    assert verdict.passed and verdict.code == Code.BITCOIN_ALLOWED, verdict.reason
    assert verdict.spend == 10_001_000 and verdict.facts["payments"] == [(BOB_ADDRESS, 10_000_000)]


def test_an_own_taproot_input_and_change_are_the_agents() -> None:
    psbt = _psbt([(BOB.data, 1_000), (OWN.p2tr, COIN - 2_000)], inputs=[(OWN.p2tr, COIN)], sighash=0)
    verdict = _judge(psbt)
    assert verdict.passed, verdict.reason
    assert verdict.spend == 2_000


@pytest.mark.parametrize(
    ("psbt", "code", "words"),
    [
        (
            _psbt([(MALLORY.data, 1_000), (OWN.p2wpkh, COIN - 2_000)]),
            Code.RECIPIENT_NOT_ALLOWLISTED,
            "output 0 pays 1000 satoshis to bcrt1q",
        ),
        (
            _psbt([(BOB.data, 1_000), (MALLORY.data, COIN - 2_000)]),  # "change" to a foreign script
            Code.RECIPIENT_NOT_ALLOWLISTED,
            "output 1 pays",
        ),
        (_psbt([(BOB.data, 1_000)], inputs=[(MALLORY.data, COIN)]), Code.BITCOIN_INPUT_NOT_OWNED, "input 0 ("),
        (_psbt([(BOB.data, 1_000), (OWN.p2wpkh, COIN - 200_000)]), Code.BITCOIN_FEE_OVER_CEILING, "199000 satoshis"),
        (_psbt([(BOB.data, 25_000_000), (OWN.p2wpkh, COIN - 25_001_000)]), Code.VALUE_OVER_CAP, "the cap is 20000000"),
        (_psbt([(BOB.data, 1_000), (OWN.p2wpkh, COIN - 1_500)], sighash=2), Code.BITCOIN_SIGHASH_NOT_ALLOWED, "type 2"),
        (
            _psbt([(BOB.data, 1_000), (OWN.p2wpkh, COIN - 1_500)], sighash=0x81),
            Code.BITCOIN_SIGHASH_NOT_ALLOWED,
            "ALL (1)",
        ),
        (_psbt([(b"\x6a\x04abcd", 0), (OWN.p2wpkh, COIN - 1_000)]), Code.BITCOIN_OUTPUT_NOT_ADDRESS, "output 0"),
    ],
)
def test_what_the_policy_does_not_allow_is_refused_by_name(psbt: psbts.Psbt, code: Code, words: str) -> None:
    verdict = _judge(psbt)
    assert not verdict.passed and verdict.code == code, verdict.reason
    assert words in verdict.reason


def test_the_fee_rate_is_bounded_as_well_as_the_fee() -> None:
    psbt = _psbt([(BOB.data, 1_000), (OWN.p2wpkh, COIN - 1_000 - 30_000)])  # ~141 vB: over 200 sat/vB
    verdict = _judge(psbt, _policy(max_fee_rate_sat_vb=100))
    assert verdict.code == Code.BITCOIN_FEE_RATE_OVER_CEILING, verdict.reason
    assert _judge(psbt, _policy(max_fee_rate_sat_vb=1_000)).passed


def test_the_rolling_limit_counts_what_was_spent_before() -> None:
    psbt = _psbt([(BOB.data, 10_000_000), (OWN.p2wpkh, COIN - 10_001_000)])
    policy = _policy(daily_limit_sats=15_000_000)
    assert _judge(psbt, policy, spent=4_999_000).passed
    refused = _judge(psbt, policy, spent=5_000_000)
    assert refused.code == Code.DAILY_LIMIT_EXCEEDED, refused.reason


def test_an_input_the_chain_does_not_hold_as_the_psbt_says_is_refused() -> None:
    psbt = _psbt([(BOB.data, 1_000), (OWN.p2wpkh, COIN - 2_000)])
    (outpoint,) = _held(psbt)
    spent_already = _judge(psbt, held={outpoint: None})
    assert spent_already.code == Code.BITCOIN_INPUT_UNKNOWN
    assert "holds no unspent output" in spent_already.reason
    # The PSBT understates the input (a fee that looks small): the chain's amount is believed.
    larger = _judge(psbt, held={outpoint: psbts.Output(OWN.p2wpkh, COIN * 2)})
    assert larger.code == Code.BITCOIN_INPUT_UNKNOWN and "the chain holds 100000000" in larger.reason


def test_no_bitcoin_section_refuses_every_bitcoin_intent() -> None:
    psbt = _psbt([(BOB.data, 1_000), (OWN.p2wpkh, COIN - 2_000)])
    verdict = judge(psbt, public_key=KEY.hex(), chain=CHAIN, allowed_chains=(CHAIN,), policy=None, held={}, spent=0)
    assert verdict.code == Code.BITCOIN_NOT_ENABLED


def test_an_address_of_another_network_on_the_allowlist_does_not_allow_the_same_script_here() -> None:
    mainnet_bob = addresses.address_of(BOB.data, "main")
    assert mainnet_bob is not None and mainnet_bob.startswith("bc1q")
    psbt = _psbt([(BOB.data, 1_000), (OWN.p2wpkh, COIN - 2_000)])
    verdict = _judge(psbt, _policy(allowlist=[mainnet_bob]))
    assert verdict.code == Code.RECIPIENT_NOT_ALLOWLISTED


# Bitcoin Core's dust thresholds at its dust relay fee of 3 sat/vB (src/policy/policy.cpp), as its
# comments and docs give them, for each kind of address an output can pay.
_P2PKH = bytes.fromhex("76a914") + bytes(20) + bytes.fromhex("88ac")
_P2SH = bytes.fromhex("a914") + bytes(20) + bytes.fromhex("87")
_P2WSH = bytes.fromhex("0020") + bytes(32)


@pytest.mark.parametrize(
    ("paid", "least"),
    [(BOB.data, 294), (OWN.p2tr, 330), (_P2WSH, 330), (_P2PKH, 546), (_P2SH, 540), (OWN.p2wpkh, 294)],
)
def test_an_output_below_the_dust_threshold_of_its_script_is_refused(paid: bytes, least: int) -> None:
    """Dust: a payment (or change) worth less than spending it costs, which nodes do not relay."""
    allowed = [addresses.address_of(s, "regtest") for s in (BOB.data, _P2WSH, _P2PKH, _P2SH)]
    policy = _policy(allowlist=allowed)
    below = _judge(_psbt([(paid, least - 1), (OWN.p2wpkh, COIN - least - 1_000)]), policy)
    assert (below.passed, below.code, below.facts["least"]) == (False, Code.BITCOIN_OUTPUT_DUST, least), below.reason
    assert f"output 0 pays {least - 1} satoshis, below the dust threshold of {least}" in below.reason
    at = _judge(_psbt([(paid, least), (OWN.p2wpkh, COIN - least - 1_000)]), policy)
    assert at.passed, at.reason
    one_sat = _judge(_psbt([(BOB.data, 10_000), (paid, 1), (OWN.p2wpkh, COIN - 20_000)]), policy)
    assert (one_sat.code, one_sat.facts["output"]) == (Code.BITCOIN_OUTPUT_DUST, 1), one_sat.reason


def test_more_inputs_than_are_read_are_refused() -> None:
    most = _psbt([(BOB.data, MAX_INPUTS * 10_000 - 50_000)], inputs=[(OWN.p2wpkh, 10_000)] * MAX_INPUTS)
    assert _judge(most).passed
    over = _psbt([(BOB.data, MAX_INPUTS * 10_000 - 50_000)], inputs=[(OWN.p2wpkh, 10_000)] * (MAX_INPUTS + 1))
    refused = _judge(over, held={})
    assert (refused.code, refused.facts) == (Code.BITCOIN_TOO_MANY_INPUTS, {"inputs": 501, "most": 500})


@pytest.mark.parametrize(("fee", "refused"), [(1_410, False), (1_411, True)])
def test_the_fee_rate_is_held_to_the_ceiling_on_an_exact_size(fee: int, refused: bool) -> None:
    """`fee_rate_refused`, which the judge asks of the size it counts and the signer of the size it
    signed: at most the ceiling times the virtual size, to the satoshi."""
    verdict = fee_rate_refused(_policy(max_fee_rate_sat_vb=10), fee, 141, Code.BITCOIN_SIGNED_FEE_RATE_OVER_CEILING)
    assert (verdict is not None) == refused
    if verdict is not None:
        assert verdict.code == Code.BITCOIN_SIGNED_FEE_RATE_OVER_CEILING
        assert verdict.facts == {"fee_sats": 1_411, "vsize": 141, "fee_rate_sat_vb": 11}


def test_a_cap_above_every_bitcoin_there_is_is_refused_in_the_policy() -> None:
    for field in ("max_sats_per_tx", "daily_limit_sats", "approval_threshold_sats", "max_fee_sats"):
        assert getattr(_policy(**{field: str(psbts.MAX_MONEY)}), field) == psbts.MAX_MONEY
        with pytest.raises(ValidationError) as refused:
            _policy(**{field: str(psbts.MAX_MONEY + 1)})
        (error,) = refused.value.errors()
        assert error["loc"] == (field,), error
        assert "at most 2100000000000000 satoshis (21,000,000 BTC" in error["msg"]
    # As `warden agents create --chains bitcoin-regtest --max-value 21000000.00000001` writes it.
    fields = {"tx_allowed_chains": (CHAIN,), "tx_max_value_eth": "21000000.00000001"}
    with pytest.raises(PolicyInvalid, match=r"bitcoin\.max_sats_per_tx: must be at most 2100000000000000 satoshis"):
        unsigned_policy("a", None, "ab" * 32, fields, datetime.now(timezone.utc), own={Family.BITCOIN: KEY.hex()})
