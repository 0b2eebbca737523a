"""What evm.typed_data (EIP-712) refuses, and with which message: out-of-range integers, malformed
booleans and bytes, missing, extra and undefined fields and types, domain keys, and documents
that are not one."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from evm.typed_data import InvalidTypedData, hash_typed_data, validate_types
from tests.eip712_support import (
    ARRAYS,
    BYTES_AND_STRINGS,
    DOMAINS,
    MAIL,
    OWNER,
    PERMIT_BATCH,
    PERMIT_DAI,
    PERMIT_SINGLE,
    PERMIT_TRANSFER_FROM,
    PERMIT_USDC,
    PERMITS,
    doc_with_domain,
    fields,
    node_doc,
)


def refused(doc: dict[str, Any], path: str, what: str) -> None:
    with pytest.raises(InvalidTypedData) as info:
        hash_typed_data(doc)
    message = str(info.value)
    assert message.startswith(path + ":"), message
    assert re.search(what, message), message


def edited(doc: dict[str, Any], edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    edit(doc)
    return doc


def test_uint_overflow_refused() -> None:
    doc = edited(PERMIT_SINGLE, lambda d: d["message"]["details"].update(amount=2**160))
    refused(doc, "message.details.amount", r"uint160 must be < 2\*\*160, got %d$" % 2**160)
    doc = edited(PERMIT_BATCH, lambda d: d["message"]["details"][2].update(nonce=str(2**48)))
    refused(doc, "message.details[2].nonce", r"uint48 must be < 2\*\*48")
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(value=hex(2**256)))
    refused(doc, "message.value", r"uint256 must be < 2\*\*256")


@pytest.mark.parametrize("value", [-1, "-1", "-0x1"])
def test_negative_uint_refused(value: str | int) -> None:
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(value=value))
    refused(doc, "message.value", "uint256" if value != "-0x1" else "decimal string or a 0x-hex string")


def test_negative_uint_message() -> None:
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(nonce=-5))
    refused(doc, "message.nonce", "uint256 is unsigned, must be >= 0, got -5")


@pytest.mark.parametrize("value", [1, 0, "true", "false", None, "1"])
def test_bool_must_be_true_or_false(value: str | int | None) -> None:
    doc = edited(PERMIT_DAI, lambda d: d["message"].update(allowed=value))
    refused(doc, "message.allowed", "bool takes true or false")


@pytest.mark.parametrize(
    "salt", ["0x" + "00" * 31, "0x" + "00" * 33, "0x", "00" * 32, "0x" + "0" * 63, "0x" + "zz" * 32, 0, b"\x00" * 32]
)
def test_bytes32_of_wrong_length_refused(salt: str | bytes | int) -> None:
    names, domain = DOMAINS["salt+chainId"]
    assert isinstance(domain, dict)
    doc = doc_with_domain(names, dict(domain, salt=salt))
    refused(doc, "domain.salt", "bytes32 takes")


def test_missing_field_refused() -> None:
    doc = edited(PERMIT_USDC, lambda d: d["message"].pop("spender"))
    refused(doc, "message.spender", "missing; Permit requires address spender")
    doc = edited(PERMIT_BATCH, lambda d: d["message"]["details"][1].pop("token"))
    refused(doc, "message.details[1].token", "missing")


def test_extra_field_refused() -> None:
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(memo="approve 10 USDC"))
    refused(doc, "message.memo", "not a field of Permit .* would be shown but not signed")
    doc = edited(PERMIT_TRANSFER_FROM, lambda d: d["message"]["permitted"].update(to=OWNER))
    refused(doc, "message.permitted.to", "not a field of TokenPermissions")


def test_undefined_type_refused() -> None:
    doc = edited(MAIL, lambda d: d["types"]["Mail"][0].update(type="Persn"))
    refused(doc, "types.Mail[0].type", "struct type Persn is not defined")
    doc = edited(MAIL, lambda d: d["types"]["Mail"][1].update(type="Person[][]x"))
    refused(doc, "types.Mail[1].type", "is not a type")


def test_domain_key_not_in_eip712domain_refused() -> None:
    doc = edited(MAIL, lambda d: d["domain"].update(salt="0x" + "00" * 32))
    refused(doc, "domain.salt", "not a field of EIP712Domain")
    doc = edited(PERMIT_SINGLE, lambda d: d["domain"].update(version="1"))
    refused(doc, "domain.version", "not a field of EIP712Domain")


def test_domain_key_missing_refused() -> None:
    doc = edited(MAIL, lambda d: d["domain"].pop("chainId"))
    refused(doc, "domain.chainId", "missing; EIP712Domain requires uint256 chainId")


@pytest.mark.parametrize(
    ("edit", "path", "what"),
    [
        # integers
        (lambda d: d["message"].update(nonce=1.0), "message.nonce", "not float"),
        (lambda d: d["message"].update(nonce=True), "message.nonce", "not bool"),
        (lambda d: d["message"].update(nonce=" 5"), "message.nonce", "got ' 5'"),
        (lambda d: d["message"].update(nonce="1_000"), "message.nonce", "got '1_000'"),
        (lambda d: d["message"].update(nonce="\u0661"), "message.nonce", "decimal string"),
        (lambda d: d["message"].update(nonce="1e3"), "message.nonce", "decimal string"),
        (lambda d: d["message"].update(nonce="0X10"), "message.nonce", "0x-hex string"),
        (lambda d: d["message"].update(nonce="0x"), "message.nonce", "0x-hex string"),
        (lambda d: d["message"].update(nonce=""), "message.nonce", "decimal string"),
        (lambda d: d["message"].update(nonce="5\n"), "message.nonce", "decimal string"),
        (lambda d: d["message"].update(nonce="0" * 101), "message.nonce", "at most 100"),
        # addresses
        (lambda d: d["message"].update(owner=OWNER[:-1]), "message.owner", "40 hex digits"),
        (lambda d: d["message"].update(owner=OWNER[2:]), "message.owner", "40 hex digits"),
        (lambda d: d["message"].update(owner=int(OWNER, 16)), "message.owner", "40 hex digits"),
        # strings
        (lambda d: d["domain"].update(name=b"USD Coin"), "domain.name", "string takes a string"),
        (lambda d: d["domain"].update(name="\ud800"), "domain.name", "unpaired surrogate"),
        # struct shape
        (lambda d: d.update(message=[]), "message", "must be an object"),
    ],
)
def test_value_refusals(edit: Callable[[dict[str, Any]], object], path: str, what: str) -> None:
    refused(edited(PERMIT_USDC, edit), path, what)


@pytest.mark.parametrize(
    ("edit", "path", "what"),
    [
        (lambda d: d["message"].update(small=[1, 2]), "message.small", r"int8\[3\] takes exactly 3 elements, got 2"),
        (lambda d: d["message"].update(small=[1, 2, 128]), "message.small[2]", r"int8 must be >= -2\*\*7 and < 2\*\*7"),
        (lambda d: d["message"].update(small=[1, 2, "0xff"]), "message.small[2]", "got 255"),
        (lambda d: d["message"].update(tags="abc"), "message.tags", r"string\[\] takes an array"),
        (lambda d: d["message"]["rows"].__setitem__(1, 5), "message.rows[1]", r"uint256\[\] takes an array"),
        (lambda d: d["message"]["blobs"].__setitem__(0, "0x123"), "message.blobs[0]", "even number of digits"),
        (lambda d: d["message"]["blobs"].__setitem__(0, "hello"), "message.blobs[0]", "0x-prefixed hex"),
        (
            lambda d: d["message"]["pairs"][0].__setitem__(1, "0x01"),
            "message.pairs[0][1]",
            "bytes2 takes exactly 2 bytes",
        ),
        (lambda d: d["message"]["teams"][2][1].update(extra=1), "message.teams[2][1].extra", "not a field of Person"),
        (lambda d: d["message"]["deep"][1].append([]), "message.deep[1]", r"takes exactly 2 elements, got 3"),
    ],
)
def test_array_refusals(edit: Callable[[dict[str, Any]], object], path: str, what: str) -> None:
    refused(edited(ARRAYS, edit), path, what)


@pytest.mark.parametrize(
    ("edit", "path", "what"),
    [
        (lambda d: d["types"].pop("EIP712Domain"), "types.EIP712Domain", "missing"),
        (lambda d: d["types"].update(EIP712Domain=[]), "types.EIP712Domain", "at least one"),
        (
            lambda d: d["types"]["EIP712Domain"][2].update(type="uint64"),
            "types.EIP712Domain[2].type",
            "chainId must be uint256, got uint64",
        ),
        (
            lambda d: d["types"]["EIP712Domain"].append({"name": "httpOrigin", "type": "string"}),
            "types.EIP712Domain[4].name",
            "not an EIP-712 domain field",
        ),
        (lambda d: d.update(primaryType="Letter"), "primaryType", "not defined"),
        (lambda d: d.update(primaryType="EIP712Domain"), "primaryType", "not EIP712Domain"),
        (lambda d: d.update(primaryType=None), "primaryType", "must be a string"),
        (
            lambda d: d["types"]["Person"].append({"name": "wallet", "type": "bytes"}),
            "types.Person[2].name",
            "duplicate field wallet in Person",
        ),
        (lambda d: d["types"]["Person"][1].update(type="uint"), "types.Person[1].type", "no uint alias; write uint256"),
        (lambda d: d["types"]["Person"][1].update(type="uint7"), "types.Person[1].type", "not an EIP-712 type"),
        (lambda d: d["types"]["Person"][1].update(type="bytes33"), "types.Person[1].type", "not an EIP-712 type"),
        (lambda d: d["types"]["Person"][1].update(type="address[0]"), "types.Person[1].type", "fixed array length"),
        (lambda d: d["types"]["Person"][1].update(type="address[01]"), "types.Person[1].type", "leading zeros"),
        (
            lambda d: d["types"]["Person"][1].update(type="address[99999999]"),
            "types.Person[1].type",
            "fixed array length",
        ),
        (lambda d: d["types"]["Person"][1].update(type="address "), "types.Person[1].type", "is not a type"),
        (lambda d: d["types"]["Person"][1].update(type=["address"]), "types.Person[1].type", "must be a type string"),
        (lambda d: d["types"]["Person"][1].update(name="wallet,address x"), "types.Person[1].name", "ASCII identifier"),
        (lambda d: d["types"]["Person"][1].update(name="wället"), "types.Person[1].name", "ASCII identifier"),
        (lambda d: d["types"]["Person"][1].update(comment="x"), "types.Person[1]", "exactly the keys name and type"),
        (lambda d: d["types"].update(Person={"name": "string"}), "types.Person", "must be a list"),
        (lambda d: d["types"].update(uint256=[]), "types.uint256", "elementary type name"),
        (lambda d: d["types"].update({"Bad Name": []}), "types", "struct name 'Bad Name'"),
        (lambda d: d["types"].update(Unused=fields("Missing x")), "types.Unused[0].type", "Missing is not defined"),
        (lambda d: d.pop("domain"), "domain", "missing"),
        (lambda d: d.update(metadata={}), "metadata", "not a typed-data key"),
        (lambda d: d.update(domain="Ether Mail"), "domain", "must be an object"),
        (lambda d: d.update(types=[]), "types", "must be an object"),
    ],
)
def test_structural_refusals(edit: Callable[[dict[str, Any]], object], path: str, what: str) -> None:
    doc = edited(MAIL, edit)
    with pytest.raises(InvalidTypedData) as info:
        validate_types(doc)
    assert str(info.value).startswith(path + ":"), str(info.value)
    assert re.search(what, str(info.value)), str(info.value)
    refused(doc, path, what)


def test_validate_types_accepts_good_documents() -> None:
    for doc in [MAIL, ARRAYS, BYTES_AND_STRINGS, node_doc(3), *PERMITS.values()]:
        validate_types(doc)  # raises on a bad document


def test_validate_types_leaves_values_alone() -> None:
    # Structural only: a bad value is hash_typed_data's to find.
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(value=-1))
    validate_types(doc)
    refused(doc, "message.value", "unsigned")


def test_not_a_mapping() -> None:
    not_a_mapping: Any = [MAIL]
    with pytest.raises(InvalidTypedData, match="^document: must be an object"):
        hash_typed_data(not_a_mapping)
