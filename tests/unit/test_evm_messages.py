"""Tests for evm.messages (EIP-191 personal_sign), with eth-account as the
independent reference implementation.

eth-account is imported here only, as an oracle.
"""

from __future__ import annotations

from typing import Any

import pytest
from coincurve import PublicKey
from eth_account import Account
from eth_account.messages import _hash_eip191_message, defunct_hash_message, encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from evm._crypto import InvalidPrivateKey, address_of, keccak
from evm.constants import SECP256K1N
from evm.messages import (
    MAX_MESSAGE_BYTES,
    InvalidMessage,
    InvalidSignature,
    personal_sign_hash,
    recover_digest,
    sign_digest,
)

# The key of eth-account's own documentation examples.
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = bytes.fromhex(Account.from_key(KEY).address[2:])

MESSAGES = [
    pytest.param(b"", id="empty"),
    pytest.param(b"I agree to the terms.", id="ascii"),
    pytest.param("Überweisung an Jürgen ✓ 👍".encode("utf-8"), id="utf-8"),
    pytest.param(bytes(range(256)), id="binary"),
    # Lengths where the decimal length in the prefix gains a digit.
    pytest.param(b"x" * 9, id="len-9"),
    pytest.param(b"x" * 10, id="len-10"),
    pytest.param(bytes(range(256)) * (MAX_MESSAGE_BYTES // 256), id="max-size"),
]


def test_max_size_message_is_max_size() -> None:
    assert len(bytes(range(256)) * (MAX_MESSAGE_BYTES // 256)) == MAX_MESSAGE_BYTES


@pytest.mark.parametrize("message", MESSAGES)
def test_hash_matches_eth_account(message: bytes) -> None:
    signable = encode_defunct(primitive=message)
    expected = _hash_eip191_message(signable)
    assert personal_sign_hash(message) == expected
    assert personal_sign_hash(message) == defunct_hash_message(primitive=message)


@pytest.mark.parametrize("message", MESSAGES)
def test_signature_recovers_with_eth_account(message: bytes) -> None:
    signature = sign_digest(personal_sign_hash(message), bytearray(KEY))
    assert len(signature) == 65 and signature[64] in (27, 28)
    signable = encode_defunct(primitive=message)
    assert Account.recover_message(signable, signature=signature) == Account.from_key(KEY).address
    # Both sides use RFC 6979 nonces, so the signatures are the same bytes.
    assert signature == bytes(Account.sign_message(signable, KEY).signature)
    assert recover_digest(personal_sign_hash(message), signature) == ADDRESS


def test_hash_is_the_prefixed_keccak() -> None:
    assert personal_sign_hash(b"hello") == keccak(b"\x19Ethereum Signed Message:\n5hello")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.integers(1, SECP256K1N - 1))
def test_random_messages_and_keys(message: bytes, secret: int) -> None:
    key = secret.to_bytes(32, "big")
    signature = sign_digest(personal_sign_hash(message), key)
    signable = encode_defunct(primitive=message)
    assert signature == bytes(Account.sign_message(signable, key).signature)
    assert recover_digest(personal_sign_hash(message), signature) == address_of(key)
    # libsecp256k1 emits low s only (EIP-2).
    assert 0 < int.from_bytes(signature[32:64], "big") <= SECP256K1N // 2


# --- refusals ------------------------------------------------------------------


def test_over_length_message_refused() -> None:
    with pytest.raises(InvalidMessage, match=f"at most {MAX_MESSAGE_BYTES} bytes, got {MAX_MESSAGE_BYTES + 1}"):
        personal_sign_hash(b"\x00" * (MAX_MESSAGE_BYTES + 1))


@pytest.mark.parametrize("message", ["hello", bytearray(b"hello"), memoryview(b"hello"), None, 5])
def test_non_bytes_message_refused(message: Any) -> None:  # Any: not bytes, on purpose
    with pytest.raises(ValueError, match="message must be bytes"):
        personal_sign_hash(message)


@pytest.mark.parametrize("digest", [b"\x00" * 31, b"\x00" * 33, b"", bytearray(32), "00" * 32])
def test_digest_must_be_32_bytes(digest: Any) -> None:  # Any: hex text among them, on purpose
    with pytest.raises(InvalidMessage, match="digest must be"):
        sign_digest(digest, KEY)
    with pytest.raises(InvalidMessage, match="digest must be"):
        recover_digest(digest, b"\x01" * 65)


@pytest.mark.parametrize("key", [b"\x00" * 32, SECP256K1N.to_bytes(32, "big"), b"\x01" * 31, "01" * 32])
def test_invalid_key_refused(key: Any) -> None:  # Any: hex text among them, on purpose
    with pytest.raises(InvalidPrivateKey):
        sign_digest(b"\x11" * 32, key)


def _split(signature: bytes) -> tuple[int, int, int]:
    return (int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64])


def _join(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((v,))


def test_high_s_refused() -> None:
    digest = personal_sign_hash(b"pay 1 ETH")
    r, s, v = _split(sign_digest(digest, KEY))
    # (r, n - s) with the other parity is the same signature, mirrored: it
    # really does recover the same key, which is exactly why EIP-2 bans it.
    malleated = _join(r, SECP256K1N - s, 55 - v)
    recoverable = malleated[:64] + bytes((malleated[64] - 27,))
    public_key = PublicKey.from_signature_and_message(recoverable, digest, hasher=None)
    assert keccak(public_key.format(compressed=False)[1:])[12:] == ADDRESS
    with pytest.raises(InvalidSignature, match="EIP-2 low s"):
        recover_digest(digest, malleated)


def test_v_forms() -> None:
    digest = personal_sign_hash(b"v forms")
    r, s, v = _split(sign_digest(digest, KEY))
    assert recover_digest(digest, _join(r, s, v)) == ADDRESS
    assert recover_digest(digest, _join(r, s, v - 27)) == ADDRESS
    for bad_v in (2, 26, 29, 35, 37, 255):
        with pytest.raises(InvalidSignature, match=f"got {bad_v}"):
            recover_digest(digest, _join(r, s, bad_v))


@pytest.mark.parametrize(
    ("r", "s", "match"),
    [
        (0, 1, "r must be"),
        (SECP256K1N, 1, "r must be"),
        (2**256 - 1, 1, "r must be"),
        (1, 0, "s must be"),
        (1, SECP256K1N // 2 + 1, "s must be"),
        (1, SECP256K1N, "s must be"),
    ],
)
def test_r_s_out_of_range_refused(r: int, s: int, match: str) -> None:
    with pytest.raises(InvalidSignature, match=match):
        recover_digest(b"\x22" * 32, _join(r, s, 27))


@pytest.mark.parametrize("signature", [b"\x01" * 64, b"\x01" * 66, b"", bytearray(65), "01" * 65])
def test_signature_shape_refused(signature: Any) -> None:  # Any: hex text among them, on purpose
    with pytest.raises(InvalidSignature, match="signature must be"):
        recover_digest(b"\x22" * 32, signature)


def test_other_digest_recovers_someone_else() -> None:
    signature = sign_digest(personal_sign_hash(b"one"), KEY)
    assert recover_digest(personal_sign_hash(b"two"), signature) != ADDRESS
