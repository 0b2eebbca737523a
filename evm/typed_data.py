"""
EIP-712: hashing typed structured data for signing (``eth_signTypedData_v4``).

What is signed is the EIP-191 version 0x01 digest::

    keccak256(0x19 || 0x01 || domainSeparator || hashStruct(message))

where ``domainSeparator = hashStruct(domain)`` under the document's own
``EIP712Domain`` type, and for a struct value ``s`` of type ``T``::

    hashStruct(s) = keccak256(typeHash(T) || encodeData(s))
    typeHash(T)   = keccak256(encodeType(T))
    encodeType(T) = T's "Name(type1 name1,type2 name2)", then every struct type
                    it references (directly or not) the same way, sorted by name
    encodeData(s) = the 32-byte encodings of its members, in declaration order:
                    atomic values as ABI words, ``bytes`` and ``string`` as the
                    keccak256 of their contents, arrays as the keccak256 of their
                    elements' encodings concatenated, structs as hashStruct

The input is the JSON document a dapp hands a wallet. Everything a signature
commits to is checked strictly, because everything that is not committed to is
a way to show one thing and sign another:

* every struct value must have exactly its type's fields: a missing field has
  no defined encoding, and an extra key would be displayed but not signed;
* the domain must have exactly the fields ``types.EIP712Domain`` lists, and
  those must be among EIP-712's five, with EIP-712's types;
* numbers arrive as JSON, and JSON numbers from other languages silently lose
  precision past 2**53, so integers are also accepted as decimal or 0x-hex
  strings, and every integer is range-checked for its exact width rather than
  wrapped or truncated;
* nothing is coerced: no ``1`` for ``true``, no short ``bytes32``, no text for
  ``bytes``.

Every ``InvalidTypedData`` names the JSON path of what was wrong, what was
wrong and what is allowed.

Recursive struct types are allowed (the data is finite), but the nesting depth
(``MAX_DEPTH``) and the number of values encoded (``MAX_VALUES``) are bounded so
a request cannot make the signer recurse or hash without limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode

from evm._crypto import keccak
from evm.constants import EIP712_DOMAIN_FIELDS
from evm.constants import EIP712_MAX_DEPTH as MAX_DEPTH
from evm.constants import EIP712_MAX_VALUES as MAX_VALUES

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "InvalidTypedData",
    "TypedDataHashes",
    "hash_typed_data",
    "parse_integer",
    "validate_types",
]


class InvalidTypedData(ValueError):
    """A typed-data document cannot be hashed; the message names the JSON path."""


@dataclass(frozen=True, slots=True)
class TypedDataHashes:
    """The three hashes of a typed-data document; ``digest`` is what is signed."""

    domain_separator: bytes
    struct_hash: bytes
    digest: bytes


# ---------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------

_DOC_KEYS = ("types", "primaryType", "domain", "message")
# A document is parsed JSON, hence ``Mapping[str, Any]`` below: each value's type is checked where
# it is read, never assumed.

# EIP712_DOMAIN_FIELDS (schemas.typed_data, where the record's shape is checked too): the domain fields
# EIP-712 defines, with the only type each may have. A field outside these would be a private
# extension no wallet knows how to show.

_ATOMIC = frozenset(
    [f"uint{bits}" for bits in range(8, 257, 8)]
    + [f"int{bits}" for bits in range(8, 257, 8)]
    + [f"bytes{size}" for size in range(1, 33)]
    + ["address", "bool"]
)
_DYNAMIC = frozenset(["bytes", "string"])

# Struct and field names are ASCII identifiers: they are written into
# encodeType, where a name holding ``,``, ``(`` or a space would let two
# different type definitions encode to the same string (and so the same
# typeHash). ASCII also makes "sorted by name" mean the same here as in
# JavaScript wallets, which compare UTF-16 code units.
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
# A type reference: an identifier followed by array dimensions, ``[]`` or ``[n]``.
_TYPE_REFERENCE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*)((?:\[[0-9]*\])*)")
_DIMENSION = re.compile(r"\[([0-9]*)\]")
# Names that read as Solidity elementary types. A struct may not take one
# (``uint`` the struct and ``uint`` the alias nobody may use would be one
# name), and a field type that looks like one but is not atomic is reported
# as a bad elementary type rather than as an undefined struct.
_ELEMENTARY_LIKE = re.compile(r"(?:u?int|bytes)[0-9]*|u?fixed[0-9x]*|address|bool|string|function")

_ALLOWED_TYPES_TEXT = (
    "uint8..uint256 and int8..int256 in steps of 8, bytes1..bytes32, address, bool, "
    "bytes, string, a struct defined in types, or any of these followed by [] or [n]"
)


def _base_type(type_string: str) -> str:
    bracket = type_string.find("[")
    return type_string if bracket < 0 else type_string[:bracket]


def _check_type_reference(path: str, type_string: object, types: Mapping[str, Any]) -> None:
    if type(type_string) is not str:
        raise InvalidTypedData(f"{path}: must be a type string, not {type(type_string).__name__}")
    match = _TYPE_REFERENCE.fullmatch(type_string)
    if match is None:
        raise InvalidTypedData(f"{path}: {type_string!r} is not a type; allowed: {_ALLOWED_TYPES_TEXT}")
    base, dimensions = match.groups()
    for length in _DIMENSION.findall(dimensions):
        # Solidity has no zero-length fixed arrays, and a leading zero would
        # give one type two spellings (and two typeHashes).
        if length and (length[0] == "0" or len(length) > 5 or int(length) > MAX_VALUES):
            raise InvalidTypedData(
                f"{path}: {type_string}: a fixed array length must be 1..{MAX_VALUES} "
                f"without leading zeros, got [{length}]"
            )
    if base in _ATOMIC or base in _DYNAMIC:
        return
    if base in ("uint", "int"):
        raise InvalidTypedData(
            f"{path}: {type_string}: EIP-712 has no {base} alias; write {base}256 (or the exact width)"
        )
    if _ELEMENTARY_LIKE.fullmatch(base):
        raise InvalidTypedData(f"{path}: {type_string}: {base} is not an EIP-712 type; allowed: {_ALLOWED_TYPES_TEXT}")
    if base not in types:
        raise InvalidTypedData(f"{path}: {type_string}: struct type {base} is not defined in types")


def _check_struct_definition(name: object, fields: object, types: Mapping[str, Any]) -> None:
    path = f"types.{name}"
    if type(name) is not str or _IDENTIFIER.fullmatch(name) is None:
        raise InvalidTypedData(f"types: struct name {name!r} must be an ASCII identifier ([A-Za-z_$][A-Za-z0-9_$]*)")
    if _ELEMENTARY_LIKE.fullmatch(name):
        raise InvalidTypedData(f"{path}: {name} is an elementary type name and cannot name a struct")
    if type(fields) is not list and type(fields) is not tuple:
        raise InvalidTypedData(f"{path}: must be a list of {{name, type}} fields, not {type(fields).__name__}")
    seen: set[str] = set()
    for index, field in enumerate(fields):
        field_path = f"{path}[{index}]"
        if not isinstance(field, Mapping) or set(field.keys()) != {"name", "type"}:
            raise InvalidTypedData(f"{field_path}: a field must be an object with exactly the keys name and type")
        field_name = field["name"]
        if type(field_name) is not str or _IDENTIFIER.fullmatch(field_name) is None:
            raise InvalidTypedData(
                f"{field_path}.name: {field_name!r} must be an ASCII identifier ([A-Za-z_$][A-Za-z0-9_$]*)"
            )
        # Two fields of one name would be two values under one JSON key:
        # only one of them could ever be shown.
        if field_name in seen:
            raise InvalidTypedData(f"{field_path}.name: duplicate field {field_name} in {name}")
        seen.add(field_name)
        _check_type_reference(f"{field_path}.type", field["type"], types)


def _check_domain_type(fields: Sequence[Mapping[str, Any]]) -> None:
    # Spec: "one or more" fields. An empty domain binds the signature to no
    # chain and no contract: valid wherever the same struct is accepted.
    if not fields:
        raise InvalidTypedData("types.EIP712Domain: must list at least one of " + ", ".join(EIP712_DOMAIN_FIELDS))
    for index, field in enumerate(fields):
        field_name, field_type = field["name"], field["type"]
        if field_name not in EIP712_DOMAIN_FIELDS:
            raise InvalidTypedData(
                f"types.EIP712Domain[{index}].name: {field_name} is not an EIP-712 domain field; "
                f"allowed: {', '.join(EIP712_DOMAIN_FIELDS)}"
            )
        if field_type != EIP712_DOMAIN_FIELDS[field_name]:
            raise InvalidTypedData(
                f"types.EIP712Domain[{index}].type: {field_name} must be {EIP712_DOMAIN_FIELDS[field_name]}, got {field_type}"
            )
    # Any order is accepted, as the spec asks of user agents, and hashed in
    # the order listed: that order is part of the signed typeHash.


def validate_types(doc: Mapping[str, Any]) -> None:
    """
    Check the shape of a typed-data document and every type it defines.

    Structural only: the four top-level keys, the type definitions,
    ``primaryType`` and ``EIP712Domain``. The values in ``domain`` and
    ``message`` are checked as they are encoded, by ``hash_typed_data``.
    """
    if not isinstance(doc, Mapping):
        raise InvalidTypedData(f"document: must be an object, not {type(doc).__name__}")
    for key in _DOC_KEYS:
        if key not in doc:
            raise InvalidTypedData(f"{key}: missing; a typed-data document has {', '.join(_DOC_KEYS)}")
    for key in doc:
        if key not in _DOC_KEYS:
            raise InvalidTypedData(
                f"{key!s}: not a typed-data key (allowed: {', '.join(_DOC_KEYS)}); it would not be signed"
            )
    types = doc["types"]
    if not isinstance(types, Mapping):
        raise InvalidTypedData(f"types: must be an object of struct definitions, not {type(types).__name__}")
    for name, fields in types.items():
        _check_struct_definition(name, fields, types)
    if "EIP712Domain" not in types:
        raise InvalidTypedData("types.EIP712Domain: missing; the domain's type must be given")
    _check_domain_type(types["EIP712Domain"])
    for key in ("domain", "message"):
        if not isinstance(doc[key], Mapping):
            raise InvalidTypedData(f"{key}: must be an object, not {type(doc[key]).__name__}")
    primary = doc["primaryType"]
    if type(primary) is not str:
        raise InvalidTypedData(f"primaryType: must be a string, not {type(primary).__name__}")
    # Wallets disagree on what signing the domain type itself means (MetaMask
    # then signs the domain separator alone), so it is refused, not guessed.
    if primary == "EIP712Domain":
        raise InvalidTypedData("primaryType: must be the message's struct type, not EIP712Domain")
    if primary not in types:
        raise InvalidTypedData(f"primaryType: {primary!r} is not defined in types")


def _encode_type(primary: str, types: Mapping[str, Any]) -> str:
    referenced = {primary}
    pending = [primary]
    while pending:
        for field in types[pending.pop()]:
            base = _base_type(field["type"])
            if base in types and base not in referenced:
                referenced.add(base)
                pending.append(base)
    ordered = [primary] + sorted(referenced - {primary})
    return "".join(
        f"{name}({','.join(field['type'] + ' ' + field['name'] for field in types[name])})" for name in ordered
    )


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------

_DECIMAL = re.compile(r"-?[0-9]+")
_HEX_INTEGER = re.compile(r"0x[0-9a-fA-F]+")
_HEX_BYTES = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# 2**256 has 78 decimal digits; longer strings can only be padding, and
# int() on an unbounded string is quadratic.
_MAX_NUMBER_TEXT = 100


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_integer(path: str, type_string: str, value: object) -> int:
    """An EIP-712 integer of ``type_string`` (``uint8``..``int256``) as JSON carries it: an
    integer, a decimal string or a 0x-hex string, range-checked for its exact width."""
    signed = type_string.startswith("int")
    bits = int(type_string[3:] if signed else type_string[4:])
    allowed = f"{type_string} takes an integer, a decimal string or a 0x-hex string"
    if type(value) is int:
        number = value
    elif type(value) is str:
        if len(value) > _MAX_NUMBER_TEXT:
            raise InvalidTypedData(
                f"{path}: {type_string} string is {len(value)} characters; at most {_MAX_NUMBER_TEXT}"
            )
        # fullmatch on explicit ASCII classes: int() alone would also take
        # " 5", "1_000" and non-ASCII digits.
        if _DECIMAL.fullmatch(value):
            number = int(value, 10)
        elif _HEX_INTEGER.fullmatch(value):
            # Hex is read as a plain non-negative number, never as two's
            # complement: 0xff for an int8 is out of range, not -1.
            number = int(value, 16)
        else:
            raise InvalidTypedData(f"{path}: {allowed}, got {_shown(value)}")
    else:
        # bool (an int to Python) and float (JSON's lossy number) included.
        raise InvalidTypedData(f"{path}: {allowed}, not {type(value).__name__}")
    if signed:
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1)
        if not low <= number < high:
            raise InvalidTypedData(f"{path}: {type_string} must be >= -2**{bits - 1} and < 2**{bits - 1}, got {number}")
    else:
        if number < 0:
            raise InvalidTypedData(f"{path}: {type_string} is unsigned, must be >= 0, got {number}")
        if number >= 2**bits:
            raise InvalidTypedData(f"{path}: {type_string} must be < 2**{bits}, got {number}")
    return number


def _parse_hex_bytes(path: str, type_string: str, value: object) -> bytes:
    if type(value) is not str or _HEX_BYTES.fullmatch(value) is None:
        raise InvalidTypedData(
            f"{path}: {type_string} takes a 0x-prefixed hex string with an even number of digits, got {_shown(value)}"
        )
    return bytes.fromhex(value[2:])


def _encode_atomic(path: str, type_string: str, value: object) -> bytes:
    if type_string == "bool":
        if type(value) is not bool:
            raise InvalidTypedData(f"{path}: bool takes true or false, got {_shown(value)}")
        abi_value: object = value
    elif type_string == "address":
        if type(value) is not str or _ADDRESS.fullmatch(value) is None:
            raise InvalidTypedData(f"{path}: address takes 0x followed by 40 hex digits, got {_shown(value)}")
        abi_value = bytes.fromhex(value[2:])
    elif type_string.startswith("bytes"):
        size = int(type_string[5:])
        abi_value = _parse_hex_bytes(path, type_string, value)
        # No padding of short values: 0x01 as a bytes32 would sign
        # 0x0100..00, which is not what a reader of "0x01" expects.
        if len(abi_value) != size:
            raise InvalidTypedData(
                f"{path}: {type_string} takes exactly {size} bytes ({2 * size} hex digits), got {len(abi_value)}"
            )
    else:
        abi_value = parse_integer(path, type_string, value)
    # eth_abi, the well-kept reference encoder, writes the word (sign
    # extension, right-padding of bytesN, left-padding of addresses) so
    # that no hand-packing here can drift from the ABI; the values handed
    # to it are already exact and range-checked.
    return abi_encode([type_string], [abi_value])


class _Encoder:
    """One document's encoding: its types, typeHash cache and value budget."""

    def __init__(self, types: Mapping[str, Any]) -> None:
        self.types = types
        self.type_hashes: dict[str, bytes] = {}
        self.values = 0

    def type_hash(self, name: str) -> bytes:
        cached = self.type_hashes.get(name)
        if cached is None:
            cached = self.type_hashes[name] = keccak(_encode_type(name, self.types).encode("ascii"))
        return cached

    def hash_struct(self, name: str, value: object, path: str, depth: int) -> bytes:
        self._enter(path, depth)
        if not isinstance(value, Mapping):
            raise InvalidTypedData(f"{path}: {name} takes an object, got {type(value).__name__}")
        fields = self.types[name]
        names = [field["name"] for field in fields]
        for key in value:
            if key not in names:
                raise InvalidTypedData(
                    f"{path}.{key!s}: not a field of {name} (fields: {', '.join(names) or 'none'}); "
                    "an extra key would be shown but not signed"
                )
        words = [self.type_hash(name)]
        for field in fields:
            field_name = field["name"]
            field_path = f"{path}.{field_name}"
            if field_name not in value:
                raise InvalidTypedData(f"{field_path}: missing; {name} requires {field['type']} {field_name}")
            words.append(self.encode(field["type"], value[field_name], field_path, depth + 1))
        return keccak(b"".join(words))

    def encode(self, type_string: str, value: object, path: str, depth: int) -> bytes:
        """The 32-byte encoding of one member value."""
        if type_string.endswith("]"):
            return self._encode_array(type_string, value, path, depth)
        if type_string in self.types:
            return self.hash_struct(type_string, value, path, depth)
        self._count(path)
        if type_string == "string":
            if type(value) is not str:
                raise InvalidTypedData(f"{path}: string takes a string, got {type(value).__name__}")
            try:
                return keccak(value.encode("utf-8"))
            except UnicodeEncodeError:
                # A lone surrogate: no UTF-8 form, so no defined hash.
                raise InvalidTypedData(f"{path}: string is not valid Unicode (unpaired surrogate)") from None
        if type_string == "bytes":
            return keccak(_parse_hex_bytes(path, "bytes", value))
        return _encode_atomic(path, type_string, value)

    def _encode_array(self, type_string: str, value: object, path: str, depth: int) -> bytes:
        self._enter(path, depth)
        # The outermost dimension is the last one: T[2][] is a list of T[2].
        bracket = type_string.rindex("[")
        element_type, length = type_string[:bracket], type_string[bracket + 1 : -1]
        if type(value) is not list and type(value) is not tuple:
            raise InvalidTypedData(f"{path}: {type_string} takes an array, got {type(value).__name__}")
        if length and len(value) != int(length):
            raise InvalidTypedData(f"{path}: {type_string} takes exactly {length} elements, got {len(value)}")
        return keccak(
            b"".join(
                self.encode(element_type, element, f"{path}[{index}]", depth + 1) for index, element in enumerate(value)
            )
        )

    def _enter(self, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InvalidTypedData(f"{path}: nested deeper than {MAX_DEPTH} structs and arrays")
        self._count(path)

    def _count(self, path: str) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise InvalidTypedData(f"{path}: more than {MAX_VALUES} values in one document")


def hash_typed_data(doc: Mapping[str, Any]) -> TypedDataHashes:
    """The domain separator, message struct hash and signing digest of ``doc``."""
    validate_types(doc)
    encoder = _Encoder(doc["types"])
    domain_separator = encoder.hash_struct("EIP712Domain", doc["domain"], "domain", 1)
    struct_hash = encoder.hash_struct(doc["primaryType"], doc["message"], "message", 1)
    digest = keccak(b"\x19\x01" + domain_separator + struct_hash)
    return TypedDataHashes(domain_separator=domain_separator, struct_hash=struct_hash, digest=digest)
