"""EIP-4844 blobs: KZG commitments, proofs and versioned hashes, and the network form of a
blob transaction.

A blob transaction (type 3) signs only the *versioned hashes* of its blobs; the
blobs themselves, their KZG commitments and proofs travel beside it when it is
sent to a node (the "network form") and never reach the chain's history. A
versioned hash is ``0x01 || sha256(commitment)[1:]``.

Commitments and proofs come from ``ckzg`` (the c-kzg-4844 reference library)
with the Ethereum mainnet KZG trusted setup, vendored here as
``kzg_trusted_setup.txt`` (c-kzg-4844's ``src/trusted_setup.txt``, byte for byte;
eth-account ships the same file, but it is a test dependency only) and pinned by
its SHA-256, checked when it is loaded: a wrong setup would make commitments no
node accepts.

Network form. Before Osaka: ``0x03 || rlp([tx_payload_body, blobs, commitments,
proofs])`` with one blob proof each (EIP-4844). From Osaka (EIP-7594, PeerDAS):
``0x03 || rlp([tx_payload_body, 1, blobs, commitments, cell_proofs])`` with 128
cell proofs per blob. Either way the transaction hash is that of the signed
transaction alone, ``keccak(0x03 || rlp(tx_payload_body))``.

Anvil 1.7.1 defaults to ``--hardfork latest``, which ``anvil_nodeInfo`` reports as
``Bpo1``: the first blob-parameter-only fork after Osaka (EIP-7892), so Osaka's
rules apply. ``network_encoding`` therefore defaults to the Osaka form; ``osaka=False``
gives the EIP-4844 form for pre-Osaka nodes. (Anvil 1.7.1 itself takes both, on
Bpo1 and on Prague alike, and verifies the proofs of either.)
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import ckzg
import rlp

from evm._rlp import encode_bytes, encode_list, encode_uint
from evm.constants import BYTES_PER_BLOB, GAS_PER_BLOB, MAX_BLOBS_PER_TX

__all__ = [
    "BYTES_PER_BLOB",
    "CELLS_PER_BLOB",
    "GAS_PER_BLOB",
    "InvalidBlob",
    "MAX_BLOBS_PER_TX",
    "load_trusted_setup",
    "VERSIONED_HASH_VERSION_KZG",
    "Sidecar",
    "make_sidecar",
    "network_encoding",
    "versioned_hash",
]

VERSIONED_HASH_VERSION_KZG = 0x01
# Cells of a blob *extended* by its erasure code (CELLS_PER_EXT_BLOB in the consensus specs):
# a cell proof for each, EIP-7594's network form carries them all.
CELLS_PER_BLOB = 128
BYTES_PER_COMMITMENT = 48
BYTES_PER_PROOF = 48
BLS_MODULUS = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001

_SETUP_FILE = Path(__file__).with_name("kzg_trusted_setup.txt")
# SHA-256 of ethereum/c-kzg-4844 src/trusted_setup.txt (the KZG ceremony's mainnet output).
_SETUP_SHA256 = "d39b9f2d047cc9dca2de58f264b6a09448ccd34db967881a6713eacacf0f26b7"
# ckzg's KZGSettings (ckzg ships no types): only ever handed back to ckzg.
_setup: object | None = None
_setup_lock = threading.Lock()


class InvalidBlob(ValueError):
    """A blob (or the set of them, or their sidecar) cannot go into a blob transaction."""


def _trusted_setup() -> object:
    """Loaded once, on first use (about two seconds): only blob senders pay for it."""
    global _setup
    with _setup_lock:
        if _setup is None:
            digest = hashlib.sha256(_SETUP_FILE.read_bytes()).hexdigest()
            if digest != _SETUP_SHA256:  # fail closed: commitments under another setup are worthless
                raise RuntimeError(f"{_SETUP_FILE} has SHA-256 {digest}, not the pinned mainnet trusted setup")
            _setup = ckzg.load_trusted_setup(str(_SETUP_FILE), 0)
        return _setup


def load_trusted_setup() -> None:
    """Load the trusted setup now rather than at the first blob. ckzg holds the GIL while it
    loads (seconds of CPU), so a process that sends blobs calls this while it waits anyway (a
    signer joining its group, the demo starting its stack), not mid-stream with work behind it."""
    _trusted_setup()


def versioned_hash(commitment: bytes) -> bytes:
    """``0x01 || sha256(commitment)[1:]``: how a type-3 transaction names a blob."""
    if type(commitment) is not bytes or len(commitment) != BYTES_PER_COMMITMENT:
        raise InvalidBlob(f"a KZG commitment is {BYTES_PER_COMMITMENT} bytes")
    return bytes((VERSIONED_HASH_VERSION_KZG,)) + hashlib.sha256(commitment).digest()[1:]


def _check_byte_tuple(name: str, items: object, size: int) -> None:
    # Tuples of exact ``bytes`` only: a sidecar is kept until it is sent and must not change.
    if type(items) is not tuple:
        raise InvalidBlob(f"{name} must be a tuple, not {type(items).__name__}")
    for index, item in enumerate(items):
        if type(item) is not bytes or len(item) != size:
            raise InvalidBlob(f"{name}[{index}] must be {size} bytes")


@dataclass(frozen=True)
class Sidecar:
    """What travels beside a blob transaction: the blobs, their commitments, their blob proofs
    (one per blob, the EIP-4844 network form), the versioned hashes the transaction signs and the
    cell proofs (128 per blob, the EIP-7594 network form). ``make_sidecar`` computes both kinds of
    proof; a sidecar built by hand may leave out the kind it will not be sent with."""

    blobs: tuple[bytes, ...]
    commitments: tuple[bytes, ...]
    proofs: tuple[bytes, ...]
    versioned_hashes: tuple[bytes, ...]
    cell_proofs: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        _check_byte_tuple("blobs", self.blobs, BYTES_PER_BLOB)
        count = len(self.blobs)
        if not 1 <= count <= MAX_BLOBS_PER_TX:
            raise InvalidBlob(f"a blob transaction carries 1 to {MAX_BLOBS_PER_TX} blobs, not {count}")
        _check_byte_tuple("commitments", self.commitments, BYTES_PER_COMMITMENT)
        _check_byte_tuple("proofs", self.proofs, BYTES_PER_PROOF)
        _check_byte_tuple("versioned_hashes", self.versioned_hashes, 32)
        _check_byte_tuple("cell_proofs", self.cell_proofs, BYTES_PER_PROOF)
        if len(self.commitments) != count or len(self.versioned_hashes) != count:
            raise InvalidBlob(
                f"{count} blobs need {count} commitments and {count} versioned hashes, not "
                f"{len(self.commitments)} and {len(self.versioned_hashes)}"
            )
        if len(self.proofs) not in (0, count):
            raise InvalidBlob(f"{count} blobs need {count} blob proofs (or none), not {len(self.proofs)}")
        if len(self.cell_proofs) not in (0, CELLS_PER_BLOB * count):
            raise InvalidBlob(
                f"{count} blobs need {CELLS_PER_BLOB * count} cell proofs (or none), not {len(self.cell_proofs)}"
            )
        if not self.proofs and not self.cell_proofs:
            raise InvalidBlob("a sidecar needs blob proofs or cell proofs")
        # The versioned hashes are what the transaction signs; a node checks them against the
        # commitments, so a mismatch here could only ever be refused after signing.
        for index, (commitment, named) in enumerate(zip(self.commitments, self.versioned_hashes, strict=True)):
            if versioned_hash(commitment) != named:
                raise InvalidBlob(f"versioned_hashes[{index}] is not the versioned hash of commitments[{index}]")


def _check_blob(index: int, blob: object) -> None:
    if type(blob) is not bytes:
        raise InvalidBlob(f"blobs[{index}] must be bytes, not {type(blob).__name__}")
    if len(blob) != BYTES_PER_BLOB:
        raise InvalidBlob(f"blobs[{index}] is {len(blob)} bytes; a blob is exactly {BYTES_PER_BLOB}")
    # ckzg refuses these too, but without saying which blob or where.
    for offset in range(0, BYTES_PER_BLOB, 32):
        if int.from_bytes(blob[offset : offset + 32], "big") >= BLS_MODULUS:
            raise InvalidBlob(
                f"blobs[{index}]: field element {offset // 32} (bytes {offset}..{offset + 31}) is not "
                "below the BLS12-381 modulus; a blob is 4096 such elements, big-endian (a zero first "
                "byte in each 32 always fits)"
            )


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
        # Both forms, so one sidecar serves a node on either side of Osaka. The cell proofs are
        # most of the cost (about 80 ms a blob against 10 ms for the rest).
        _, cells = ckzg.compute_cells_and_kzg_proofs(blob, setup)
        cell_proofs.extend(cells)
    return Sidecar(
        blobs, tuple(commitments), tuple(proofs), tuple(versioned_hash(c) for c in commitments), tuple(cell_proofs)
    )


def _rlp_byte_list(items: tuple[bytes, ...]) -> bytes:
    return encode_list(b"".join(encode_bytes(item) for item in items))


def _signed_versioned_hashes(signed_raw: object) -> list[object]:
    if type(signed_raw) is not bytes or signed_raw[:1] != b"\x03":
        raise InvalidBlob("network_encoding takes a signed type-3 transaction (0x03 || rlp(fields))")
    try:
        items = rlp.decode(signed_raw[1:], strict=True)
    except rlp.exceptions.DecodingError as exc:
        raise InvalidBlob(f"the signed transaction is not valid RLP: {exc}") from None
    # 11 fields and y_parity, r, s; a network form (4 or 5 items) must not be wrapped again.
    if type(items) is not list or len(items) != 14 or type(items[10]) is not list:
        raise InvalidBlob("network_encoding takes the canonical signed type-3 transaction, not its network form")
    return items[10]


def network_encoding(signed_raw: bytes, sidecar: Sidecar, osaka: bool = True) -> bytes:
    """The form a node takes in eth_sendRawTransaction: the signed type-3 transaction (as its
    ``0x03 || rlp(body)``) with its blobs, commitments and proofs. Osaka's form (wrapper version
    1, cell proofs) by default, the one Anvil 1.7.1's default hardfork (Bpo1) and every post-Osaka
    node expect; ``osaka=False`` gives EIP-4844's (blob proofs). Its hash stays that of the signed
    transaction alone."""
    if type(sidecar) is not Sidecar:
        raise InvalidBlob(f"expected a Sidecar, not {type(sidecar).__name__}")
    signed_hashes = _signed_versioned_hashes(signed_raw)
    if signed_hashes != list(sidecar.versioned_hashes):
        raise InvalidBlob("the sidecar's versioned hashes are not the ones the transaction signed")
    proofs = sidecar.cell_proofs if osaka else sidecar.proofs
    if not proofs:
        wanted = "cell proofs (Osaka form)" if osaka else "blob proofs (EIP-4844 form)"
        raise InvalidBlob(f"the sidecar has no {wanted}")
    body = signed_raw[1:]  # already the RLP list of the signed fields
    parts = [body]
    if osaka:
        parts.append(encode_uint(1))  # wrapper version 1: cell proofs
    parts += [_rlp_byte_list(sidecar.blobs), _rlp_byte_list(sidecar.commitments), _rlp_byte_list(proofs)]
    return b"\x03" + encode_list(b"".join(parts))
