"""The agent's Bitcoin wallet: one key, two scripts, with embit's BIP-32 and script builders.

Warden stores a 32-byte BIP-32 seed for key chain ``bitcoin`` and uses one key of it, BIP-84's
first receive key `PATH` (coin type 0' on every network, as one Ethereum key serves every EVM
network). The agent's identity is that key's 33-byte compressed public key K, the same on every
network; its wallet is two descriptors over K:

- ``wpkh(K)``: P2WPKH, ``0 <hash160(K)>`` (BIP-84's script for the key);
- ``tr(K)``: P2TR spent by the key path only, K tweaked by BIP-86's rule with no script tree
  (``embit.script.p2tr(K)``), so no script path hides a second way to spend.

Addresses are these scripts written for a network (`btc.addresses`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embit import bip32, ec, script
from embit.descriptor.checksum import add_checksum

from btc.addresses import address_of

__all__ = ["PATH", "derived_key", "public_key", "OwnScripts", "own_scripts", "addresses", "descriptors"]

PATH = "m/84h/0h/0h/0/0"
# BIP-32's bounds on a seed's length.
_MIN_SEED, _MAX_SEED = 16, 64


def derived_key(seed: bytes | bytearray) -> Any:
    """The private BIP-32 key (embit's `HDKey`) at `PATH` of ``seed``, for `btc.signing`. The
    caller's bytearray goes to HMAC-SHA512 as it is, with no copy; embit's keys hold their secrets
    as immutable bytes, which nothing can wipe, so the caller drops the key as soon as it is done
    with it."""
    if not isinstance(seed, bytes | bytearray):
        raise TypeError("a Bitcoin seed must be a bytearray")
    if not _MIN_SEED <= len(seed) <= _MAX_SEED:
        raise ValueError(f"a BIP-32 seed is {_MIN_SEED} to {_MAX_SEED} bytes, got {len(seed)}")
    try:
        return bip32.HDKey.from_seed(seed).derive(PATH)
    except Exception as exc:  # noqa: BLE001 - embit's ECError/HDError: an invalid key on the path
        # BIP-32 gives this a probability below 2^-127; the message names no secret.
        raise ValueError(f"the seed derives no valid key at {PATH} (BIP-32); use another seed") from exc


def public_key(seed: bytes | bytearray) -> bytes:
    """K: the 33-byte compressed public key at `PATH` of the BIP-32 ``seed`` (16 to 64 bytes)."""
    key = derived_key(seed)
    return bytes(key.sec())


def _point(public_key: bytes) -> ec.PublicKey:
    if not isinstance(public_key, bytes | bytearray) or len(public_key) != 33 or public_key[0] not in (2, 3):
        raise ValueError("a Bitcoin public key here is a 33-byte compressed secp256k1 point (02… or 03…)")
    try:
        return ec.PublicKey.parse(bytes(public_key))
    except Exception as exc:  # noqa: BLE001 - embit's ECError, or libsecp256k1's ValueError
        raise ValueError("the Bitcoin public key is not a point of secp256k1") from exc


@dataclass(frozen=True)
class OwnScripts:
    """The scriptPubKeys of the agent's wallet: its P2WPKH and its P2TR (key path)."""

    p2wpkh: bytes
    p2tr: bytes

    def owns(self, script: bytes) -> bool:
        return script in (self.p2wpkh, self.p2tr)


def own_scripts(public_key: bytes) -> OwnScripts:
    """The scripts of K (`ValueError` for anything but a valid 33-byte compressed point)."""
    point = _point(public_key)
    return OwnScripts(p2wpkh=bytes(script.p2wpkh(point).data), p2tr=bytes(script.p2tr(point).data))


def addresses(public_key: bytes, network: str) -> tuple[str, str]:
    """(P2WPKH, P2TR) addresses of K on the embit ``network`` (``"main"``, ``"regtest"``, …)."""
    own = own_scripts(public_key)
    p2wpkh, p2tr = address_of(own.p2wpkh, network), address_of(own.p2tr, network)
    if p2wpkh is None or p2tr is None:  # both are standard segwit scripts: each has an address
        raise AssertionError("a P2WPKH or P2TR script without an address")
    return p2wpkh, p2tr


def descriptors(public_key: bytes) -> tuple[str, str]:
    """The wallet as output descriptors with their checksums (BIP-380): ``wpkh(K)`` with K
    compressed, ``tr(K)`` with K x-only as BIP-386 writes it (the BIP-86 tweak reads only its
    x coordinate), so a wallet that imports them watches the same two scripts."""
    point = _point(public_key)
    return add_checksum(f"wpkh({point.sec().hex()})"), add_checksum(f"tr({point.xonly().hex()})")
