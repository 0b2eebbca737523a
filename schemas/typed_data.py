"""The EIP-712 document an intent asks to sign (``eth_signTypedData_v4``'s shape) and the typed
data types Warden reads as moving value."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from evm.constants import EIP712_DOMAIN_FIELDS, EIP712_MAX_DEPTH
from evm.typed_data import parse_integer
from schemas.fields import parse_address
from schemas.record import SCHEMA_VERSION, Record

# Integers a JSON reader in any language holds exactly: larger ones travel as decimal strings.
JSON_SAFE_INT = 2**53 - 1

# EIP-712 type names; a policy's no-value types are held to it too (`schemas.policy`).
TYPE_NAME_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*\Z")
_FIELD_TYPE_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*(\[[0-9]*\])*\Z")
# The EIP-712 primary types Warden reads as moving value (`rules.typed_movements`): a policy can
# never name one of them as moving nothing, and the default policy never covers them.
EIP712_VALUE_TYPES = frozenset(
    {
        "Permit",
        "PermitSingle",
        "PermitBatch",
        "PermitTransferFrom",
        "PermitBatchTransferFrom",
        "PermitWitnessTransferFrom",
        "PermitBatchWitnessTransferFrom",
        "TransferWithAuthorization",
        "ReceiveWithAuthorization",
        "OrderComponents",
        "Order",
    }
)


def _json_safe(value: Any, path: str, depth: int = 0) -> None:
    """Typed-data values as JSON any reader holds exactly: no floats, no integers past 2**53
    (as decimal strings they are exact everywhere), bounded nesting."""
    if depth > EIP712_MAX_DEPTH:
        raise ValueError(f"{path}: nested more than {EIP712_MAX_DEPTH} levels")
    if isinstance(value, float):
        raise ValueError(
            f"{path}: numbers with a fraction or exponent are refused; integers only, as JSON "
            "integers up to 2**53-1 or as decimal strings"
        )
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > JSON_SAFE_INT:
        raise ValueError(
            f"{path}: {value} is past 2**53-1, which JSON readers in other languages round; send it as a decimal string"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _json_safe(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_safe(item, f"{path}[{index}]", depth + 1)


def parse_typed_int(value: Any, path: str) -> int:
    """An EIP-712 uint256 as JSON carries it (an integer, a decimal string or a 0x-hex string),
    read by the signer's own rule (`evm.typed_data.parse_integer`), so the record and the
    signature can never read one value two ways."""
    return parse_integer(path, "uint256", value)


class TypedDataField(Record):
    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    name: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=128)


class TypedData(Record):
    """An EIP-712 document as ``eth_signTypedData_v4`` takes it. The schema checks its shape (types
    defined, domain fields known); the signer's encoder (evm/typed_data.py) checks every value
    when it hashes it, and refuses what does not encode."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, exclude=True)

    types: dict[str, tuple[TypedDataField, ...]] = Field(max_length=64)
    primaryType: str
    domain: dict[str, Any]
    message: dict[str, Any]

    @model_validator(mode="after")
    def _shape(self) -> "TypedData":
        if "EIP712Domain" not in self.types:
            raise ValueError("types.EIP712Domain is missing; EIP-712 needs the domain's type")
        for name, fields in self.types.items():
            if not TYPE_NAME_RE.match(name):
                raise ValueError(f"types: {name!r} is not a valid type name (letters, digits, _ and $)")
            seen = set()
            for field in fields:
                if field.name in seen:
                    raise ValueError(f"types.{name}: field {field.name!r} appears twice")
                seen.add(field.name)
                if not _FIELD_TYPE_RE.match(field.type):
                    raise ValueError(f"types.{name}.{field.name}: {field.type!r} is not an EIP-712 type")
        if self.primaryType not in self.types or self.primaryType == "EIP712Domain":
            raise ValueError(f"primaryType {self.primaryType!r} must name one of the types other than EIP712Domain")
        domain_fields = {f.name: f.type for f in self.types["EIP712Domain"]}
        for name, kind in domain_fields.items():
            if EIP712_DOMAIN_FIELDS.get(name) != kind:
                raise ValueError(
                    f"types.EIP712Domain.{name}: the domain's fields are "
                    f"{', '.join(f'{k} ({t})' for k, t in EIP712_DOMAIN_FIELDS.items())}"
                )
        if set(self.domain) != set(domain_fields):
            raise ValueError(
                f"domain has {sorted(self.domain)} but types.EIP712Domain lists {sorted(domain_fields)}; "
                "they must match, or a domain value would go unsigned"
            )
        _json_safe(self.domain, "domain")
        _json_safe(self.message, "message")
        if "chainId" in self.domain:
            parse_typed_int(self.domain["chainId"], "domain.chainId")
        if "verifyingContract" in self.domain:
            parse_address(self.domain["verifyingContract"])
        return self

    @property
    def chain_id(self) -> int | None:
        return None if "chainId" not in self.domain else parse_typed_int(self.domain["chainId"], "domain.chainId")

    @property
    def verifying_contract(self) -> str | None:
        vc = self.domain.get("verifyingContract")
        return None if vc is None else parse_address(vc)

    def as_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
