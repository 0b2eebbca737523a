"""btc.signing: a PSBT spending the agent's own P2WPKH and P2TR outputs comes out as a network
transaction whose signatures verify independently of embit: the digests are computed here from
BIP-143 and BIP-341 by hand, the ECDSA signature is checked by coincurve against K, the Schnorr
one by coincurve against the P2TR output key. And what Warden does not sign is refused, naming
the input: another script, an unknown amount, a sighash type that lets the transaction change."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import coincurve
import pytest
from embit.ec import PublicKey
from embit.psbt import PSBT
from embit.transaction import Transaction
from embit.util import secp256k1
from hypothesis import HealthCheck, given, settings

from btc import psbt as btc_psbt
from btc import signing
from btc.signing import SigningError, sign
from tests.btc_support import FINAL, OTHER, OWN, RBF, K, Spend, funding, mutated, psbt, seed, txid, unsigned_tx

PREV = funding((50_000, OWN.p2wpkh), (70_000, OWN.p2tr), (30_000, OWN.p2tr))
PAYEE = OTHER.p2wpkh


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _tagged(tag: str, data: bytes) -> bytes:
    return _sha256(_sha256(tag.encode()) * 2 + data)


def _ser(script: bytes) -> bytes:
    assert len(script) < 0xFD
    return bytes([len(script)]) + script


@dataclass(frozen=True)
class _Tx:
    """What the digests commit to, from the test's own description of the transaction."""

    spends: list[Spend]
    outputs: list[tuple[int, bytes]]
    version: int = 2
    locktime: int = 0

    def outpoint(self, s: Spend) -> bytes:
        return bytes(s.prev.txid())[::-1] + s.vout.to_bytes(4, "little")

    def spent(self, s: Spend) -> tuple[int, bytes]:
        out = s.prev.vout[s.vout]
        return int(out.value), bytes(out.script_pubkey.data)

    def serialized_outputs(self) -> bytes:
        return b"".join(a.to_bytes(8, "little") + _ser(s) for a, s in self.outputs)

    def bip143(self, index: int, sighash: int = 1) -> bytes:
        """BIP-143's digest of a P2WPKH input with SIGHASH_ALL."""
        s = self.spends[index]
        amount, script = self.spent(s)
        script_code = b"\x19\x76\xa9\x14" + script[2:] + b"\x88\xac"
        preimage = (
            self.version.to_bytes(4, "little")
            + _sha256(_sha256(b"".join(self.outpoint(x) for x in self.spends)))
            + _sha256(_sha256(b"".join(x.sequence.to_bytes(4, "little") for x in self.spends)))
            + self.outpoint(s)
            + script_code
            + amount.to_bytes(8, "little")
            + s.sequence.to_bytes(4, "little")
            + _sha256(_sha256(self.serialized_outputs()))
            + self.locktime.to_bytes(4, "little")
            + sighash.to_bytes(4, "little")
        )
        return _sha256(_sha256(preimage))

    def bip341(self, index: int, sighash: int = 0) -> bytes:
        """BIP-341's key path digest (SIGHASH_DEFAULT or ALL, no annex)."""
        spent = [self.spent(x) for x in self.spends]
        message = (
            bytes([0, sighash])  # epoch 0, hash_type
            + self.version.to_bytes(4, "little")
            + self.locktime.to_bytes(4, "little")
            + _sha256(b"".join(self.outpoint(x) for x in self.spends))
            + _sha256(b"".join(a.to_bytes(8, "little") for a, _ in spent))
            + _sha256(b"".join(_ser(s) for _, s in spent))
            + _sha256(b"".join(x.sequence.to_bytes(4, "little") for x in self.spends))
            + _sha256(self.serialized_outputs())
            + b"\x00"  # spend_type: key path, no annex
            + index.to_bytes(4, "little")
        )
        return _tagged("TapSighash", message)


def _witnesses(raw: bytes) -> list[list[bytes]]:
    return [list(vin.witness.items) for vin in Transaction.parse(raw).vin]


def _vsize_of(raw: bytes, spends: list[Spend], outputs: list[tuple[int, bytes]]) -> int:
    base = len(unsigned_tx(spends, outputs))
    return -(-(3 * base + len(raw)) // 4)


def test_own_p2wpkh_and_p2tr_inputs_are_signed_and_verify_independently() -> None:
    spends = [Spend(PREV, 0), Spend(PREV, 1, sequence=FINAL), Spend(PREV, 2, witness_utxo=False, non_witness_utxo=True)]
    outputs = [(140_000, PAYEE), (9_000, OWN.p2wpkh)]
    raw_psbt = psbt(spends, outputs, locktime=101)
    secret = seed()
    signed = sign(raw_psbt, secret)
    assert secret == seed()  # the caller's to wipe; sign leaves it as it was

    described = _Tx(spends, outputs, locktime=101)
    unsigned = unsigned_tx(spends, outputs, locktime=101)
    assert signed.txid == txid(unsigned) == btc_psbt.read(raw_psbt).txid
    # BIP-144: version, marker 0, flag 1, the unsigned body, the witnesses, the lock time.
    assert signed.raw[:6] == unsigned[:4] + b"\x00\x01" and signed.raw[6:].startswith(unsigned[4:-4])
    assert signed.raw[-4:] == unsigned[-4:]

    p2wpkh, p2tr, p2tr_legacy = _witnesses(signed.raw)
    # P2WPKH: [DER signature ‖ SIGHASH_ALL, K]; coincurve verifies it against K (low S included).
    assert p2wpkh[1] == K and p2wpkh[0][-1] == 0x01
    assert coincurve.PublicKey(K).verify(p2wpkh[0][:-1], described.bip143(0), hasher=None)
    assert not coincurve.PublicKey(K).verify(p2wpkh[0][:-1], described.bip143(0, sighash=3), hasher=None)
    # P2TR key path: one 64-byte BIP-340 signature (SIGHASH_DEFAULT) by the output key.
    for index, witness in ((1, p2tr), (2, p2tr_legacy)):
        assert len(witness) == 1 and len(witness[0]) == 64
        output_key = coincurve.PublicKeyXOnly(OWN.p2tr[2:])
        assert output_key.verify(witness[0], described.bip341(index))
        assert not output_key.verify(witness[0], described.bip341(3 - index))  # the other input's digest

    assert signed.vsize == _vsize_of(signed.raw, spends, outputs) == btc_psbt.vsize(btc_psbt.read(raw_psbt), OWN)
    assert signed.fee == 150_000 - 149_000


def test_a_p2tr_input_asking_for_sighash_all_is_signed_with_it() -> None:
    spends, outputs = [Spend(PREV, 1, sighash=1)], [(69_000, PAYEE)]
    signed = sign(psbt(spends, outputs), seed())
    (witness,) = _witnesses(signed.raw)[0]
    assert len(witness) == 65 and witness[-1] == 0x01
    assert coincurve.PublicKeyXOnly(OWN.p2tr[2:]).verify(witness[:64], _Tx(spends, outputs).bip341(0, sighash=1))
    assert signed.vsize == btc_psbt.vsize(btc_psbt.read(psbt(spends, outputs)), OWN)


def test_signatures_already_in_the_psbt_are_replaced() -> None:
    spends, outputs = [Spend(PREV, 0), Spend(PREV, 1)], [(119_000, PAYEE)]
    parsed = PSBT.parse(psbt(spends, outputs))
    junk = b"\x30\x06\x02\x01\x01\x02\x01\x01\x01"
    parsed.inputs[0].partial_sigs[PublicKey.parse(K)] = junk
    parsed.inputs[1].unknown = {b"\x13": bytes(64)}  # a taproot key path signature of zeros
    signed = sign(parsed.serialize(), seed())
    p2wpkh, p2tr = _witnesses(signed.raw)
    described = _Tx(spends, outputs)
    assert p2wpkh[0] != junk and coincurve.PublicKey(K).verify(p2wpkh[0][:-1], described.bip143(0), hasher=None)
    assert coincurve.PublicKeyXOnly(OWN.p2tr[2:]).verify(p2tr[0], described.bip341(1))


def test_an_input_of_another_script_is_refused() -> None:
    foreign = funding((10_000, OTHER.p2wpkh), salt=9)
    raw = psbt([Spend(PREV, 0), Spend(foreign, 0)], [(59_000, PAYEE)])
    with pytest.raises(SigningError, match="input 1: it spends script 0014.*not the agent's own P2WPKH or P2TR"):
        sign(raw, seed())


def test_an_unknown_amount_is_refused() -> None:
    raw = psbt([Spend(PREV, 0), Spend(PREV, 1, witness_utxo=False)], [(49_000, PAYEE)])
    with pytest.raises(SigningError, match="input 1: the PSBT does not give the amount"):
        sign(raw, seed())


@pytest.mark.parametrize(
    "vout, sighash, named",
    [
        (0, 0x02, "NONE"),
        (0, 0x03, "SINGLE"),
        (0, 0x81, "ALL|ANYONECANPAY"),
        (0, 0x00, "DEFAULT"),  # P2WPKH has no DEFAULT: ALL only
        (1, 0x02, "NONE"),
        (1, 0x03, "SINGLE"),
        (1, 0x81, "ALL|ANYONECANPAY"),
        (1, 0x83, "SINGLE|ANYONECANPAY"),
        (1, 0x04, "0x04"),
    ],
)
def test_a_sighash_type_that_lets_the_transaction_change_is_refused(vout: int, sighash: int, named: str) -> None:
    raw = psbt([Spend(PREV, 2), Spend(PREV, vout, sighash=sighash)], [(50_000, PAYEE)])
    kind = "P2WPKH input with SIGHASH_ALL only" if vout == 0 else "P2TR input with SIGHASH_DEFAULT or ALL only"
    with pytest.raises(SigningError, match=f"input 1: sighash type {named.replace('|', '[|]')} .*{kind}"):
        sign(raw, seed())


def test_a_psbt_warden_does_not_read_is_refused_and_the_seed_never_shown() -> None:
    secret = seed()
    for raw in (b"", b"psbt\xff\x00", psbt([Spend(PREV, 0), Spend(PREV, 0)], [(1_000, PAYEE)])):
        with pytest.raises(SigningError, match="the PSBT is not one Warden reads") as info:
            sign(raw, secret)
        assert secret.hex() not in str(info.value) and secret.hex()[:16] not in repr(info.value)
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        sign(psbt([Spend(PREV, 0)], [(49_000, PAYEE)]), bytearray(8))


def test_signing_changes_nothing_but_the_witnesses() -> None:
    spends, outputs = [Spend(PREV, 0, sequence=RBF)], [(30_000, PAYEE), (19_000, OWN.p2tr)]
    signed = sign(psbt(spends, outputs, locktime=500), seed())
    tx = Transaction.parse(signed.raw)
    assert (tx.version, tx.locktime, tx.vin[0].sequence, tx.vin[0].vout) == (2, 500, RBF, 0)
    assert [(o.value, bytes(o.script_pubkey.data)) for o in tx.vout] == outputs
    assert bytes(tx.vin[0].script_sig.data) == b""  # native segwit: the scriptSig stays empty


_VALID = [
    psbt([Spend(PREV, 0), Spend(PREV, 1), Spend(PREV, 2, non_witness_utxo=True)], [(149_000, PAYEE)]),
    psbt([Spend(PREV, 1, sighash=1)], [(69_000, PAYEE)], psbt_version=2),
]
_SEED = seed()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(_VALID))
def test_mutated_psbts_are_signed_or_refused_with_signing_error(raw: bytes) -> None:
    try:
        signed = sign(raw, _SEED)
    except SigningError:
        return
    assert Transaction.parse(signed.raw).txid().hex() == signed.txid


def test_a_signature_that_does_not_verify_never_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    """sign checks each signature it made against the key before writing the transaction out: here
    libsecp256k1 is made to sign another digest than the one given."""
    spends, outputs = [Spend(PREV, 1), Spend(PREV, 0)], [(119_000, PAYEE)]
    ecdsa, schnorr = secp256k1.ecdsa_sign, secp256k1.schnorrsig_sign

    def other_digest(sign: Callable[..., Any]) -> Callable[..., Any]:
        return lambda digest, *rest: sign(_sha256(digest), *rest)

    monkeypatch.setattr(secp256k1, "schnorrsig_sign", other_digest(schnorr))
    with pytest.raises(SigningError, match="input 0: the P2TR key path signature made for it does not verify"):
        sign(psbt(spends, outputs), seed())
    monkeypatch.setattr(secp256k1, "schnorrsig_sign", schnorr)
    monkeypatch.setattr(secp256k1, "ecdsa_sign", other_digest(ecdsa))
    with pytest.raises(SigningError, match="input 1: the P2WPKH signature made for it does not verify"):
        sign(psbt(spends, outputs), seed())


def test_every_signature_is_of_the_size_judged_so_the_signed_size_is_the_judged_size() -> None:
    """`btc.psbt.vsize` counts each P2WPKH signature at 71 bytes (70 of DER, then the sighash byte):
    the size of most low-R signatures, but about 1 in 120 has an R or an S a byte shorter (3 of
    these 240 digests, as embit signs them). Signed as it comes, a transaction of a few hundred
    inputs would be smaller than judged, its fee per virtual byte over the ceiling the judge
    allowed; each signature is made at exactly that size instead, and the same bytes come out
    every time."""
    prev = funding(*[(10_000, OWN.p2wpkh)] * 240, *[(10_000, OWN.p2tr)] * 10, salt=2)
    spends = [Spend(prev, n, sighash=1 if n == 245 else None) for n in range(250)]
    outputs = [(2_400_000, PAYEE)]
    raw_psbt = psbt(spends, outputs)
    signed = sign(raw_psbt, seed())
    assert [len(w[0]) for w in _witnesses(signed.raw)] == [71] * 240 + [64] * 5 + [65] + [64] * 4
    assert signed.vsize == _vsize_of(signed.raw, spends, outputs) == btc_psbt.vsize(btc_psbt.read(raw_psbt), OWN)
    assert signed.fee == 2_500_000 - 2_400_000
    assert sign(raw_psbt, seed()) == signed  # RFC 6979 and a counter: deterministic


def test_no_signature_of_the_size_judged_is_no_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "ECDSA_DER_BYTES", 8)  # no signature of a 256-bit key is this short
    with pytest.raises(SigningError, match="no ECDSA signature of 8 bytes in 256 attempts"):
        sign(psbt([Spend(PREV, 0)], [(49_000, PAYEE)]), seed())
