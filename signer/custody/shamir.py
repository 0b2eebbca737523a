"""Secret sharing for the MPC custody modes: XOR 2-of-2 and Shamir k-of-n over GF(256).

Shamir works byte by byte: for each secret byte s a random polynomial
f(x) = s + a1·x + … + a(k-1)·x^(k-1) over GF(2^8) (the AES field, x^8+x^4+x^3+x+1)
is drawn, and share i is f(i) for i = 1..n. Any k shares give f(0) = s by
Lagrange interpolation; fewer than k are uniformly distributed and say nothing
about s. Coefficients are drawn uniformly, zero included: excluding zero would
bias the shares.

Multiplication uses a fixed eight-round shift-and-add with masks rather than
log/exp tables, so no table is indexed by a secret byte. Share x-coordinates are
public, so their inverses may branch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from signer.custody._crypto import wipe


def _gf_mul(a: int, b: int) -> int:
    product = 0
    for _ in range(8):
        product ^= a & -(b & 1)
        carry = -((a >> 7) & 1)
        a = ((a << 1) ^ (0x1B & carry)) & 0xFF
        b >>= 1
    return product & 0xFF


def _gf_inv(a: int) -> int:
    if a == 0:
        raise ValueError("zero has no inverse in GF(256)")
    # a^254 = a^-1 in GF(2^8); only ever applied to public x-coordinates.
    result, base, exp = 1, a, 254
    while exp:
        if exp & 1:
            result = _gf_mul(result, base)
        base = _gf_mul(base, base)
        exp >>= 1
    return result


def split(secret: bytes | bytearray, k: int, n: int) -> list[tuple[int, bytearray]]:
    """Split ``secret`` into ``n`` shares (x, y) with x = 1..n, any ``k`` of which rebuild it."""
    if not 2 <= k <= n <= 255:
        raise ValueError(f"need 2 <= k <= n <= 255, got k={k}, n={n}")
    shares = [(x, bytearray(len(secret))) for x in range(1, n + 1)]
    coefficients = bytearray(os.urandom(len(secret) * (k - 1)))
    try:
        for i, s in enumerate(secret):
            row = coefficients[i * (k - 1) : (i + 1) * (k - 1)]
            for x, y in shares:
                # Horner: ((a_{k-1}·x + a_{k-2})·x + …)·x + s
                acc = 0
                for a in reversed(row):
                    acc = _gf_mul(acc, x) ^ a
                y[i] = _gf_mul(acc, x) ^ s
            wipe(row)
    finally:
        wipe(coefficients)
    return shares


def combine(shares: Sequence[tuple[int, bytes | bytearray]]) -> bytearray:
    """Rebuild the secret from k shares (x, y) by Lagrange interpolation at x = 0."""
    xs = [x for x, _ in shares]
    if len(set(xs)) != len(xs) or any(not 1 <= x <= 255 for x in xs):
        raise ValueError("shares need distinct x-coordinates in 1..255")
    length = len(shares[0][1])
    if any(len(y) != length for _, y in shares):
        raise ValueError("shares differ in length")
    weights = []
    for j, xj in enumerate(xs):
        # l_j(0) = Π_{m≠j} x_m / (x_m − x_j); subtraction is XOR in GF(2^8).
        num, den = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                num = _gf_mul(num, xm)
                den = _gf_mul(den, xm ^ xj)
        weights.append(_gf_mul(num, _gf_inv(den)))
    secret = bytearray(length)
    for (_, y), w in zip(shares, weights, strict=True):
        for i in range(length):
            secret[i] ^= _gf_mul(y[i], w)
    return secret


def xor_split(secret: bytes | bytearray) -> tuple[bytearray, bytearray]:
    """2-of-2: (server share, client share). The client share is uniform random,
    so either share alone is uniform and independent of the secret."""
    client = bytearray(os.urandom(len(secret)))
    server = xor(secret, client)
    return server, client


def xor(a: bytes | bytearray, b: bytes | bytearray) -> bytearray:
    if len(a) != len(b):
        raise ValueError("shares differ in length")
    return bytearray(x ^ y for x, y in zip(a, b, strict=True))
