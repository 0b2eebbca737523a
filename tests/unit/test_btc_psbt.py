"""btc.psbt: what a PSBT (written by embit, as a wallet writes it) says, and every PSBT Warden does
not read refused with `PsbtInvalid` saying what is wrong; no bytes make `read` raise anything else
(hypothesis: random bytes and mutations of valid PSBTs)."""

from __future__ import annotations

import base64

import pytest
from embit.psbt import PSBT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from btc import psbt as btc_psbt
from btc.psbt import MAX_PSBT_BYTES, PsbtInvalid, read, vsize
from tests.btc_support import (
    FINAL,
    MAX_MONEY,
    OTHER,
    OWN,
    RBF,
    Spend,
    funding,
    kv,
    mutated,
    psbt,
    txid,
    unsigned_tx,
)

PREV = funding((50_000, OWN.p2wpkh), (70_000, OWN.p2tr), (30_000, OWN.p2wpkh))
PAYEE = OTHER.p2wpkh


def _spends() -> list[Spend]:
    return [
        Spend(PREV, 0),  # P2WPKH, witness_utxo
        Spend(PREV, 1, sequence=FINAL),  # P2TR
        Spend(PREV, 2, witness_utxo=False, non_witness_utxo=True, sequence=FINAL),  # P2WPKH, legacy field
    ]


OUTPUTS = [(120_000, PAYEE), (29_000, OWN.p2tr)]


def test_a_psbt_reads_as_its_transaction() -> None:
    spends = _spends()
    got = read(psbt(spends, OUTPUTS, locktime=850_000))
    assert got.txid == txid(unsigned_tx(spends, OUTPUTS, locktime=850_000))
    assert (got.version, got.locktime) == (2, 850_000)
    prev_id = txid(bytes(PREV.serialize()))  # hashed here; the funding transaction has no witnesses
    assert [(i.txid, i.vout, i.sequence) for i in got.inputs] == [
        (prev_id, 0, RBF),
        (prev_id, 1, FINAL),
        (prev_id, 2, FINAL),
    ]
    assert [(i.amount, i.script) for i in got.inputs] == [
        (50_000, OWN.p2wpkh),
        (70_000, OWN.p2tr),
        (30_000, OWN.p2wpkh),  # from the non_witness_utxo
    ]
    assert all(i.sighash is None and not i.has_signatures for i in got.inputs)
    assert [(o.script, o.amount) for o in got.outputs] == [(PAYEE, 120_000), (OWN.p2tr, 29_000)]
    assert got.fee() == 150_000 - 149_000
    assert got.signals_rbf  # input 0's sequence is below 0xfffffffe


def test_rbf_is_any_sequence_below_0xfffffffe() -> None:
    for sequence, signals in ((FINAL, False), (0xFFFFFFFE, False), (RBF, True), (1, True)):
        got = read(psbt([Spend(PREV, 0, sequence=sequence)], [(49_000, PAYEE)]))
        assert got.signals_rbf is signals


def test_an_unknown_amount_makes_the_fee_unknown() -> None:
    got = read(psbt([Spend(PREV, 0), Spend(PREV, 1, witness_utxo=False)], [(100_000, PAYEE)]))
    assert got.inputs[1].amount is None and got.inputs[1].script is None
    assert got.fee() is None


@pytest.mark.parametrize("sighash", [0x00, 0x01, 0x02, 0x03, 0x81, 0x83])
def test_the_sighash_type_is_read_as_given(sighash: int) -> None:
    got = read(psbt([Spend(PREV, 1, sighash=sighash)], [(69_000, PAYEE)]))
    assert got.inputs[0].sighash == sighash


@pytest.mark.parametrize(
    "field",
    [
        b"\x02" + bytes.fromhex("0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c"),  # partial sig
        b"\x13",  # PSBT_IN_TAP_KEY_SIG (embit keeps it as an unknown field)
        b"\x08",  # PSBT_IN_FINAL_SCRIPTWITNESS
    ],
)
def test_a_signature_already_present_is_seen(field: bytes) -> None:
    value = b"\x01\x40" + bytes(64) if field == b"\x08" else bytes(64)
    got = read(psbt([Spend(PREV, 1), Spend(PREV, 0, extra={field: value})], [(100_000, PAYEE)]))
    assert [i.has_signatures for i in got.inputs] == [False, True]


def test_a_v2_psbt_reads_as_the_same_transaction() -> None:
    spends = _spends()
    v0 = read(psbt(spends, OUTPUTS))
    v2_bytes = psbt(spends, OUTPUTS, psbt_version=2)
    assert b"\x01\xfb\x04\x02\x00\x00\x00" in v2_bytes  # PSBT_GLOBAL_VERSION 2: embit writes BIP-370
    assert read(v2_bytes) == v0


def _v2(globals_: bytes, inputs: list[bytes], outputs: list[bytes]) -> bytes:
    head = kv(b"\xfb", (2).to_bytes(4, "little")) + globals_
    return b"psbt\xff" + head + b"\x00" + b"".join(m + b"\x00" for m in inputs + outputs)


_TXID = PREV.txid()[::-1]
_IN = kv(b"\x0e", _TXID) + kv(b"\x0f", (0).to_bytes(4, "little")) + kv(b"\x01", PREV.vout[0].serialize())
_OUT = kv(b"\x03", (49_000).to_bytes(8, "little")) + kv(b"\x04", PAYEE)
_COUNTS = kv(b"\x04", b"\x01") + kv(b"\x05", b"\x01")
_TXV = kv(b"\x02", (2).to_bytes(4, "little"))


def test_a_hand_written_v2_psbt_reads() -> None:
    got = read(_v2(_TXV + _COUNTS, [_IN], [_OUT]))
    assert got.inputs[0].txid == PREV.txid().hex() and got.inputs[0].sequence == FINAL  # BIP-370's default
    assert got.fee() == 1_000 and got.locktime == 0


@pytest.mark.parametrize(
    "globals_, inputs, outputs, why",
    [
        (_COUNTS, [_IN], [_OUT], "must carry PSBT_GLOBAL_TX_VERSION"),
        (_TXV + kv(b"\x04", b"\x01"), [_IN], [_OUT], "must carry PSBT_GLOBAL_OUTPUT_COUNT"),
        (kv(b"\x02", (1).to_bytes(4, "little")) + _COUNTS, [_IN], [_OUT], "version must be 2 or more"),
        (kv(b"\x02", b"\x02") + _COUNTS, [_IN], [_OUT], "TX_VERSION must be 4 bytes"),
        (_TXV + kv(b"\x04", b"\xfe\xff\xff\xff\x7f") + kv(b"\x05", b"\x01"), [_IN], [_OUT], "more than"),
        (_TXV + _COUNTS, [_IN + kv(b"\x11", (500_000_000).to_bytes(4, "little"))], [_OUT], "FALLBACK_LOCKTIME"),
        (_TXV + _COUNTS, [_IN + kv(b"\x12", (800_000).to_bytes(4, "little"))], [_OUT], "REQUIRED_HEIGHT_LOCKTIME"),
        (_TXV + _COUNTS, [kv(b"\x0f", bytes(4))], [_OUT], "PSBT_IN_PREVIOUS_TXID"),
        (_TXV + _COUNTS, [kv(b"\x0e", _TXID[:31]) + kv(b"\x0f", bytes(4))], [_OUT], "32 bytes"),
        (_TXV + _COUNTS, [_IN], [kv(b"\x04", PAYEE)], "PSBT_OUT_AMOUNT"),
        (_TXV + _COUNTS, [_IN + kv(b"\x10", bytes(4))], [_OUT], "sequence of 0"),
        (_TXV + _COUNTS + kv(b"\x00", b"\x00"), [_IN], [_OUT], "must not carry PSBT_GLOBAL_UNSIGNED_TX"),
    ],
)
def test_a_v2_psbt_warden_does_not_read_is_refused(
    globals_: bytes, inputs: list[bytes], outputs: list[bytes], why: str
) -> None:
    with pytest.raises(PsbtInvalid, match=why):
        read(_v2(globals_, inputs, outputs))


def test_psbt_version_1_is_refused() -> None:
    raw = psbt([Spend(PREV, 0)], [(49_000, PAYEE)])
    versioned = raw[:5] + kv(b"\xfb", (1).to_bytes(4, "little")) + raw[5:]
    with pytest.raises(PsbtInvalid, match="PSBT version 1 is not one Warden reads"):
        read(versioned)


@pytest.mark.parametrize(
    "extra, why",
    [
        ({b"\x0e": bytes(32)}, "must not carry PSBT_IN_PREVIOUS_TXID"),  # embit would take it over the tx's
        ({b"\x10": bytes(4)}, "must not carry PSBT_IN_SEQUENCE"),
    ],
)
def test_a_v0_psbt_with_v2_fields_is_refused(extra: dict[bytes, bytes], why: str) -> None:
    with pytest.raises(PsbtInvalid, match=why):
        read(psbt([Spend(PREV, 0, extra=extra)], [(49_000, PAYEE)]))


def test_a_non_witness_utxo_of_another_transaction_is_refused() -> None:
    other = funding((50_000, OWN.p2wpkh), salt=7)
    raw = psbt([Spend(PREV, 0, witness_utxo=False)], [(49_000, PAYEE)])
    parsed = PSBT.parse(raw)
    parsed.inputs[0].non_witness_utxo = other
    with pytest.raises(PsbtInvalid, match=f"non_witness_utxo is transaction {other.txid().hex()}"):
        read(parsed.serialize())


def test_witness_and_non_witness_utxo_that_disagree_are_refused() -> None:
    raw = psbt([Spend(PREV, 0, non_witness_utxo=True)], [(49_000, PAYEE)])
    assert read(raw).inputs[0].amount == 50_000  # both given and agreeing
    parsed = PSBT.parse(raw)
    parsed.inputs[0].witness_utxo = PREV.vout[2]  # 30 000 sats, not output 0's 50 000
    with pytest.raises(PsbtInvalid, match="witness_utxo and non_witness_utxo disagree"):
        read(parsed.serialize())


def test_a_non_witness_utxo_without_the_spent_output_is_refused() -> None:
    with pytest.raises(PsbtInvalid, match="has no output 5"):
        read(psbt([Spend(PREV, 5, witness_utxo=False, non_witness_utxo=True)], [(1_000, PAYEE)]))


def test_duplicate_inputs_are_refused() -> None:
    with pytest.raises(PsbtInvalid, match="inputs 0 and 2 spend the same output"):
        read(psbt([Spend(PREV, 0), Spend(PREV, 1), Spend(PREV, 0)], [(100_000, PAYEE)]))


@pytest.mark.parametrize(
    "spends, outputs, why",
    [
        ([Spend(PREV, 0)], [], "no outputs"),
        ([Spend(PREV, 0)], [(MAX_MONEY + 1, PAYEE)], "output 0: it pays 2100000000000001 sats"),
        ([Spend(PREV, 0, witness_utxo=False)], [(MAX_MONEY, PAYEE), (MAX_MONEY, PAYEE)], "together"),
        ([Spend(PREV, 0)], [(50_001, PAYEE)], "more than the 50000 the inputs spend"),
    ],
)
def test_amounts_and_counts_that_cannot_be_are_refused(
    spends: list[Spend], outputs: list[tuple[int, bytes]], why: str
) -> None:
    with pytest.raises(PsbtInvalid, match=why):
        read(psbt(spends, outputs))


def test_an_input_amount_over_21e6_btc_is_refused() -> None:
    rich = funding((MAX_MONEY + 1, OWN.p2wpkh))
    with pytest.raises(PsbtInvalid, match="input 0: it spends 2100000000000001 sats"):
        read(psbt([Spend(rich, 0)], [(1_000, PAYEE)]))


def _with_unsigned_tx(spends: list[Spend], outputs: list[tuple[int, bytes]], unsigned: bytes) -> bytes:
    """embit's PSBT of the transaction, its unsigned transaction replaced by ``unsigned``."""
    raw = psbt(spends, outputs)
    written = unsigned_tx(spends, outputs)
    assert kv(b"\x00", written) in raw
    return raw.replace(kv(b"\x00", written), kv(b"\x00", unsigned))


def test_the_unsigned_transaction_must_be_as_embit_writes_it() -> None:
    # embit writes a sequence of 0 as 0xffffffff and a version of 0 as 2 (so it cannot write
    # these PSBTs itself); it would sign a transaction other than the one given.
    spends, outputs = [Spend(PREV, 0, sequence=FINAL)], [(49_000, PAYEE)]
    tx = unsigned_tx(spends, outputs)
    sequence_0 = tx.replace(FINAL.to_bytes(4, "little"), bytes(4))
    with pytest.raises(PsbtInvalid, match="no input's sequence may be 0"):
        read(_with_unsigned_tx(spends, outputs, sequence_0))
    with pytest.raises(PsbtInvalid, match="version of 0"):
        read(_with_unsigned_tx(spends, outputs, bytes(4) + tx[4:]))
    # BIP-174: the unsigned transaction's scriptSigs are empty.
    at = tx.index(b"\x00" + FINAL.to_bytes(4, "little"))  # input 0's empty scriptSig
    with pytest.raises(PsbtInvalid, match="its scriptSigs must be empty"):
        read(_with_unsigned_tx(spends, outputs, tx[:at] + b"\x01\x51" + tx[at + 1 :]))
    with pytest.raises(PsbtInvalid, match="no inputs"):
        read(_with_unsigned_tx(spends, outputs, tx[:4] + b"\x00" + tx[-(4 + 1 + 8 + 1 + 22) :]))


@pytest.mark.parametrize(
    "raw, why",
    [
        (b"", "not a PSBT"),
        (b"psbt", "not a PSBT"),
        (b"\x70\x73\x62\x74\xfe\x00", "not a PSBT"),
        (base64.b64encode(b"psbt\xff\x00"), "that is its base64 text"),
        (b"psbt\xff", "ends before"),
        (b"psbt\xff\x01\x00\xff\xff", "ends before"),
        (b"psbt\xff\x00", "must carry its unsigned transaction"),
        (b"psbt\xff" + kv(b"\x00", b"\x02\x00") + b"\x00", "does not parse"),
        (b"psbt\xff" + kv(b"\x07", b"") + kv(b"\x07", b"") + b"\x00", "the key 07 twice"),
        (bytes(MAX_PSBT_BYTES + 1), f"Warden reads at most {MAX_PSBT_BYTES}"),
    ],
)
def test_bytes_that_are_not_a_psbt_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(PsbtInvalid, match=why):
        read(raw)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(PsbtInvalid, match="does not parse|follow the PSBT"):
        read(psbt([Spend(PREV, 0)], [(49_000, PAYEE)]) + b"\x00")


def test_only_bytes_are_read() -> None:
    text: object = base64.b64encode(psbt([Spend(PREV, 0)], [(49_000, PAYEE)])).decode()
    with pytest.raises(PsbtInvalid, match="a PSBT is bytes, not a str"):
        read(text)  # type: ignore[arg-type]  # base64 text, on purpose


def test_vsize_counts_each_own_input_signed() -> None:
    spends, outputs = _spends(), OUTPUTS
    got = read(psbt(spends, outputs))
    base = len(unsigned_tx(spends, outputs))
    # BIP-141: the witness (marker and flag, then per input) at 1 weight unit a byte. P2WPKH: 2
    # items, a 71-byte signature (as btc.signing makes it) and a 33-byte key; P2TR key path: 1 item
    # of 64 bytes.
    witness = 2 + (1 + 1 + 71 + 1 + 33) * 2 + (1 + 1 + 64)
    assert vsize(got, OWN) == -(-(4 * base + witness) // 4)
    # SIGHASH_ALL on the P2TR input adds its byte to the signature.
    with_all = read(psbt([Spend(PREV, 1, sighash=1)], [(69_000, PAYEE)]))
    plain = read(psbt([Spend(PREV, 1)], [(69_000, PAYEE)]))
    assert vsize(with_all, OWN) * 4 - vsize(plain, OWN) * 4 in (0, 4)
    assert vsize(with_all, OWN) >= vsize(plain, OWN)


def test_vsize_refuses_an_input_of_another_script() -> None:
    foreign = funding((10_000, OTHER.p2wpkh), salt=3)
    got = read(psbt([Spend(PREV, 0), Spend(foreign, 0)], [(59_000, PAYEE)]))
    with pytest.raises(ValueError, match="input 1 does not spend the agent's own"):
        vsize(got, OWN)


# --------------------------------------------------------------------------
# No bytes raise anything but PsbtInvalid
# --------------------------------------------------------------------------

_VALID = [
    psbt(_spends(), OUTPUTS),
    psbt(_spends(), OUTPUTS, psbt_version=2),
    psbt([Spend(PREV, 1, sighash=1, extra={b"\x13": bytes(64)})], [(69_000, PAYEE)]),
]


def _read_or_refuse(raw: bytes) -> None:
    try:
        got = read(raw)
    except PsbtInvalid:
        return
    assert got.inputs and got.outputs and len(got.txid) == 64


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_raise_only_psbt_invalid(raw: bytes, magic: bool) -> None:
    _read_or_refuse(b"psbt\xff" + raw if magic else raw)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(_VALID))
def test_mutated_psbts_raise_only_psbt_invalid(raw: bytes) -> None:
    _read_or_refuse(raw)


def test_parse_is_what_read_reads() -> None:
    raw = psbt(_spends(), OUTPUTS)
    parsed = btc_psbt.parse(raw)
    assert btc_psbt.summary(parsed) == read(raw) and parsed.signed == (False, False, False)
