"""Keccak-256 and secp256k1 as the specification uses them: ``keccak``, ``sign_hash`` and
``address_of``, each on its library's public API and, where ``warden bench evm`` shows a clear gain
(at least 1.3x on the operation), on the private C binding under that API.

This is the one module that reaches into library internals: pycryptodome's ``_raw_keccak_lib`` for
``keccak``, coincurve's ``_libsecp256k1`` for ``sign_hash``. Each private path is built at import
and the public one is used instead when its private symbol is missing or it gets a known answer
wrong, so a library upgrade that moves an internal slows Warden down instead of breaking it.
``PATHS`` says which path each took. ``address_of`` runs on the public API only: a private path
gains too little there. tests/unit/test_evm_fast_paths.py pins the paths to identical results and
selects the public ones by removing the private symbols.

Why the private paths pay: pycryptodome's public ``keccak.new`` allocates a hash object and a
destructor wrapper per call, which costs more than hashing a short input; the private path reuses
one sponge per thread. coincurve's ``PrivateKey(secret)`` derives the public key and an x-only
(BIP-340) public key on construction, two point multiplications that signing never uses; the
private path calls libsecp256k1's signing function alone, straight out of the caller's buffer
instead of a ``bytes`` copy of the key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from coincurve import PrivateKey, PublicKey
from Crypto.Hash import keccak as _pycryptodome_keccak


class InvalidPrivateKey(ValueError):
    """A private key is not a valid secp256k1 secret. Never carries the key."""


# --- keccak-256 ---------------------------------------------------------------------------------

# keccak-256 of the empty string: the known answer a private path must give before it is used.
_KECCAK_EMPTY = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


def keccak_public(data: bytes) -> bytes:
    """Keccak-256 of ``data`` through pycryptodome's public API."""
    return _pycryptodome_keccak.new(digest_bits=256, data=data).digest()


def keccak_private() -> Callable[[bytes], bytes] | None:
    """Keccak-256 on pycryptodome's C sponge, one sponge reused per thread (cffi releases the GIL
    during each call); None when pycryptodome's internals are not the ones this was written for."""
    try:
        from Crypto.Hash.keccak import _raw_keccak_lib as raw  # type: ignore[attr-defined]  # private, not in pycryptodome's stub
        from Crypto.Util import _raw_api

        if _raw_api.backend != "cffi":
            return None
        kffi = _raw_api.ffi
        absorb, digest, reset = raw.keccak_absorb, raw.keccak_digest, raw.keccak_reset
        init, destroy = raw.keccak_init, raw.keccak_destroy
    except (ImportError, AttributeError):
        return None
    local = threading.local()
    buffer = kffi.buffer

    def new_sponge() -> object:
        # An opaque cffi pointer to the C sponge: only ever handed back to the C functions.
        handle = kffi.new("void **")
        # capacity 64 bytes, 24 rounds: Keccak-256.
        if init(handle, 64, 24):
            raise MemoryError("keccak_init failed")
        sponge = kffi.gc(handle[0], destroy)
        local.sponge = sponge
        local.out = kffi.new("uint8_t[32]")
        return sponge

    def keccak(data: bytes) -> bytes:
        try:
            sponge = local.sponge
        except AttributeError:
            sponge = new_sponge()
        out = local.out
        # A failed call would leave the previous digest in ``out``; a stale hash must never be
        # signed. 0x01 is Keccak's original domain padding (SHA3 uses 0x06).
        if reset(sponge) or absorb(sponge, data, len(data)) or digest(sponge, out, 32, 0x01):
            raise RuntimeError("keccak-256 failed")
        # A slice of a cffi buffer is a bytes copy (cffi ships no types).
        hashed: bytes = buffer(out)[:]
        return hashed

    try:
        if keccak(b"") != _KECCAK_EMPTY:
            return None
    except (TypeError, MemoryError, RuntimeError):
        return None
    return keccak


# --- secp256k1 ----------------------------------------------------------------------------------


def _check_key(private_key: bytearray | bytes) -> None:
    # libsecp256k1 reads exactly 32 bytes from the pointer it is given, so the length check is what
    # keeps a short key from becoming an out-of-bounds read on the private path.
    if type(private_key) not in (bytearray, bytes) or len(private_key) != 32:
        raise InvalidPrivateKey("private key must be 32 bytes")


def _check_hash(msg_hash: bytes) -> None:
    # libsecp256k1 reads exactly 32 bytes of the hash as well.
    if len(msg_hash) != 32:
        raise ValueError("message hash must be 32 bytes")


def sign_hash_public(msg_hash: bytes, private_key: bytearray | bytes) -> tuple[int, int, int]:
    """``sign_hash`` through coincurve's public ``PrivateKey.sign_recoverable``."""
    _check_key(private_key)
    _check_hash(msg_hash)
    try:
        signature = PrivateKey(bytes(private_key)).sign_recoverable(msg_hash, hasher=None)
    except ValueError:
        raise InvalidPrivateKey("private key is not a valid secp256k1 secret") from None
    return signature[64], int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")


def sign_hash_private() -> Callable[[bytes, bytearray | bytes], tuple[int, int, int]] | None:
    """``sign_hash`` calling the libsecp256k1 function coincurve binds, straight out of the caller's
    buffer; None when coincurve's internals are not the ones this was written for."""
    try:
        from coincurve._libsecp256k1 import ffi, lib
        from coincurve.context import GLOBAL_CONTEXT

        ctx = GLOBAL_CONTEXT.ctx
        sign, serialize = (
            lib.secp256k1_ecdsa_sign_recoverable,
            lib.secp256k1_ecdsa_recoverable_signature_serialize_compact,
        )
    except (ImportError, AttributeError):
        return None

    def sign_hash(msg_hash: bytes, private_key: bytearray | bytes) -> tuple[int, int, int]:
        _check_key(private_key)
        _check_hash(msg_hash)
        # ``from_buffer`` points into the caller's buffer instead of copying it, so no unwipeable
        # ``bytes`` copy of the key is made. It is released at once after use: while the export is
        # alive the caller's bytearray cannot be resized, e.g. cleared in an exception handler.
        secret = ffi.from_buffer(private_key)
        try:
            signature = ffi.new("secp256k1_ecdsa_recoverable_signature *")
            # NULL nonce function = RFC 6979 deterministic nonces; libsecp256k1 always emits low-s
            # signatures, as EIP-2 requires. Also the key-range check: fails for 0 and for >= n.
            if not sign(ctx, signature, msg_hash, secret, ffi.NULL, ffi.NULL):
                raise InvalidPrivateKey("private key is not a valid secp256k1 secret")
        finally:
            ffi.release(secret)
        compact = ffi.new("unsigned char[64]")
        recovery_id = ffi.new("int *")
        serialize(ctx, compact, recovery_id, signature)
        rs = ffi.buffer(compact, 64)[:]
        return recovery_id[0], int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big")

    # A known answer before use: the key 1 and the zero hash, signed through the public API.
    one, zero = (1).to_bytes(32, "big"), bytes(32)
    try:
        if sign_hash(zero, one) != sign_hash_public(zero, one):
            return None
    except (TypeError, AttributeError, InvalidPrivateKey):
        return None
    return sign_hash


def address_of(private_key: bytearray | bytes) -> bytes:
    """The 20-byte address controlled by ``private_key``: keccak(X || Y)[12:], through coincurve's
    public ``PublicKey.from_valid_secret``."""
    _check_key(private_key)
    try:
        point = PublicKey.from_valid_secret(bytes(private_key)).format(compressed=False)
    except ValueError:
        raise InvalidPrivateKey("private key is not a valid secp256k1 secret") from None
    # Drop the 0x04 uncompressed-point prefix.
    return keccak(point[1:])[12:]


# --- the paths in use ---------------------------------------------------------------------------

keccak: Callable[[bytes], bytes] = keccak_private() or keccak_public
sign_hash: Callable[[bytes, bytearray | bytes], tuple[int, int, int]] = sign_hash_private() or sign_hash_public
"""(recovery id, r, s) of an RFC 6979, low-s signature of the 32-byte ``msg_hash``."""

PATHS = {
    "keccak": "public" if keccak is keccak_public else "private",
    "sign_hash": "public" if sign_hash is sign_hash_public else "private",
}
