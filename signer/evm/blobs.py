"""EIP-4844 blobs: KZG commitments, proofs and versioned hashes, and the network form of a
blob transaction.

A blob transaction (type 3) signs only the *versioned hashes* of its blobs; the
blobs themselves, their KZG commitments and proofs travel beside it when it is
sent to a node (the "network form") and never reach the chain's history. A
versioned hash is ``0x01 || sha256(commitment)[1:]``.

Commitments and proofs come from ``ckzg`` (the c-kzg-4844 reference library)
with the Ethereum mainnet KZG trusted setup, vendored here as
``kzg_trusted_setup.txt`` (the ceremony's output as c-kzg-4844 distributes it;
the same file eth-account ships) and pinned by its SHA-256, checked when it is
loaded: a wrong setup would make commitments no node accepts.

Network form. Before Osaka: ``0x03 || rlp([tx_payload_body, blobs, commitments,
proofs])`` with one blob proof each. From Osaka (EIP-7594, PeerDAS):
``0x03 || rlp([tx_payload_body, 1, blobs, commitments, cell_proofs])`` with 128
cell proofs per blob. Anvil 1.7.1 runs the latest hardfork (Osaka) unless told
otherwise, so ``network_encoding`` defaults to the Osaka form.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import ckzg

from signer.evm._rlp import encode_bytes, encode_list, encode_uint

__all__ = ["BYTES_PER_BLOB", "GAS_PER_BLOB", "InvalidBlob", "MAX_BLOBS_PER_TX", "Sidecar", "make_sidecar",
           "network_encoding", "versioned_hash"]

BYTES_PER_BLOB = 131_072  # 4096 field elements of 32 bytes
GAS_PER_BLOB = 2**17
# Osaka caps a transaction at 6 blobs (EIP-7594's MAX_BLOBS_PER_TX); the block cap is larger.
MAX_BLOBS_PER_TX = 6
VERSIONED_HASH_VERSION_KZG = 0x01
CELLS_PER_BLOB = 128
BLS_MODULUS = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

_SETUP_FILE = Path(__file__).with_name("kzg_trusted_setup.txt")
_SETUP_SHA256 = "d39b9f2d047cc9dca2de58f264b6a09448ccd34db967881a6713eacacf0f26b7"
_setup = None
_setup_lock = threading.Lock()


class InvalidBlob(ValueError):
    """A blob (or the set of them) cannot go into a blob transaction."""


def _trusted_setup():
    """Loaded once, on first use (a second or so): only blob senders pay for it."""
    global _setup
    with _setup_lock:
        if _setup is None:
            digest = hashlib.sha256(_SETUP_FILE.read_bytes()).hexdigest()
            if digest != _SETUP_SHA256:  # fail closed: commitments under another setup are worthless
                raise RuntimeError(f"{_SETUP_FILE} has SHA-256 {digest}, not the pinned mainnet trusted setup")
            _setup = ckzg.load_trusted_setup(str(_SETUP_FILE), 0)
        return _setup


def versioned_hash(commitment: bytes) -> bytes:
    return bytes((VERSIONED_HASH_VERSION_KZG,)) + hashlib.sha256(commitment).digest()[1:]


@dataclass(frozen=True)
class Sidecar:
    """What travels beside a blob transaction: the blobs, their commitments, their proofs (one
    per blob before Osaka, 128 cell proofs per blob from Osaka) and the versioned hashes signed."""

    blobs: tuple[bytes, ...]
    commitments: tuple[bytes, ...]
    proofs: tuple[bytes, ...]
    cell_proofs: tuple[bytes, ...]
    versioned_hashes: tuple[bytes, ...]


def _check_blob(index: int, blob: object) -> None:
    if type(blob) is not bytes:
        raise InvalidBlob(f"blobs[{index}] must be bytes, not {type(blob).__name__}")
    if len(blob) != BYTES_PER_BLOB:
        raise InvalidBlob(f"blobs[{index}] is {len(blob)} bytes; a blob is exactly {BYTES_PER_BLOB}")
    for offset in range(0, BYTES_PER_BLOB, 32):
        if int.from_bytes(blob[offset:offset + 32], "big") >= BLS_MODULUS:
            raise InvalidBlob(f"blobs[{index}]: field element {offset // 32} (bytes {offset}..{offset + 31}) is not "
                              "below the BLS12-381 modulus; a blob is 4096 such elements, big-endian (a zero first "
                              "byte in each 32 always fits)")


def make_sidecar(blobs: tuple[bytes, ...]) -> Sidecar:
    """Commitments, proofs (both forms) and versioned hashes for 1 to 6 blobs."""
    if type(blobs) is not tuple or not 1 <= len(blobs) <= MAX_BLOBS_PER_TX:
        raise InvalidBlob(f"a blob transaction carries 1 to {MAX_BLOBS_PER_TX} blobs as a tuple")
    for index, blob in enumerate(blobs):
        _check_blob(index, blob)
    setup = _trusted_setup()
    commitments, proofs, cell_proofs = [], [], []
    for blob in blobs:
        commitment = ckzg.blob_to_kzg_commitment(blob, setup)
        commitments.append(commitment)
        proofs.append(ckzg.compute_blob_kzg_proof(blob, commitment, setup))
        _, cells = ckzg.compute_cells_and_kzg_proofs(blob, setup)
        cell_proofs.extend(cells)
    return Sidecar(blobs, tuple(commitments), tuple(proofs), tuple(cell_proofs),
                   tuple(versioned_hash(c) for c in commitments))


def _rlp_byte_list(items) -> bytes:
    return encode_list(b"".join(encode_bytes(item) for item in items))


def network_encoding(signed_raw: bytes, sidecar: Sidecar, osaka: bool = True) -> bytes:
    """The form a node takes in eth_sendRawTransaction: the signed type-3 transaction (as its
    ``0x03 || rlp(body)``) with its blobs, commitments and proofs. Its hash stays that of the
    signed transaction alone."""
    if type(signed_raw) is not bytes or signed_raw[:1] != b"\x03":
        raise InvalidBlob("network_encoding takes a signed type-3 transaction")
    body = signed_raw[1:]  # already the RLP list of the signed fields
    parts = [body]
    if osaka:
        parts.append(encode_uint(1))  # wrapper version 1: cell proofs
    parts += [_rlp_byte_list(sidecar.blobs), _rlp_byte_list(sidecar.commitments),
              _rlp_byte_list(sidecar.cell_proofs if osaka else sidecar.proofs)]
    return b"\x03" + encode_list(b"".join(parts))
