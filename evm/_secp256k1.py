"""secp256k1 signing and key-to-address through the libsecp256k1 functions coincurve binds.

The public coincurve API (``PrivateKey(secret).sign_recoverable``) derives an
x-only (BIP-340) public key on construction that Ethereum never uses: a wasted
point multiplication costing a third of a signature. Calling libsecp256k1
directly avoids it, and signs straight out of the caller's buffer instead of
copying the key into ``bytes``. tests/unit/test_evm_fast_paths.py pins the results
against coincurve's public API and eth-account.
"""

from __future__ import annotations

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from evm._keccak import keccak


class InvalidKey(ValueError):
    """A private key is not a valid secp256k1 secret. Never carries the key."""


_CTX = GLOBAL_CONTEXT.ctx
_UNCOMPRESSED = lib.SECP256K1_EC_UNCOMPRESSED


def _secret_pointer(private_key: bytearray | bytes):
    # libsecp256k1 reads exactly 32 bytes from the pointer it is given, so
    # the length check is what keeps a short key from becoming an
    # out-of-bounds read.
    if type(private_key) not in (bytearray, bytes) or len(private_key) != 32:
        raise InvalidKey("private key must be 32 bytes")
    # ``from_buffer`` points into the caller's buffer instead of copying it,
    # so no unwipeable ``bytes`` copy of the key is created here. It is
    # released at once after use: while the export is alive the caller's
    # bytearray cannot be resized, e.g. cleared in an exception handler.
    return ffi.from_buffer(private_key)


def _address_from_secret(secret) -> bytes:
    pubkey = ffi.new("secp256k1_pubkey *")
    # Also the key-range check: fails for 0 and for anything >= n.
    if not lib.secp256k1_ec_pubkey_create(_CTX, pubkey, secret):
        raise InvalidKey("private key is not a valid secp256k1 secret")
    out = ffi.new("unsigned char[65]")
    out_len = ffi.new("size_t *", 65)
    lib.secp256k1_ec_pubkey_serialize(_CTX, out, out_len, pubkey, _UNCOMPRESSED)
    # Drop the 0x04 uncompressed-point prefix; the address is the last 20
    # bytes of the hash of X || Y.
    return keccak(ffi.buffer(out, 65)[1:])[12:]


def _sign_hash(msg_hash: bytes, secret) -> tuple[int, int, int]:
    signature = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    # NULL nonce function = RFC 6979 deterministic nonces; libsecp256k1
    # always emits low-s signatures, as EIP-2 requires.
    if not lib.secp256k1_ecdsa_sign_recoverable(_CTX, signature, msg_hash, secret, ffi.NULL, ffi.NULL):
        raise InvalidKey("private key is not a valid secp256k1 secret")
    compact = ffi.new("unsigned char[64]")
    recovery_id = ffi.new("int *")
    lib.secp256k1_ecdsa_recoverable_signature_serialize_compact(_CTX, compact, recovery_id, signature)
    rs = ffi.buffer(compact, 64)[:]
    return (
        recovery_id[0],
        int.from_bytes(rs[:32], "big"),
        int.from_bytes(rs[32:], "big"),
    )


def address_of(private_key: bytearray | bytes) -> bytes:
    """The 20-byte address controlled by ``private_key``: keccak(X || Y)[12:]."""
    secret = _secret_pointer(private_key)
    try:
        return _address_from_secret(secret)
    finally:
        ffi.release(secret)


def sign_hash(msg_hash: bytes, private_key: bytearray | bytes) -> tuple[int, int, int]:
    """(recovery id, r, s) of an RFC 6979, low-s signature of the 32-byte ``msg_hash``."""
    secret = _secret_pointer(private_key)
    try:
        return _sign_hash(msg_hash, secret)
    finally:
        ffi.release(secret)
