"""RLP encoding for the handful of shapes a transaction has.

pyrlp's generic ``rlp.encode`` infers a sedes for every item and costs more than
the secp256k1 signature itself. Each field is encoded once and the encoded
payload is shared between the signing hash and the signed serialization.
tests/unit/test_evm_fast_paths.py checks every function against ``rlp.encode``.
Decoding uses pyrlp itself: it is not on the signing path.
"""

from __future__ import annotations


def _length_prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes((offset + length,))
    length_bytes = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(length_bytes),)) + length_bytes


def encode_uint(value: int) -> bytes:
    if value == 0:
        return b"\x80"
    if value < 0x80:
        return bytes((value,))
    # Every integer field is < 2**256, so its length always fits the
    # short-string form.
    length = (value.bit_length() + 7) // 8
    return bytes((0x80 + length,)) + value.to_bytes(length, "big")


def encode_bytes(value: bytes) -> bytes:
    length = len(value)
    if length == 1 and value[0] < 0x80:
        return value
    if length < 56:
        return bytes((0x80 + length,)) + value
    return _length_prefix(length, 0x80) + value


def encode_list(payload: bytes) -> bytes:
    return _length_prefix(len(payload), 0xC0) + payload


def encode_access_list(access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...]) -> bytes:
    if not access_list:
        return b"\xc0"
    entries = []
    for address, keys in access_list:
        # Storage keys are always 32 bytes: 0xa0 prefix.
        encoded_keys = b"".join([b"\xa0" + key for key in keys])
        entries.append(encode_list(b"\x94" + address + encode_list(encoded_keys)))
    return encode_list(b"".join(entries))
