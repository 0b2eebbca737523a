"""Helpers shared by the Bitcoin tests: BIP-84's published wallet ("abandon … about") as the
agent's, a payee of another key, and PSBTs built with embit (the library a wallet would use), so
that what `btc.psbt` reads and `btc.signing` signs is made by code other than theirs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from embit.bip39 import mnemonic_to_seed
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from hypothesis import strategies as st

from btc import wallet

MNEMONIC = " ".join(["abandon"] * 11 + ["about"])  # BIP-84's and BIP-86's test vectors
# m/84'/0'/0'/0/0 of MNEMONIC (BIP-84's test vectors).
K_HEX = "0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c"
K = bytes.fromhex(K_HEX)
OWN = wallet.own_scripts(K)
# BIP-84's m/84'/0'/0'/0/1 key: another key's P2WPKH, a payee and a foreign input.
OTHER_K = bytes.fromhex("03e775fd51f0dfb8cd865d9ff1cca2a158cf651fe997fdc9fee9c1d3b5e995ea77")
OTHER = wallet.own_scripts(OTHER_K)
RBF = 0xFFFFFFFD  # BIP-125: replaceable
FINAL = 0xFFFFFFFF
MAX_MONEY = 21_000_000 * 100_000_000


def seed() -> bytearray:
    """The agent's stored secret: the BIP-39 seed of MNEMONIC (64 bytes, a BIP-32 seed)."""
    return bytearray(mnemonic_to_seed(MNEMONIC))


def funding(*outputs: tuple[int, bytes], salt: int = 0) -> Any:
    """A transaction (embit's) paying ``(amount, script)`` outputs: the outputs a PSBT spends."""
    vin = [TransactionInput(salt.to_bytes(32, "big"), 0)]
    return Transaction(version=2, vin=vin, vout=[TransactionOutput(a, Script(s)) for a, s in outputs])


@dataclass
class Spend:
    """One input: output ``vout`` of ``prev``, and what the PSBT says of it."""

    prev: Any
    vout: int
    sequence: int = RBF
    witness_utxo: bool = True
    non_witness_utxo: bool = False
    sighash: int | None = None
    extra: dict[bytes, bytes] = field(default_factory=dict)  # more fields of the input map


def psbt(
    spends: list[Spend],
    outputs: list[tuple[int, bytes]],
    *,
    version: int = 2,
    locktime: int = 0,
    psbt_version: int | None = None,
) -> bytes:
    """A PSBT (BIP-174 v0, or v2 with ``psbt_version=2``) of the transaction spending ``spends``
    into ``outputs``, written by embit."""
    tx = Transaction(
        version=version,
        locktime=locktime,
        vin=[TransactionInput(s.prev.txid(), s.vout, sequence=s.sequence) for s in spends],
        vout=[TransactionOutput(a, Script(s)) for a, s in outputs],
    )
    built = PSBT(tx)
    built.version = psbt_version
    for inp, spend in zip(built.inputs, spends, strict=True):
        if spend.witness_utxo:
            inp.witness_utxo = spend.prev.vout[spend.vout]
        if spend.non_witness_utxo:
            inp.non_witness_utxo = spend.prev
        inp.sighash_type = spend.sighash
        inp.unknown = dict(spend.extra)
    return bytes(built.serialize())


def unsigned_tx(spends: list[Spend], outputs: list[tuple[int, bytes]], *, version: int = 2, locktime: int = 0) -> bytes:
    """The transaction's bytes without witnesses, written out by hand (BIP-144's legacy form)."""
    out = version.to_bytes(4, "little") + bytes([len(spends)])
    for s in spends:
        out += bytes(s.prev.txid())[::-1] + s.vout.to_bytes(4, "little") + b"\x00" + s.sequence.to_bytes(4, "little")
    out += bytes([len(outputs)])
    for amount, script in outputs:
        out += amount.to_bytes(8, "little") + bytes([len(script)]) + script
    return out + locktime.to_bytes(4, "little")


def txid(unsigned: bytes) -> str:
    """A transaction id: double SHA-256 of the bytes without witnesses, shown byte-reversed."""
    return hashlib.sha256(hashlib.sha256(unsigned).digest()).digest()[::-1].hex()


def kv(key: bytes, value: bytes) -> bytes:
    """One key-value pair of a PSBT map (lengths under 0xfd, as in these tests)."""
    assert len(key) < 0xFD and len(value) < 0xFD
    return bytes([len(key)]) + key + bytes([len(value)]) + value


@st.composite
def mutated(draw: st.DrawFn, valid: list[bytes]) -> bytes:
    """One of the ``valid`` PSBTs with one to four bytes set, cut out or put in, or made a
    compact-size prefix (0xfd, 0xfe, 0xff: a length or count read as a larger one)."""
    raw = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw) - 1))
        kind = draw(st.sampled_from(["set", "delete", "insert", "compact"]))
        if kind == "set":
            raw[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del raw[at : at + draw(st.integers(1, 8))]
        elif kind == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            raw[at] = draw(st.sampled_from([0x00, 0x01, 0xFD, 0xFE, 0xFF]))
    return bytes(raw)
