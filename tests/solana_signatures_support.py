"""Ed25519 signatures a plain verification accepts and Solana's runtime refuses, made with a
key's secret as a fee payer who wants them refused could make them, and another valid signature
of a message by the same key (what a fee payer signs a copy of a transaction with). Written on
RFC 8032's arithmetic (section 5.1), in Python: the tests see every step."""

from __future__ import annotations

import hashlib
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from solders.keypair import Keypair
from solders.signature import Signature

# Edwards25519 (RFC 8032 section 5.1): the field, the curve's d, the group order and the base point.
P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
L = 2**252 + 27742317777372353535851937790883648493
IDENTITY = (1).to_bytes(32, "little")  # the identity point (0, 1), encoded


def _decode(encoded: bytes) -> tuple[int, int]:
    y = int.from_bytes(encoded, "little") & (2**255 - 1)
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    assert (x * x - x2) % P == 0, "not a point"
    return (P - x if x & 1 != encoded[31] >> 7 else x), y


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P


def _times(n: int, point: tuple[int, int]) -> tuple[int, int]:
    out = (0, 1)
    while n:
        if n & 1:
            out = _add(out, point)
        point, n = _add(point, point), n >> 1
    return out


BASE = _decode((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def textbook_verify(key: bytes, signature: bytes, message: bytes) -> bool:
    """The bare verification equation [S]B = R + [k]A, with no check on S's range or on the order
    of R or A: what a lenient Ed25519 verifier computes."""
    r, s = signature[:32], int.from_bytes(signature[32:], "little")
    k = int.from_bytes(hashlib.sha512(r + key + message).digest(), "little") % L
    return _times(s, BASE) == _add(_decode(r), _times(k, _decode(key)))


def plain_verify(key: bytes, signature: bytes, message: bytes) -> bool:
    """What `svm.transactions` checked other slots with before: OpenSSL's Ed25519, through
    cryptography."""
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def identity_r(keypair: Keypair, message: bytes) -> bytes:
    """A signature by ``keypair`` over ``message`` whose R is the identity point: S = k·a, which
    only the key's holder can compute; the runtime refuses it (R of small order)."""
    k = int.from_bytes(hashlib.sha512(IDENTITY + bytes(keypair.pubkey()) + message).digest(), "little") % L
    return IDENTITY + (k * _secret_scalar(keypair) % L).to_bytes(32, "little")


def non_canonical_s(keypair: Keypair, message: bytes) -> bytes:
    """``keypair``'s own signature with S + L in place of S: the same point [S]B, S not reduced."""
    good = bytes(keypair.sign_message(message))
    return good[:32] + (int.from_bytes(good[32:], "little") + L).to_bytes(32, "little")


def _encode(point: tuple[int, int]) -> bytes:
    x, y = point
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _secret_scalar(keypair: Keypair) -> int:
    a = int.from_bytes(hashlib.sha512(bytes(keypair.secret()[:32])).digest()[:32], "little")
    return (a & ((1 << 254) - 8)) | (1 << 254)


def resigned(keypair: Keypair, message: bytes) -> Signature:
    """Another valid signature by ``keypair`` over ``message`` than the deterministic one: a
    random nonce r, R = [r]B, S = r + k·a. The runtime accepts it (a new transaction id)."""
    r = secrets.randbelow(L - 1) + 1
    big_r = _encode(_times(r, BASE))
    k = int.from_bytes(hashlib.sha512(big_r + bytes(keypair.pubkey()) + message).digest(), "little") % L
    return Signature.from_bytes(big_r + ((r + k * _secret_scalar(keypair)) % L).to_bytes(32, "little"))
