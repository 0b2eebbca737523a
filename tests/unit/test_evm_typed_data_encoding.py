"""evm.typed_data (EIP-712) encoding against eth-account as an independent implementation: partial
domains, nested arrays, bytes, strings, signed integers, recursive types, the depth and value
bounds, and random documents from hypothesis. eth-account is imported here only, as an oracle."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evm._crypto import keccak
from evm.typed_data import MAX_DEPTH, MAX_VALUES, InvalidTypedData, _encode_type, hash_typed_data
from tests.eip712_support import (
    ARRAYS,
    BYTES_AND_STRINGS,
    DOMAIN_TYPES,
    DOMAINS,
    agree_with_eth_account,
    doc_with_domain,
    domain_type,
    fields,
    node_doc,
)


@pytest.mark.parametrize(("names", "domain"), DOMAINS.values(), ids=DOMAINS.keys())
def test_partial_domains_agree_with_eth_account(names: tuple[str, ...], domain: dict[str, int | str]) -> None:
    agree_with_eth_account(doc_with_domain(names, domain))


def test_domain_is_hashed_in_the_order_the_type_lists() -> None:
    # The spec: user agents "should accept fields in any order as specified by
    # the EIP712Domain type". eth-account instead rebuilds the domain type in
    # the canonical order, so it is not the oracle here; the hash is written out.
    doc = doc_with_domain(("chainId", "name"), {"name": "App", "chainId": 10})
    expected = keccak(keccak(b"EIP712Domain(uint256 chainId,string name)") + (10).to_bytes(32, "big") + keccak(b"App"))
    assert hash_typed_data(doc).domain_separator == expected


def test_nested_arrays_agree_with_eth_account() -> None:
    agree_with_eth_account(ARRAYS)


def test_array_encoding_by_hand() -> None:
    # Spelled out once: an array is keccak256 of its elements' encodings.
    doc = {
        "types": {"EIP712Domain": domain_type("chainId"), "A": fields("uint8[][] m", "string[] s")},
        "primaryType": "A",
        "domain": {"chainId": 1},
        "message": {"m": [[1, 2], []], "s": ["x"]},
    }

    def word(n: int) -> bytes:
        return n.to_bytes(32, "big")

    m = keccak(keccak(word(1) + word(2)) + keccak(b""))
    s = keccak(keccak(b"x"))
    expected = keccak(keccak(b"A(uint8[][] m,string[] s)") + m + s)
    assert hash_typed_data(doc).struct_hash == expected


def test_bytes_and_strings_agree_with_eth_account() -> None:
    agree_with_eth_account(BYTES_AND_STRINGS)


def test_signed_integers_agree_with_eth_account() -> None:
    doc = {
        "types": {
            "EIP712Domain": domain_type("chainId"),
            "Ints": fields("int8 a", "int16 b", "int256 c", "int256 d", "int64 e", "uint8 f", "uint256 g"),
        },
        "primaryType": "Ints",
        "domain": {"chainId": 1},
        "message": {
            "a": -128,
            "b": "-32768",
            "c": -(2**255),
            "d": str(2**255 - 1),
            "e": "0x7fffffffffffffff",
            "f": 255,
            "g": 0,
        },
    }
    agree_with_eth_account(doc)


def test_recursive_type_agrees_with_eth_account() -> None:
    assert _encode_type("Node", node_doc(1)["types"]) == "Node(uint256 value,Node[] children)"
    agree_with_eth_account(node_doc(5))


def test_depth_bound() -> None:
    # Each Node level is two containers: the struct and its children array.
    deepest = MAX_DEPTH // 2
    agree_with_eth_account(node_doc(deepest))
    too_deep = r"^message(\.children\[0\]){%d}: nested deeper than %d" % (deepest, MAX_DEPTH)
    with pytest.raises(InvalidTypedData, match=too_deep):
        hash_typed_data(node_doc(deepest + 1))


def test_self_containing_python_value_is_bounded() -> None:
    message: dict[str, Any] = {"value": 1}
    message["children"] = [message]
    doc = node_doc(1)
    doc["message"] = message
    with pytest.raises(InvalidTypedData, match="nested deeper than"):
        hash_typed_data(doc)


def test_value_budget() -> None:
    doc: dict[str, Any] = {
        "types": {"EIP712Domain": domain_type("chainId"), "Many": fields("uint8[] xs")},
        "primaryType": "Many",
        "domain": {"chainId": 1},
        "message": {"xs": [1] * (MAX_VALUES // 2)},
    }
    hash_typed_data(doc)
    doc["message"]["xs"] = [1] * MAX_VALUES
    with pytest.raises(InvalidTypedData, match=rf"^message\.xs\[\d+\]: more than {MAX_VALUES} values"):
        hash_typed_data(doc)


# --- Random documents against eth-account ---------------------------------------

ATOMIC_TYPES = (
    [f"uint{bits}" for bits in (8, 16, 24, 48, 64, 128, 160, 256)]
    + [f"int{bits}" for bits in (8, 32, 256)]
    + ["address", "bool", "bytes1", "bytes4", "bytes20", "bytes32", "bytes", "string"]
)
# ASCII names in mixed case, so that "sorted by name" is exercised.
STRUCT_NAMES = ["Mail", "Zeta", "alpha", "Beta", "_Under", "Asset", "asset2", "Order"]
FIELD_NAMES = st.from_regex(r"[a-z_][A-Za-z0-9_]{0,7}", fullmatch=True)


def atomic_values(type_string: str) -> st.SearchStrategy[Any]:
    if type_string.startswith(("uint", "int")):
        signed = type_string.startswith("int")
        bits = int(type_string[3 if signed else 4 :])
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        numbers = st.integers(low, high) | st.sampled_from([low, high, 0])
        return numbers.flatmap(lambda n: st.sampled_from([n, str(n)] + ([hex(n)] if n >= 0 else [])))
    if type_string == "address":
        return st.binary(min_size=20, max_size=20).flatmap(
            lambda raw: st.sampled_from(["0x" + raw.hex(), to_checksum_address(raw)])
        )
    if type_string == "bool":
        return st.booleans()
    if type_string == "string":
        return st.text(max_size=12)
    if type_string == "bytes":
        return st.binary(max_size=40).map(lambda raw: "0x" + raw.hex())
    size = int(type_string[5:])
    return st.binary(min_size=size, max_size=size).map(lambda raw: "0x" + raw.hex())


@st.composite
def typed_documents(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 4))
    names = draw(st.permutations(STRUCT_NAMES))[:count]
    types: dict[str, Any] = {}
    for index, name in enumerate(names):
        # Struct i may use structs after it; the next one is always used, so
        # every type hangs off the primary (eth-account insists on that).
        referable = names[index + 1 :]
        shaped: list[str] = []
        struct_members = referable[:1] + draw(st.lists(st.sampled_from(referable), max_size=1)) if referable else []
        for base in struct_members:
            shaped.append(base + draw(st.sampled_from(["", "[]", "[1]", "[2]"])))
        for _ in range(draw(st.integers(0, 4))):
            base = draw(st.sampled_from(ATOMIC_TYPES))
            shaped.append(base + "".join(draw(st.lists(st.sampled_from(["[]", "[1]", "[2]", "[3]"]), max_size=2))))
        shaped = draw(st.permutations(shaped))
        field_names = draw(st.lists(FIELD_NAMES, min_size=len(shaped), max_size=len(shaped), unique=True))
        types[name] = [{"name": n, "type": t} for n, t in zip(field_names, shaped, strict=False)]

    def value_of(type_string: str, budget: list[int]) -> Any:
        if type_string.endswith("]"):
            bracket = type_string.rindex("[")
            inner, length = type_string[:bracket], type_string[bracket + 1 : -1]
            # Fixed lengths spend the budget too; dynamic ones stop at zero.
            size = int(length) if length else draw(st.integers(0, 3 if budget[0] > 0 else 0))
            budget[0] -= size
            return [value_of(inner, budget) for _ in range(size)]
        if type_string in types:
            return {field["name"]: value_of(field["type"], budget) for field in types[type_string]}
        return draw(atomic_values(type_string))

    domain_names = draw(
        st.lists(st.sampled_from(list(DOMAIN_TYPES)), min_size=1, max_size=5, unique=True).map(
            lambda chosen: [n for n in DOMAIN_TYPES if n in chosen]  # eth-account's order
        )
    )
    types["EIP712Domain"] = domain_type(*domain_names)
    domain = {n: value_of(DOMAIN_TYPES[n], [0]) for n in domain_names}
    return {
        "types": types,
        "primaryType": names[0],
        "domain": domain,
        "message": value_of(names[0], [40]),
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(typed_documents())
def test_random_documents_agree_with_eth_account(doc: dict[str, Any]) -> None:
    ours = hash_typed_data(doc)
    signable = encode_typed_data(full_message=copy.deepcopy(doc))
    assert ours.domain_separator == bytes(signable.header)
    assert ours.struct_hash == bytes(signable.body)
    assert ours.digest == bytes(_hash_eip191_message(signable))
