"""Byte-level helpers shared by custody: AES-256-GCM on bytearrays, associated
data encoding, base64 of stored envelopes, wiping.

Plaintext keys only ever live in ``bytearray``s that callers wipe; AES-GCM
decrypts straight into them (``decrypt_into``) so no immutable copy of a key is
made on the way out.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from signer.custody.errors import InvalidKey

NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32


def wipe(buf: bytearray | memoryview | None) -> None:
    """Overwrite ``buf`` with zeros in place (same-length slice assignment never reallocates)."""
    if buf is not None and len(buf):
        buf[:] = bytes(len(buf))


def random_key() -> bytearray:
    return bytearray(os.urandom(KEY_BYTES))


def aad(*parts: str | int | bytes) -> bytes:
    """Unambiguous associated data: each part length-prefixed, so ("ab", "c")
    and ("a", "bc") can never authenticate as each other."""
    out = bytearray()
    for part in parts:
        if isinstance(part, int):
            raw = str(part).encode()
        elif isinstance(part, str):
            raw = part.encode()
        else:
            raw = bytes(part)
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


def seal(aead: AESGCM, plaintext: bytes | bytearray, associated: bytes) -> bytes:
    """nonce ‖ ciphertext ‖ tag. Random 96-bit nonces: each key here encrypts few
    messages (one DEK per secret version), far below the 2**32 bound."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + aead.encrypt(nonce, plaintext, associated)


def seal_key(key: bytes | bytearray, plaintext: bytes | bytearray, associated: bytes) -> bytes:
    return seal(AESGCM(key), plaintext, associated)


def open_into(aead: AESGCM, sealed: bytes, associated: bytes) -> bytearray:
    """Decrypt into a fresh bytearray; any failure is the one opaque ``InvalidKey``."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise InvalidKey()
    out = bytearray(len(sealed) - NONCE_BYTES - TAG_BYTES)
    try:
        aead.decrypt_into(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated, out)
    except (InvalidTag, ValueError, TypeError):
        wipe(out)
        raise InvalidKey() from None
    return out


def open_key(key: bytes | bytearray, sealed: bytes, associated: bytes) -> bytearray:
    return open_into(AESGCM(key), sealed, associated)


def from_b64(text: str) -> bytes:
    """A stored envelope's bytes; malformed base64 fails like a tampered envelope, as ``InvalidKey``."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey() from None
