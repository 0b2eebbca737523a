"""Blob transaction material the EIP-4844 tests share: two blobs, their destination and chain."""

from __future__ import annotations

TO = bytes.fromhex("00" * 18 + "b10b")
CHAIN = 31337


def blob_of(seed: int) -> bytes:
    # A zero first byte in each 32-byte field element keeps it below the BLS modulus.
    return b"".join(b"\x00" + bytes([(seed + i) % 251]) * 31 for i in range(4096))


BLOBS = (blob_of(1), blob_of(2))
