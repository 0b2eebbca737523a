"""Customer-managed keys (CMEK): an optional outer layer over each version's KEK-wrapped DEK.

A vault with a CMEK stores only the key's SHA-256 fingerprint; the key itself is
handed to a process (``CmekLayer.load``, memory only) or given per read. The
layer binds (org, vault, path, version, fingerprint), so a wrapped DEK moved to
another slot, or opened with another key, is the one opaque ``InvalidKey``.

Like ``MultiFernet.rotate``, rotation is a first-class operation: ``rotate``
opens a wrapped DEK under the key it names and seals it under the new one. Only
this outer layer changes, so rotating needs neither the KEK nor a client share.
"""

from __future__ import annotations

import hashlib
import hmac
import threading

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from signer.custody._crypto import KEY_BYTES, aad, open_into, seal, wipe
from signer.custody.errors import CustodyError, InvalidKey

# Versions re-wrapped per batch while rotating: the vault's write lock is held per batch only.
CMEK_BATCH = 100

# Where a wrapped DEK lives: (org, vault, path, version).
Slot = tuple[str, str, str, int]


def fingerprint(cmek: bytes | bytearray) -> str:
    """SHA-256 fingerprint of a customer-managed key: the only thing about it that is stored."""
    return hashlib.sha256(bytes(b"warden/cmek\x00") + cmek).hexdigest()


def check_key(cmek: bytes | bytearray) -> None:
    if len(cmek) != KEY_BYTES:
        raise CustodyError("a customer-managed key is 32 bytes (AES-256)")


def _aad(slot: Slot, fp: str) -> bytes:
    return aad("warden/cmek/v1", *slot, fp)


class CmekLayer:
    """The customer-managed keys this process holds, by fingerprint, and the layer they put on DEKs."""

    def __init__(self) -> None:
        self._keys: dict[str, AESGCM] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CmekLayer(held={len(self._keys)})"

    def load(self, cmek: bytes | bytearray) -> str:
        """Hold ``cmek`` in memory; returns its fingerprint."""
        fp = fingerprint(cmek)
        with self._lock:
            self._keys[fp] = AESGCM(cmek)
        return fp

    def holds(self, fp: str) -> bool:
        with self._lock:
            return fp in self._keys

    def forget(self, fp: str) -> None:
        with self._lock:
            self._keys.pop(fp, None)

    def key(self, fp: str, given: bytes | bytearray | None = None) -> AESGCM:
        """The key for ``fp``: ``given`` (for one read; a key that is not ``fp``'s is
        ``InvalidKey``), else the one this process holds."""
        if given is not None:
            if not hmac.compare_digest(fingerprint(given), fp):
                raise InvalidKey()
            return AESGCM(given)
        with self._lock:
            aead = self._keys.get(fp)
        if aead is None:
            raise CustodyError(
                "this vault has a customer-managed key that this process does not hold; load it with Vaults.load_cmek"
            )
        return aead

    def seal(self, fp: str, inner: bytes | bytearray, slot: Slot) -> bytes:
        """Put the layer of the held key ``fp`` on a KEK-wrapped DEK."""
        return seal(self.key(fp), inner, _aad(slot, fp))

    @staticmethod
    def open(aead: AESGCM | None, fp: str | None, wrapped: bytes, slot: Slot) -> bytearray:
        """Take the layer off ``wrapped`` (no layer when ``fp`` is None). The caller wipes the result."""
        if fp is None:
            return bytearray(wrapped)
        if aead is None:
            raise InvalidKey()
        return open_into(aead, wrapped, _aad(slot, fp))

    def rotate(self, wrapped: bytes, old_fp: str | None, new_fp: str, slot: Slot) -> bytes:
        """``wrapped`` (under ``old_fp``, or no layer) re-sealed under ``new_fp``; both keys held."""
        inner = self.open(self.key(old_fp) if old_fp else None, old_fp, wrapped, slot)
        try:
            return self.seal(new_fp, inner, slot)
        finally:
            wipe(inner)
