"""Field types shared by every Warden record, each validating with a message that
names what was wrong and what is allowed.

Money is exact: a decimal string in the native unit on the wire (``"0.05"``), an
``int`` in wei inside. Wei amounts travel as decimal strings too, because JSON
readers in other languages lose precision on integers past 2**53.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from typing import Annotated

import base58
from eth_utils import is_checksum_address, to_checksum_address
from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

from btc import addresses as bitcoin_addresses
from btc import wallet as bitcoin_wallet
from btc.psbt import MAX_MONEY
from schemas.chains import Chain, Family, UnknownChain, chain_named

WEI_PER_UNIT = 10**18
MAX_UINT256 = 2**256 - 1

_DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?\Z")
_HEX_RE = re.compile(r"^0x([0-9a-fA-F]{2})*\Z")
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}\Z")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")


def parse_token_amount(text: object, decimals: int, unit: str = "the token's unit", base: str = "base units") -> int:
    """``"1.5"`` in a unit with ``decimals`` decimals → base units (wei for the native unit).
    Rejects numbers, negatives, exponents and more decimals than the unit has."""
    if not isinstance(text, str):
        raise ValueError(
            f'must be a decimal string in {unit} such as "0.05", got {type(text).__name__}; '
            "numbers are refused so no float ever touches money"
        )
    return _parsed_amount(text, decimals, unit, base)


# Amounts are read where they are used (an intent's value by each stage that weighs it, a policy's
# limits by each intent it judges): a dozen or more parses per approved intent. Remembered by their text, so each is parsed once; refusals raise and are not remembered.
@functools.lru_cache(maxsize=4096)
def _parsed_amount(text: str, decimals: int, unit: str, base: str) -> int:
    if text.startswith("-"):
        raise ValueError(f"must be >= 0, got {text!r}")
    if not _DECIMAL_RE.match(text):
        raise ValueError(f'must be a plain decimal such as "0.05" (digits, one optional point), got {text!r}')
    whole, _, frac = text.partition(".")
    if len(frac) > decimals:
        smallest = "1" if decimals == 0 else "0." + "0" * (decimals - 1) + "1"
        raise ValueError(
            f"has {len(frac)} decimals; at most {decimals} are allowed in {unit} (its smallest "
            f"amount is {smallest}), got {text!r}"
        )
    # ``int ** int`` is Any to typeshed (a negative exponent gives a float); decimals is never
    # negative here (every caller's is a field validated >= 0), so this is an int.
    units: int = int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0")
    if units > MAX_UINT256:
        raise ValueError(f"exceeds 2**256-1 {base}")
    return units


def format_token_amount(units: int, decimals: int) -> str:
    """base units → the shortest exact decimal string in a unit with ``decimals`` decimals."""
    whole, frac = divmod(units, 10**decimals)
    if frac == 0:
        return str(whole)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0")


def parse_native_amount(text: object) -> int:
    """``"1.5"`` in the native unit → wei (18 decimals: 1 wei = 0.000000000000000001)."""
    return parse_token_amount(text, 18, "the native unit", "wei")


def format_native_amount(wei: int) -> str:
    """wei → the shortest exact decimal string in the native unit."""
    return format_token_amount(wei, 18)


def _native_amount(value: object) -> str:
    return format_native_amount(parse_native_amount(value))


def _address(value: object) -> str:
    if not isinstance(value, str) or not _ADDRESS_RE.match(value):
        raise ValueError(f"must be a 0x-prefixed 20-byte hex address (42 characters), got {value!r}")
    return _eip55(value)


# The same few addresses recur in every intent, approval and policy, and EIP-55 costs a keccak
# through eth_utils each time: a visible share of both services' CPU in a profile. A pure function of a 42-character string, so a bounded cache is safe; a
# bad checksum raises and is not cached, and a flood of new addresses only evicts.
@functools.lru_cache(maxsize=4096)
def _eip55(value: str) -> str:
    body = value[2:]
    if body == body.lower() or body == body.upper():
        # Single-case addresses carry no checksum; accept them and normalize to EIP-55.
        return to_checksum_address(value)
    if not is_checksum_address(value):
        raise ValueError(
            f"bad EIP-55 checksum in {value!r}; expected {to_checksum_address(value)!r} "
            "(mixed case must be a valid checksum; all-lowercase is accepted)"
        )
    return value


def parse_address(value: object) -> str:
    """An address in any case → its EIP-55 form; a bad checksum or shape is a ValueError."""
    return _address(value)


def known_chain(name: str, context: object = None) -> str:
    """A chain name, unchanged: one of the networks in force when the validation ``context`` carries
    them (`schemas.chains.chains_context`), any other a ValueError naming the known ones; without
    them, a name of the right form (`schemas.chains.chain_named`)."""
    _chain(name, context)
    return name


def evm_chain(name: str, context: object = None) -> str:
    """`known_chain`, and an EVM network (another family's transactions are not EVM ones): as far
    as the networks in force say, or without them the built-in table."""
    chain = _chain(name, context)
    if chain is not None and chain.family is not Family.EVM:
        raise ValueError(
            f"{name!r} is {chain.family.a_network}; this record, which describes an EVM transaction or asset, "
            f"takes {Family.EVM.a_network}"
        )
    return name


def _chain(name: str, context: object) -> Chain | None:
    try:
        return chain_named(name, context)
    except UnknownChain as exc:
        raise ValueError(str(exc)) from None


def _hex_data(value: object) -> str:
    if not isinstance(value, str) or not _HEX_RE.match(value):
        raise ValueError(f"must be 0x-prefixed hex with an even number of digits, got {str(value)[:80]!r}")
    return value.lower()


def _identifier(value: object) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(
            f"must be 1-128 characters of letters, digits and _.:- starting with a letter or digit, got {str(value)[:80]!r}"
        )
    return value


def _wei(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer amount of wei, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise ValueError(f"must be a non-negative integer of wei (decimal string or integer), got {value!r}")
    if not 0 <= number <= MAX_UINT256:
        raise ValueError(f"must be between 0 and 2**256-1 wei, got {number}")
    return number


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone (RFC 3339, e.g. 2026-11-21T10:00:00Z)")
    return value.astimezone(timezone.utc)


def parse_solana_address(value: object) -> str:
    """A Solana account address, the base58 of 32 bytes in its one canonical spelling, unchanged;
    any other text is a ValueError."""
    try:
        raw = base58.b58decode(value) if isinstance(value, str) and 32 <= len(value) <= 44 else b""
    except ValueError:
        raw = b""
    if len(raw) != 32 or base58.b58encode(raw).decode() != value:
        raise ValueError(f"must be a Solana address (base58 of 32 bytes, 32-44 characters), got {str(value)[:80]!r}")
    return value


def parse_bitcoin_address(value: object) -> str:
    """A Bitcoin address of any network (P2PKH, P2SH, P2WPKH, P2WSH, P2TR) in its one written form;
    any other text is a ValueError. Which network it is of, the judge checks against the intent's."""
    return bitcoin_addresses.parse_address(value)


def _bitcoin_public_key(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"0[23][0-9a-f]{64}", value):
        raise ValueError(
            f"must be the agent's Bitcoin public key, 33 bytes compressed as 66 lowercase hex digits starting 02 or "
            f"03 (`warden keys list --chain bitcoin --json`), got {str(value)[:80]!r}"
        )
    try:
        bitcoin_wallet.own_scripts(bytes.fromhex(value))
    except ValueError:
        raise ValueError(f"{value[:80]!r} is not a point on secp256k1: not a public key") from None
    return value


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a whole number (integer or decimal string), got {value!r}")
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError(f"must be a whole number written in decimal digits, got {value[:80]!r}")
    number = int(value)
    if not 0 <= number < 2**64:
        raise ValueError(f"must be between 0 and 2**64-1, got {number}")
    return number


def _satoshis(value: object) -> int:
    number = _whole(value)
    if number > MAX_MONEY:
        raise ValueError(
            f"must be at most {MAX_MONEY} satoshis (21,000,000 BTC, every bitcoin there will ever be), got {number}"
        )
    return number


NativeAmount = Annotated[str, BeforeValidator(_native_amount)]
SolanaAddress = Annotated[str, BeforeValidator(parse_solana_address)]
BitcoinAddress = Annotated[str, BeforeValidator(parse_bitcoin_address)]
BitcoinPublicKey = Annotated[str, BeforeValidator(_bitcoin_public_key)]
# Lamports and SPL token base units: u64 on chain; a decimal string on the wire, like wei.
BaseUnits = Annotated[
    int,
    BeforeValidator(_whole),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": "^(0|[1-9][0-9]*)$"}),
]
# Satoshis: base units that a Bitcoin amount can be, so a cap above all the bitcoin there is, which
# bounds nothing, is refused where it is written.
Satoshis = Annotated[
    int,
    BeforeValidator(_satoshis),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": "^(0|[1-9][0-9]*)$"}),
]
Address = Annotated[str, BeforeValidator(_address)]
HexData = Annotated[str, BeforeValidator(_hex_data)]
Identifier = Annotated[str, BeforeValidator(_identifier)]
# On the wire (and so in the exported JSON Schema) wei is a decimal string.
Wei = Annotated[
    int,
    BeforeValidator(_wei),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": "^(0|[1-9][0-9]*)$"}),
]
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


__all__ = [
    "Address",
    "BaseUnits",
    "BitcoinAddress",
    "BitcoinPublicKey",
    "Satoshis",
    "HexData",
    "Identifier",
    "NativeAmount",
    "SolanaAddress",
    "UtcDatetime",
    "Wei",
    "format_native_amount",
    "format_token_amount",
    "evm_chain",
    "parse_bitcoin_address",
    "parse_solana_address",
    "known_chain",
    "parse_address",
    "parse_native_amount",
    "parse_token_amount",
]
