"""Signing-key chains Warden provisions keys for: key generation and addresses.

Every chain here has exactly one key type and one address form:

=========  ==========  =======================================  ==========================================
chain      curve       ``public_key()``                         ``address()``
=========  ==========  =======================================  ==========================================
ethereum   secp256k1   65 B uncompressed                        EIP-55 ``0x…`` of keccak256(X‖Y)[-20:]
bitcoin    secp256k1   BIP-32 seed → m/84'/0'/0'/0/0,           P2WPKH ``bc1q…`` of hash160(key) (embit)
                       33 B compressed
solana     Ed25519     32 B                                     base58 of the public key
xrp        secp256k1   33 B compressed                          XRP-alphabet base58check(0x00‖hash160)
cardano    Ed25519     32 B                                     CIP-19 enterprise ``addr1v…`` (0x61‖blake2b-224)
tron       secp256k1   65 B uncompressed                        base58check(0x41‖keccak256(X‖Y)[-20:])
=========  ==========  =======================================  ==========================================

The public-key form is the one the chain's own tooling publishes, so published
vectors compare byte for byte. ``address()`` also accepts the other secp256k1
form (33 or 65 bytes) and converts it, after checking the point is on the curve.

Bitcoin's stored secret is not a private key but a BIP-32 seed (16 to 64 bytes;
Warden generates 32): its key is BIP-84's first receive key, and the wallet,
addresses and signing over it are `btc.wallet`'s, on embit. The P2TR address of
the same key is per network (`btc.wallet.addresses`); ``address()`` gives the
mainnet P2WPKH one, the form BIP-84 publishes.

Private keys are ``bytearray`` objects owned by the caller, who wipes them.
Nothing here logs, formats or keeps them, and no error message includes them.
Two limits of the libraries underneath are worth knowing: ``os.urandom`` returns
an immutable ``bytes`` that is copied into the ``bytearray`` and then dropped,
and coincurve (libsecp256k1 through cffi) only takes ``bytes``, so deriving a
secp256k1 public key makes one short-lived immutable copy of the scalar (embit's
BIP-32 keys likewise hold the derived key as ``bytes``).

Codecs: base58/base58check use the ``base58`` package (Bitcoin and XRP
alphabets). Bech32/bech32m are written here after the BIP-173/BIP-350 reference
code for Cardano, which needs bech32 without the 90-character limit (CIP-19):
the PyPI ``bech32`` package and embit both hard-code that limit. Bitcoin's
segwit addresses are embit's (`btc.addresses`), not these.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from enum import Enum

import base58
import coincurve
from Crypto.Hash import RIPEMD160
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_utils import keccak, to_checksum_address

from btc import wallet as btc_wallet
from schemas.errors import WardenError

__all__ = [
    "KEY_CHAINS",
    "UnknownKeyChain",
    "generate_private_key",
    "public_key",
    "address",
    "eip55_checksum_address",
    "cardano_enterprise_address",
    "Base58CheckError",
    "BITCOIN_ALPHABET",
    "XRP_ALPHABET",
    "base58check_encode",
    "base58check_decode",
    "Bech32Error",
    "Bech32Variant",
    "BECH32_MAX_LENGTH",
    "bech32_encode",
    "bech32_decode",
    "convertbits",
]

KEY_CHAINS: tuple[str, ...] = ("ethereum", "bitcoin", "solana", "xrp", "cardano", "tron")

_SECP256K1_CHAINS = frozenset({"ethereum", "bitcoin", "xrp", "tron"})
_ED25519_CHAINS = frozenset({"solana", "cardano"})
# Chains whose stored secret is a BIP-32 seed, from which the signing key is derived.
_SEED_CHAINS = frozenset({"bitcoin"})
_UNCOMPRESSED_CHAINS = frozenset({"ethereum", "tron"})

# Order of the secp256k1 group, big-endian. A private key is valid iff 0 < k < n.
_SECP256K1_ORDER = bytes.fromhex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
_ZERO32 = bytes(32)

_XRP_ACCOUNT_VERSION = b"\x00"
_TRON_ADDRESS_VERSION = b"\x41"
_CARDANO_ENTERPRISE_KEYHASH = 0x60  # header type 6: PaymentKeyHash, no delegation
_CARDANO_MAINNET = 1
_CARDANO_TESTNET = 0


class UnknownKeyChain(WardenError, ValueError):
    """Raised for a chain name that is not one of ``KEY_CHAINS``."""

    def __init__(self, chain: object) -> None:
        super().__init__(f"unknown key chain {chain!r}; allowed chains: {', '.join(KEY_CHAINS)}")
        self.chain = chain


def _check_chain(chain: object) -> str:
    if not isinstance(chain, str) or chain not in KEY_CHAINS:
        raise UnknownKeyChain(chain)
    return chain


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


def _is_valid_secp256k1_scalar(key: bytes | bytearray) -> bool:
    # Same-length big-endian byte strings compare like the integers they hold,
    # so the range check needs no int copy of the secret.
    return len(key) == 32 and _ZERO32 < key < _SECP256K1_ORDER


def generate_private_key(chain: str) -> bytearray:
    """Return a fresh 32-byte private key for ``chain`` from ``os.urandom``.

    secp256k1 keys are redrawn until they are a valid scalar (1 <= k < n), the
    same rule libsecp256k1 and coincurve apply; any 32 bytes are a valid
    Ed25519 seed (RFC 8032 private key) and a valid BIP-32 seed (bitcoin).
    """
    chain = _check_chain(chain)
    while True:
        key = bytearray(os.urandom(32))
        if chain in _ED25519_CHAINS or chain in _SEED_CHAINS or _is_valid_secp256k1_scalar(key):
            return key
        key[:] = _ZERO32  # astronomically unlikely; wipe and redraw


def public_key(chain: str, private_key: bytearray) -> bytes:
    """Derive the chain's public key (see the module table for its form); for bitcoin
    ``private_key`` is the BIP-32 seed (`btc.wallet.public_key`)."""
    chain = _check_chain(chain)
    if not isinstance(private_key, (bytes, bytearray)):
        raise TypeError("private key must be a bytearray")
    if chain in _SEED_CHAINS:
        return btc_wallet.public_key(private_key)
    if len(private_key) != 32:
        raise ValueError(f"{chain} private key must be 32 bytes, got {len(private_key)}")
    if chain in _ED25519_CHAINS:
        signing_key = Ed25519PrivateKey.from_private_bytes(private_key)
        return signing_key.public_key().public_bytes_raw()
    if not _is_valid_secp256k1_scalar(private_key):
        raise ValueError("secp256k1 private key is not a valid scalar (need 0 < k < n)")
    point = coincurve.PublicKey.from_valid_secret(bytes(private_key))
    return point.format(compressed=chain not in _UNCOMPRESSED_CHAINS)


def _secp256k1_point(chain: str, pubkey: bytes) -> coincurve.PublicKey:
    if len(pubkey) not in (33, 65):
        raise ValueError(
            f"{chain} public key must be a 33-byte compressed or 65-byte uncompressed "
            f"secp256k1 point, got {len(pubkey)} bytes"
        )
    try:
        return coincurve.PublicKey(bytes(pubkey))
    except ValueError as exc:
        raise ValueError(f"{chain} public key is not a valid secp256k1 point") from exc


def _ed25519_public(chain: str, pubkey: bytes) -> bytes:
    if len(pubkey) != 32:
        raise ValueError(f"{chain} public key must be 32 bytes, got {len(pubkey)}")
    return bytes(pubkey)


def _hash160(data: bytes) -> bytes:
    # hashlib's ripemd160 depends on the OpenSSL build (absent by default in
    # OpenSSL 3); pycryptodome's is always there.
    return RIPEMD160.new(hashlib.sha256(data).digest()).digest()


def _keccak_account(point: coincurve.PublicKey) -> bytes:
    return keccak(point.format(compressed=False)[1:])[-20:]


def eip55_checksum_address(account: bytes) -> str:
    """EIP-55 mixed-case ``0x`` form of a 20-byte Ethereum account."""
    if len(account) != 20:
        raise ValueError(f"Ethereum account must be 20 bytes, got {len(account)}")
    return to_checksum_address(bytes(account))


def cardano_enterprise_address(pubkey: bytes, network_id: int = _CARDANO_MAINNET) -> str:
    """CIP-19 type-6 (enterprise, key hash, no stake part) address.

    ``network_id`` 1 is mainnet (hrp ``addr``), 0 is testnet (``addr_test``).
    """
    if network_id not in (_CARDANO_MAINNET, _CARDANO_TESTNET):
        raise ValueError("Cardano network id must be 1 (mainnet) or 0 (testnet)")
    key_hash = hashlib.blake2b(_ed25519_public("cardano", pubkey), digest_size=28).digest()
    payload = bytes([_CARDANO_ENTERPRISE_KEYHASH | network_id]) + key_hash
    hrp = "addr" if network_id == _CARDANO_MAINNET else "addr_test"
    return bech32_encode(hrp, convertbits(payload, 8, 5, True), max_length=None)


def address(chain: str, public_key: bytes) -> str:
    """The chain's mainnet address string for ``public_key``."""
    chain = _check_chain(chain)
    if not isinstance(public_key, (bytes, bytearray, memoryview)):
        raise TypeError("public key must be bytes")
    pubkey = bytes(public_key)
    if chain == "solana":
        return base58.b58encode(_ed25519_public(chain, pubkey)).decode("ascii")
    if chain == "cardano":
        return cardano_enterprise_address(pubkey, _CARDANO_MAINNET)
    point = _secp256k1_point(chain, pubkey)
    if chain == "ethereum":
        return eip55_checksum_address(_keccak_account(point))
    if chain == "tron":
        return base58check_encode(_TRON_ADDRESS_VERSION + _keccak_account(point))
    if chain == "bitcoin":
        return btc_wallet.addresses(point.format(compressed=True), "main")[0]
    # xrp
    account_id = _hash160(point.format(compressed=True))
    return base58check_encode(_XRP_ACCOUNT_VERSION + account_id, alphabet=XRP_ALPHABET)


# --------------------------------------------------------------------------
# Base58Check (double-SHA256 checksum), via the `base58` package
# --------------------------------------------------------------------------

BITCOIN_ALPHABET: bytes = base58.BITCOIN_ALPHABET
XRP_ALPHABET: bytes = base58.XRP_ALPHABET


class Base58CheckError(WardenError, ValueError):
    """A base58check string with a bad character or a bad checksum."""


def base58check_encode(payload: bytes, alphabet: bytes = BITCOIN_ALPHABET) -> str:
    """base58(payload ‖ sha256(sha256(payload))[:4]) in ``alphabet``."""
    return base58.b58encode_check(bytes(payload), alphabet=alphabet).decode("ascii")


def base58check_decode(text: str, alphabet: bytes = BITCOIN_ALPHABET) -> bytes:
    """Inverse of :func:`base58check_encode`; raises :class:`Base58CheckError`."""
    if not isinstance(text, str) or not text.isascii():
        raise Base58CheckError("base58check input must be an ASCII string")
    try:
        return base58.b58decode_check(text, alphabet=alphabet)
    except ValueError as exc:
        raise Base58CheckError(str(exc)) from exc


# --------------------------------------------------------------------------
# Bech32 / Bech32m (BIP-173, BIP-350), after the reference implementation
# --------------------------------------------------------------------------

BECH32_MAX_LENGTH = 90
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class Bech32Variant(Enum):
    BECH32 = 1  # BIP-173
    BECH32M = 0x2BC830A3  # BIP-350


class Bech32Error(WardenError, ValueError):
    """An invalid bech32/bech32m string or segwit address."""


def _polymod(values: Iterable[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _create_checksum(hrp: str, data: Sequence[int], variant: Bech32Variant) -> list[int]:
    polymod = _polymod(_hrp_expand(hrp) + list(data) + [0] * 6) ^ variant.value
    return [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]


def bech32_encode(
    hrp: str,
    data: Sequence[int],
    variant: Bech32Variant = Bech32Variant.BECH32,
    *,
    max_length: int | None = BECH32_MAX_LENGTH,
) -> str:
    """Encode 5-bit ``data`` under ``hrp``. ``max_length=None`` lifts the limit."""
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise Bech32Error("human-readable part must be 1+ characters in ASCII 33..126")
    if hrp.lower() != hrp and hrp.upper() != hrp:
        raise Bech32Error("human-readable part must not be mixed case")
    if any(not 0 <= d < 32 for d in data):
        raise Bech32Error("data values must be 5-bit integers")
    hrp = hrp.lower()
    combined = list(data) + _create_checksum(hrp, data, variant)
    result = hrp + "1" + "".join(_CHARSET[d] for d in combined)
    if max_length is not None and len(result) > max_length:
        raise Bech32Error(f"bech32 string longer than {max_length} characters")
    return result


def bech32_decode(bech: str, *, max_length: int | None = BECH32_MAX_LENGTH) -> tuple[str, list[int], Bech32Variant]:
    """Decode and verify a bech32 or bech32m string.

    Returns ``(hrp, data, variant)`` with ``hrp`` lower-cased and ``data`` the
    5-bit values without the checksum. ``max_length=None`` lifts the 90
    character limit (Cardano, CIP-19). Raises :class:`Bech32Error`.
    """
    if not isinstance(bech, str):
        raise Bech32Error("bech32 input must be a string")
    if any(not 33 <= ord(c) <= 126 for c in bech):
        raise Bech32Error("character out of range")
    if bech.lower() != bech and bech.upper() != bech:
        raise Bech32Error("mixed case")
    if max_length is not None and len(bech) > max_length:
        raise Bech32Error(f"overall max length ({max_length}) exceeded")
    bech = bech.lower()
    pos = bech.rfind("1")
    if pos < 1:
        raise Bech32Error("empty human-readable part or no separator")
    if pos + 7 > len(bech):
        raise Bech32Error("checksum too short")
    hrp = bech[:pos]
    try:
        data = [_CHARSET_REV[c] for c in bech[pos + 1 :]]
    except KeyError as exc:
        raise Bech32Error(f"invalid data character {exc.args[0]!r}") from None
    const = _polymod(_hrp_expand(hrp) + data)
    for variant in Bech32Variant:
        if const == variant.value:
            return hrp, data[:-6], variant
    raise Bech32Error("invalid checksum")


def convertbits(data: Iterable[int], frombits: int, tobits: int, pad: bool = True) -> list[int]:
    """Regroup bits (e.g. 8-bit bytes to 5-bit bech32 values); strict on padding."""
    acc = 0
    bits = 0
    ret: list[int] = []
    maxv = (1 << tobits) - 1
    max_acc = (1 << (frombits + tobits - 1)) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise Bech32Error("value out of range for bit conversion")
        acc = ((acc << frombits) | value) & max_acc
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            ret.append((acc >> bits) & maxv)
    if pad:
        if bits:
            ret.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise Bech32Error("invalid padding in bit conversion")
    return ret
