"""Signing a PSBT that spends only the agent's own outputs, into a network transaction.

`sign` reads the PSBT as `btc.psbt.read` does (the same checks, so what was judged is what is
signed), derives the agent's key from its BIP-32 seed (`btc.wallet`), and signs every input over
the digest it computes itself from the PSBT's transaction and the outputs it spends: ECDSA over
BIP-143's digest with SIGHASH_ALL for the P2WPKH script, at exactly the size `btc.psbt.vsize`
counts (`_ecdsa_at_size`), and BIP-340 Schnorr over BIP-341's digest by the BIP-86 tweaked key for
the P2TR key path (SIGHASH_DEFAULT, or ALL when the PSBT asks for it). It refuses anything else
Warden did not judge: an input of another script, an input whose amount the PSBT does not give
(both signatures commit to it), and a sighash type that lets others change the transaction after
it is signed (NONE, SINGLE, ANYONECANPAY).

Each witness is put together here ([signature, K] for P2WPKH, [signature] for P2TR), and each
signature is checked against K (or the tweaked key) before the transaction is written out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embit.ec import SchnorrSig, Signature
from embit.script import Witness, p2pkh_from_p2wpkh
from embit.transaction import SIGHASH, Transaction, TransactionInput
from embit.util import secp256k1

from btc import wallet
from btc.psbt import ECDSA_DER_BYTES, Psbt, PsbtInvalid, parse, summary

__all__ = ["SigningError", "SignedTx", "sign"]

_P2WPKH_SIGHASHES = frozenset({None, SIGHASH.ALL})
_P2TR_SIGHASHES = frozenset({None, SIGHASH.DEFAULT, SIGHASH.ALL})
_SIGHASH_NAMES = {0: "DEFAULT", 1: "ALL", 2: "NONE", 3: "SINGLE"}
# Nonces tried for an ECDSA signature of the size judged: each gives one with a probability of
# about 1/2, so all of them fail together with a probability below 2^-250.
_SIZE_ATTEMPTS = 256


class SigningError(ValueError):
    """A PSBT Warden does not sign, with which input and why."""


@dataclass(frozen=True)
class SignedTx:
    raw: bytes  # the final network transaction
    txid: str
    vsize: int  # BIP-141's virtual size, as the network computes it
    fee: int  # satoshis: the inputs less the outputs


def _sighash_name(sighash: int) -> str:
    base = _SIGHASH_NAMES.get(sighash & 0x7F, f"0x{sighash & 0x7F:02x}")
    return f"{base}|ANYONECANPAY" if sighash & SIGHASH.ANYONECANPAY else base


def _check_inputs(psbt: Psbt, own: wallet.OwnScripts) -> None:
    """Every input is an own script with its amount given and a sighash type Warden signs."""
    for i, inp in enumerate(psbt.inputs):
        if inp.amount is None or inp.script is None:
            raise SigningError(
                f"input {i}: the PSBT does not give the amount and script it spends; add its witness_utxo "
                "(or non_witness_utxo): the signature commits to the amount"
            )
        if not own.owns(inp.script):
            raise SigningError(
                f"input {i}: it spends script {inp.script.hex()}, not the agent's own P2WPKH or P2TR; "
                "Warden signs only inputs of the agent's wallet"
            )
        p2wpkh = inp.script == own.p2wpkh
        if inp.sighash not in (_P2WPKH_SIGHASHES if p2wpkh else _P2TR_SIGHASHES):
            kind, names = ("P2WPKH", "ALL") if p2wpkh else ("P2TR", "DEFAULT or ALL")
            raise SigningError(
                f"input {i}: sighash type {_sighash_name(inp.sighash or 0)} lets the transaction change "
                f"after it is signed; Warden signs a {kind} input with SIGHASH_{names} only"
            )


def _witnesses(psbt: Any, key: Any, own: wallet.OwnScripts) -> list[Any]:
    """Every input's witness, each signature made here over the digest computed here and checked
    against K (or the tweaked key) before it is used. Nothing the PSBT carries besides its
    transaction and the outputs it spends is read: earlier signatures, BIP-32 derivations and
    scripts are left where they are."""
    private = key.key  # embit's ec.PrivateKey at the wallet's path
    point = private.get_public_key()
    tweaked = private.taproot_tweak(b"")  # BIP-86: no script tree
    output_key = point.taproot_tweak(b"")
    # One transaction for every digest: embit caches the hashes over all inputs and outputs in it
    # (`psbt.sighash` would build the transaction and those hashes again for each input).
    tx = psbt.tx
    spent = [inp.utxo for inp in psbt.inputs]
    values, scripts = [out.value for out in spent], [out.script_pubkey for out in spent]
    witnesses = []
    for i, inp in enumerate(psbt.inputs):
        if spent[i].script_pubkey.data == own.p2wpkh:
            code = p2pkh_from_p2wpkh(spent[i].script_pubkey)  # BIP-143's script code for P2WPKH
            digest = tx.sighash_segwit(i, code, values[i], sighash=SIGHASH.ALL)
            der = _ecdsa_at_size(private, digest)
            if not _ecdsa_ok(point, der, digest):
                raise SigningError(f"input {i}: the P2WPKH signature made for it does not verify")
            witnesses.append(Witness([der + bytes([SIGHASH.ALL]), point.sec()]))
        else:
            sighash = SIGHASH.DEFAULT if inp.sighash_type is None else inp.sighash_type
            digest = tx.sighash_taproot(i, script_pubkeys=scripts, values=values, sighash=sighash)
            signature = bytes(tweaked.schnorr_sign(digest).serialize())
            if not _schnorr_ok(output_key, signature, digest):
                raise SigningError(f"input {i}: the P2TR key path signature made for it does not verify")
            witnesses.append(Witness([signature + (bytes([sighash]) if sighash != SIGHASH.DEFAULT else b"")]))
    return witnesses


def _ecdsa_at_size(private: Any, digest: bytes) -> bytes:
    """The DER signature of ``digest`` by ``private`` at exactly `ECDSA_DER_BYTES`, the size
    `btc.psbt.vsize` counts. RFC 6979's nonce first, then the same with a counter as extra data,
    as Bitcoin Core grinds for a low R (`CKey::Sign`), until the signature is that long: most are,
    but a high R makes it a byte longer and an R or S below 2^248 a byte shorter, and a shorter
    signature would make the transaction smaller than judged, its fee per virtual byte higher than
    the policy allows. Deterministic: the same key and digest give the same bytes."""
    for counter in range(_SIZE_ATTEMPTS):
        extra = None if counter == 0 else counter.to_bytes(32, "little")
        der = bytes(Signature(secp256k1.ecdsa_sign(digest, private.secret, None, extra)).serialize())
        if len(der) == ECDSA_DER_BYTES:
            return der
    raise SigningError(f"no ECDSA signature of {ECDSA_DER_BYTES} bytes in {_SIZE_ATTEMPTS} attempts")


def _ecdsa_ok(point: Any, der: bytes, digest: bytes) -> bool:
    return bool(point.verify(Signature.parse(der), digest))


def _schnorr_ok(output_key: Any, signature: bytes, digest: bytes) -> bool:
    return bool(output_key.schnorr_verify(SchnorrSig.parse(signature), digest))


def _vsize(tx: Any) -> int:
    """BIP-141's virtual size: the transaction without witnesses at 4 weight units a byte, the
    witnesses at 1."""
    bare = Transaction(
        version=tx.version,
        locktime=tx.locktime,
        vin=[TransactionInput(i.txid, i.vout, i.script_sig, i.sequence) for i in tx.vin],
        vout=tx.vout,
    )
    weight = 3 * len(bare.serialize()) + len(tx.serialize())
    return (weight + 3) // 4


def sign(raw_psbt: bytes, seed: bytearray) -> SignedTx:
    """Sign and finalize every input of ``raw_psbt`` with the agent's key, and extract the
    network transaction. `SigningError` names the input Warden does not sign and why.

    ``seed`` is the caller's bytearray, which the caller wipes; it is never copied into a message.
    The derived keys are dropped before this returns (embit holds them as immutable bytes, which
    nothing can wipe)."""
    try:
        parsed = parse(raw_psbt)
    except PsbtInvalid as exc:
        raise SigningError(f"the PSBT is not one Warden reads: {exc}") from None
    key = None
    try:
        key = wallet.derived_key(seed)
        own = wallet.own_scripts(bytes(key.sec()))
        read = summary(parsed)
        _check_inputs(read, own)
        fee = read.fee()
        if fee is None:  # _check_inputs refused an input without its amount
            raise SigningError("the PSBT does not give every input's amount")
        psbt = parsed.embit
        try:
            witnesses = _witnesses(psbt, key, own)
            tx = psbt.tx
            for vin, witness in zip(tx.vin, witnesses, strict=True):
                vin.witness = witness
            raw = bytes(tx.serialize())
            return SignedTx(raw=raw, txid=bytes(tx.txid()).hex(), vsize=_vsize(tx), fee=fee)
        except SigningError:
            raise
        except Exception as exc:  # noqa: BLE001 - embit's errors while signing: name them, never the key
            raise SigningError(f"embit could not sign the PSBT: {type(exc).__name__}") from None
    finally:
        del key
