"""Signing a PSBT that spends only the agent's own outputs, into a network transaction.

`sign` reads the PSBT as `btc.psbt.read` does (the same checks, so what was judged is what is
signed), derives the agent's key from its BIP-32 seed (`btc.wallet`), and signs every input
with embit's `PSBT.sign_with`: ECDSA over BIP-143's digest with SIGHASH_ALL for the P2WPKH
script, BIP-340 Schnorr over BIP-341's digest for the P2TR key path (SIGHASH_DEFAULT, or ALL when
the PSBT asks for it). It refuses anything else Warden did not judge: an input of another script,
an input whose amount the PSBT does not give (both signatures commit to it), and a sighash type
that lets others change the transaction after it is signed (NONE, SINGLE, ANYONECANPAY).

embit finalizes a taproot key path input itself (its witness is the one signature); a P2WPKH
input's witness, [signature, K], is put together here. Each signature is checked against K (or
the tweaked key) before the transaction is written out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from embit.ec import SchnorrSig, Signature
from embit.script import Witness, p2pkh_from_p2wpkh
from embit.transaction import SIGHASH, Transaction, TransactionInput

from btc import wallet
from btc.psbt import Psbt, PsbtInvalid, parse, summary

__all__ = ["SigningError", "SignedTx", "sign"]

_P2WPKH_SIGHASHES = frozenset({None, SIGHASH.ALL})
_P2TR_SIGHASHES = frozenset({None, SIGHASH.DEFAULT, SIGHASH.ALL})
_SIGHASH_NAMES = {0: "DEFAULT", 1: "ALL", 2: "NONE", 3: "SINGLE"}


class SigningError(ValueError):
    """A PSBT Warden does not sign, with which input and why."""


@dataclass(frozen=True)
class SignedTx:
    raw: bytes  # the final network transaction
    txid: str
    vsize: int


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


def _clear(inp: Any) -> None:
    """Drop what a PSBT input carries beyond what Warden signs: earlier signatures (each input
    is signed afresh), BIP-32 derivations (embit would also sign with keys derived from the
    agent's along them), scripts (embit would take one as the P2WPKH input's script code) and a
    taproot script tree (tr(K) has none)."""
    inp.partial_sigs = OrderedDict()
    inp.taproot_sigs = OrderedDict()
    inp.final_scriptsig = None
    inp.final_scriptwitness = None
    inp.redeem_script = None
    inp.witness_script = None
    inp.bip32_derivations = OrderedDict()
    inp.taproot_bip32_derivations = OrderedDict()
    inp.taproot_scripts = OrderedDict()
    inp.taproot_merkle_root = None
    inp.taproot_internal_key = None


def _witnesses(psbt: Any, key: Any, own: wallet.OwnScripts) -> list[Any]:
    """Sign every input with ``key`` and return their witnesses, each checked against K."""
    for inp in psbt.inputs:
        _clear(inp)
    psbt.sign_with(key)
    point = key.get_public_key()
    output_key = point.taproot_tweak(b"")  # BIP-86: no script tree
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
            signature = inp.partial_sigs.get(point)
            if signature is None or signature[-1] != SIGHASH.ALL or not _ecdsa_ok(point, signature[:-1], digest):
                raise SigningError(f"input {i}: embit made no valid P2WPKH signature for it")
            witnesses.append(Witness([signature, point.sec()]))
        else:
            sighash = SIGHASH.DEFAULT if inp.sighash_type is None else inp.sighash_type
            digest = tx.sighash_taproot(i, script_pubkeys=scripts, values=values, sighash=sighash)
            final = inp.final_scriptwitness
            expected = bytes([sighash]) if sighash != SIGHASH.DEFAULT else b""
            items = list(final.items) if final is not None else []
            if len(items) != 1 or items[0][64:] != expected or not _schnorr_ok(output_key, items[0][:64], digest):
                raise SigningError(f"input {i}: embit made no valid P2TR key path signature for it")
            witnesses.append(final)
    return witnesses


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
        _check_inputs(summary(parsed), own)
        psbt = parsed.embit
        try:
            witnesses = _witnesses(psbt, key, own)
            tx = psbt.tx
            for vin, witness in zip(tx.vin, witnesses, strict=True):
                vin.witness = witness
            raw = bytes(tx.serialize())
            return SignedTx(raw=raw, txid=bytes(tx.txid()).hex(), vsize=_vsize(tx))
        except SigningError:
            raise
        except Exception as exc:  # noqa: BLE001 - embit's errors while signing: name them, never the key
            raise SigningError(f"embit could not sign the PSBT: {type(exc).__name__}") from None
    finally:
        del key
