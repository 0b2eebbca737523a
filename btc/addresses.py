"""Bitcoin addresses: what an address text is, its scriptPubKey, and the networks that write it so.

An agent names a payee by address; Warden pays the script the address stands for. This module reads
an address in each form a Bitcoin wallet writes (base58check P2PKH and P2SH; bech32 P2WPKH and
P2WSH, BIP-173; bech32m P2TR, BIP-350) with embit's codecs and network table
(`embit.networks.NETWORKS`), and writes a script back as an address on a network.

Witness versions 2 to 16 are refused although they are valid addresses: no soft fork gives them a
meaning yet, so coins paid to them are anyone's once one does.

Network names are embit's: ``"main"``, ``"test"``, ``"regtest"``, ``"signet"``.
`NETWORK_OF_CHAIN` maps Warden's Bitcoin networks (`schemas.chains`) onto them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from embit import base58, bech32
from embit.networks import NETWORKS
from embit.script import Script, address_to_scriptpubkey

__all__ = ["NETWORK_OF_CHAIN", "AddressInvalid", "parse_address", "script_of", "networks_of", "address_of"]

NETWORK_OF_CHAIN: Mapping[str, str] = MappingProxyType({"bitcoin": "main", "bitcoin-regtest": "regtest"})

# The script types an address of this module stands for (embit's `Script.script_type` names).
_KINDS = frozenset({"p2pkh", "p2sh", "p2wpkh", "p2wsh", "p2tr"})
_HRPS = frozenset(str(net["bech32"]) for net in NETWORKS.values())
# A base58 address is 25 bytes (version, hash160, checksum): 34 or 35 characters. A segwit one is
# at most 90 (BIP-173). Anything longer is refused before a codec reads it.
_MAX_LENGTH = 90
_WHAT = "must be a Bitcoin address (bech32 bc1…/tb1…/bcrt1…, or base58)"


class AddressInvalid(ValueError):
    """Text that is not a Bitcoin address of a kind Warden pays."""


def _refuse(text: object, why: str) -> AddressInvalid:
    shown = repr(text) if isinstance(text, str) and len(text) <= _MAX_LENGTH else f"a {type(text).__name__}"
    return AddressInvalid(f"{shown} {_WHAT}: {why}")


def _is_bech32(text: str) -> bool:
    # Base58 addresses of every network start with 1, 3, m, n or 2; no segwit prefix does.
    return text.lower().startswith(tuple(f"{hrp}1" for hrp in _HRPS))


def _bech32_problem(text: str) -> str:
    """Why embit's segwit decoder refused ``text``, for the message."""
    encoding, hrp, data = bech32.bech32_decode(text)
    if encoding is None or hrp is None or not data:
        return "its characters or bech32 checksum are not valid"
    if hrp not in _HRPS:
        return f"its prefix {hrp!r} is no Bitcoin network's ({', '.join(sorted(_HRPS))})"
    version = data[0]
    program = bech32.convertbits(data[1:], 5, 8, False)
    if version > 16 or program is None:
        return "its witness version or program is not valid"
    if (version == 0) != (encoding == bech32.Encoding.BECH32):
        return f"witness version {version} must be written in {'bech32' if version == 0 else 'bech32m'}"
    if version >= 2:
        return f"witness version {version} has no meaning yet, so Warden pays only versions 0 and 1"
    return f"a version {version} witness program of {len(program)} bytes is not P2WPKH, P2WSH or P2TR"


def _base58_problem(text: str) -> str:
    try:
        payload = base58.decode_check(text)
    except Exception:  # noqa: BLE001 - embit's base58 raises bare ValueError/EmbitError/IndexError
        _, hrp, _ = bech32.bech32_decode(text)
        if hrp is not None:  # bech32 of another chain (embit reads any prefix)
            return f"its prefix {hrp!r} is no Bitcoin network's ({', '.join(sorted(_HRPS))})"
        return "its characters or base58 checksum are not valid"
    if len(payload) != 21:
        return f"a base58 address holds 21 bytes, this one {len(payload)}"
    return f"version byte 0x{payload[0]:02x} is not a P2PKH or P2SH address of any Bitcoin network"


def parse_address(text: object) -> str:
    """``text`` as a Bitcoin address of any network embit knows, in its one written form: bech32
    and bech32m lowercase (an all-uppercase one is lowered, BIP-173), base58 as given. P2PKH, P2SH,
    P2WPKH, P2WSH and P2TR; `AddressInvalid` otherwise, saying what is wrong."""
    if not isinstance(text, str):
        raise _refuse(text, "it is not text")
    if not text or len(text) > _MAX_LENGTH or not text.isascii() or not text.isprintable() or " " in text:
        raise _refuse(text, f"it must be 1 to {_MAX_LENGTH} printable ASCII characters without spaces")
    bech = _is_bech32(text)
    if bech and text != text.lower() and text != text.upper():
        raise _refuse(text, "bech32 is written all lowercase or all uppercase, never mixed")
    form = text.lower() if bech else text
    try:
        script = address_to_scriptpubkey(form)
    except Exception:  # noqa: BLE001 - embit raises EmbitError, ValueError or TypeError by the malformation
        script = None
    if not isinstance(script, Script) or script.script_type() not in _KINDS:
        raise _refuse(text, _bech32_problem(form) if bech else _base58_problem(form))
    # Both codecs are one-to-one, so writing the script back gives the text again; checking it
    # keeps an address that embit reads leniently from standing for a script it does not write.
    if all(address_of(script.data, network) != form for network in _networks(form)):
        raise _refuse(text, _bech32_problem(form) if bech else _base58_problem(form))
    return form


def _networks(form: str) -> frozenset[str]:
    if _is_bech32(form):
        hrp = form[: form.rfind("1")]
        return frozenset(name for name, net in NETWORKS.items() if net["bech32"] == hrp)
    try:
        version = base58.decode_check(form)[:1]
    except Exception:  # noqa: BLE001 - not base58: no network writes it so
        return frozenset()
    return frozenset(name for name, net in NETWORKS.items() if version in (net["p2pkh"], net["p2sh"]))


def script_of(address: str) -> bytes:
    """The scriptPubKey ``address`` pays (`AddressInvalid` if it is not one)."""
    return bytes(address_to_scriptpubkey(parse_address(address)).data)


def networks_of(address: str) -> frozenset[str]:
    """The embit networks that write ``address`` so: the test networks share base58 versions
    (m…/n…/2… are ``test``, ``regtest`` and ``signet``) and ``tb1`` (``test`` and ``signet``);
    ``bcrt1`` is ``regtest``'s; ``bc1``, 1… and 3… are ``main``'s."""
    return _networks(parse_address(address))


def address_of(script: bytes, network: str) -> str | None:
    """``script`` written as an address on ``network``; None for a script with no address form
    (OP_RETURN data, bare multisig, a witness version with no meaning yet)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown Bitcoin network {network!r}; embit's networks: {', '.join(NETWORKS)}")
    parsed = Script(bytes(script))
    if parsed.script_type() not in _KINDS:
        return None
    return str(parsed.address(NETWORKS[network]))
