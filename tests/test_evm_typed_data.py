"""Tests for evm.typed_data (EIP-712): the specification's own example,
values published on chain, eth-account as an independent implementation (fixed
documents and random ones from hypothesis), and the refusals.

eth-account is imported here only, as an oracle.
"""

from __future__ import annotations

import copy
import re

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evm._crypto import keccak
from evm.messages import recover_digest, sign_digest
from evm.typed_data import (
    MAX_DEPTH,
    MAX_VALUES,
    InvalidTypedData,
    TypedDataHashes,
    _encode_type,
    hash_typed_data,
    validate_types,
)

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address

DOMAIN_TYPES = {
    "name": "string",
    "version": "string",
    "chainId": "uint256",
    "verifyingContract": "address",
    "salt": "bytes32",
}


def domain_type(*names: str) -> list[dict]:
    return [{"name": name, "type": DOMAIN_TYPES[name]} for name in names]


def fields(*pairs: str) -> list[dict]:
    """fields("address owner", "uint256 value") -> EIP-712 field list."""
    out = []
    for pair in pairs:
        type_string, name = pair.split(" ")
        out.append({"name": name, "type": type_string})
    return out


def agree_with_eth_account(doc: dict) -> TypedDataHashes:
    """Hash ``doc`` here and in eth-account, sign here, recover there."""
    ours = hash_typed_data(doc)
    signable = encode_typed_data(full_message=copy.deepcopy(doc))
    assert (ours.domain_separator, ours.struct_hash) == (bytes(signable.header), bytes(signable.body))
    assert ours.digest == bytes(_hash_eip191_message(signable))
    signature = sign_digest(ours.digest, bytearray(KEY))
    assert Account.recover_message(signable, signature=signature) == ADDRESS
    # RFC 6979 nonces on both sides: the same signature, byte for byte.
    assert signature == bytes(Account.sign_message(signable, KEY).signature)
    return ours


# --- The EIP-712 specification's example (assets/eip-712/Example.js) ---------------

MAIL = {
    "types": {
        "EIP712Domain": domain_type("name", "version", "chainId", "verifyingContract"),
        "Person": fields("string name", "address wallet"),
        "Mail": fields("Person from", "Person to", "string contents"),
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}


def test_eip712_specification_example():
    # Every value below is asserted by the specification's Example.js.
    assert _encode_type("Mail", MAIL["types"]) == (
        "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
    )
    assert keccak(_encode_type("Mail", MAIL["types"]).encode()).hex() == (
        "a0cedeb2dc280ba39b857546d74f5549c3a1d7bdc2dd96bf881f76108e23dac2"
    )
    hashes = hash_typed_data(MAIL)
    assert hashes.domain_separator.hex() == "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
    assert hashes.struct_hash.hex() == "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
    assert hashes.digest.hex() == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"

    cow = keccak(b"cow")
    signature = sign_digest(hashes.digest, cow)
    assert signature[:32].hex() == "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
    assert signature[32:64].hex() == "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"
    assert signature[64] == 28
    assert recover_digest(hashes.digest, signature).hex() == "cd2a3d9f938e13cd947ec05abc7fe734df8dd826"


def test_eip712_specification_example_agrees_with_eth_account():
    agree_with_eth_account(MAIL)


def test_hashes_are_frozen():
    hashes = hash_typed_data(MAIL)
    with pytest.raises(AttributeError):
        hashes.digest = b"\x00" * 32


# --- Permits: ERC-2612, DAI, Uniswap Permit2 -------------------------------------

USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
DAI = "0x6B175474E89094C44Da98b954EedeAC495271d0F"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
ROUTER = "0x3fC91A3afd70395Cd496C647d5a6CC9D4B2b7FAD"
OWNER = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"

U256_MAX = 2**256 - 1
U160_MAX = 2**160 - 1

PERMIT_USDC = {
    "types": {
        "EIP712Domain": domain_type("name", "version", "chainId", "verifyingContract"),
        "Permit": fields("address owner", "address spender", "uint256 value", "uint256 nonce", "uint256 deadline"),
    },
    "primaryType": "Permit",
    "domain": {"name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": USDC},
    "message": {
        "owner": OWNER,
        "spender": ROUTER,
        # An unlimited approval, as JSON from JavaScript sends it: a decimal
        # string, since the number would not survive a double.
        "value": str(U256_MAX),
        "nonce": 0,
        "deadline": "0x6553f100",
    },
}

PERMIT_DAI = {
    "types": {
        "EIP712Domain": domain_type("name", "version", "chainId", "verifyingContract"),
        "Permit": fields("address holder", "address spender", "uint256 nonce", "uint256 expiry", "bool allowed"),
    },
    "primaryType": "Permit",
    "domain": {"name": "Dai Stablecoin", "version": "1", "chainId": 1, "verifyingContract": DAI},
    "message": {"holder": OWNER, "spender": ROUTER, "nonce": 7, "expiry": 1_900_000_000, "allowed": True},
}

PERMIT2_DOMAIN = {"name": "Permit2", "chainId": 1, "verifyingContract": PERMIT2}
PERMIT2_DOMAIN_TYPE = domain_type("name", "chainId", "verifyingContract")
PERMIT_DETAILS = fields("address token", "uint160 amount", "uint48 expiration", "uint48 nonce")
TOKEN_PERMISSIONS = fields("address token", "uint256 amount")

PERMIT_SINGLE = {
    "types": {
        "EIP712Domain": PERMIT2_DOMAIN_TYPE,
        "PermitSingle": fields("PermitDetails details", "address spender", "uint256 sigDeadline"),
        "PermitDetails": PERMIT_DETAILS,
    },
    "primaryType": "PermitSingle",
    "domain": PERMIT2_DOMAIN,
    "message": {
        "details": {"token": USDC, "amount": str(U160_MAX), "expiration": 2**48 - 1, "nonce": "0x0"},
        "spender": ROUTER,
        "sigDeadline": "1717000000",
    },
}

PERMIT_BATCH = {
    "types": {
        "EIP712Domain": PERMIT2_DOMAIN_TYPE,
        "PermitBatch": fields("PermitDetails[] details", "address spender", "uint256 sigDeadline"),
        "PermitDetails": PERMIT_DETAILS,
    },
    "primaryType": "PermitBatch",
    "domain": PERMIT2_DOMAIN,
    "message": {
        "details": [
            {"token": USDC, "amount": 1_000_000, "expiration": 1_720_000_000, "nonce": 3},
            {"token": DAI.lower(), "amount": "0xffffffffffffffffffffffffffffffffffffffff", "expiration": 0, "nonce": 0},
            {"token": WETH, "amount": 5 * 10**17, "expiration": "1720000000", "nonce": 2**48 - 1},
        ],
        "spender": ROUTER,
        "sigDeadline": 1_717_000_000,
    },
}

PERMIT_TRANSFER_FROM = {
    "types": {
        "EIP712Domain": PERMIT2_DOMAIN_TYPE,
        "PermitTransferFrom": fields(
            "TokenPermissions permitted", "address spender", "uint256 nonce", "uint256 deadline"
        ),
        "TokenPermissions": TOKEN_PERMISSIONS,
    },
    "primaryType": "PermitTransferFrom",
    "domain": PERMIT2_DOMAIN,
    "message": {
        "permitted": {"token": WETH, "amount": "2500000000000000000"},
        "spender": ROUTER,
        "nonce": "0x" + "ab" * 31,
        "deadline": 1_717_000_000,
    },
}

PERMIT_BATCH_TRANSFER_FROM = {
    "types": {
        "EIP712Domain": PERMIT2_DOMAIN_TYPE,
        "PermitBatchTransferFrom": fields(
            "TokenPermissions[] permitted", "address spender", "uint256 nonce", "uint256 deadline"
        ),
        "TokenPermissions": TOKEN_PERMISSIONS,
    },
    "primaryType": "PermitBatchTransferFrom",
    "domain": PERMIT2_DOMAIN,
    "message": {
        "permitted": [{"token": WETH, "amount": 1}, {"token": USDC, "amount": str(U256_MAX)}],
        "spender": ROUTER,
        "nonce": 0,
        "deadline": "1717000000",
    },
}

PERMITS = {
    "erc2612-usdc": PERMIT_USDC,
    "dai": PERMIT_DAI,
    "permit2-single": PERMIT_SINGLE,
    "permit2-batch": PERMIT_BATCH,
    "permit2-transfer-from": PERMIT_TRANSFER_FROM,
    "permit2-batch-transfer-from": PERMIT_BATCH_TRANSFER_FROM,
}


@pytest.mark.parametrize("doc", PERMITS.values(), ids=PERMITS.keys())
def test_permits_agree_with_eth_account(doc):
    agree_with_eth_account(doc)


def test_domain_separators_published_on_chain():
    # The DOMAIN_SEPARATOR() each mainnet contract returns (pinned, e.g., by
    # Uniswap's Permit2Lib for DAI, and compiled into Permit2's bytecode).
    assert hash_typed_data(PERMIT_DAI).domain_separator.hex() == (
        "dbb8cf42e1ecb028be3f3dbc922e1d878b963f411dc388ced501601c60f7c6f7"
    )
    assert hash_typed_data(PERMIT_USDC).domain_separator.hex() == (
        "06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335"
    )
    assert hash_typed_data(PERMIT_SINGLE).domain_separator.hex() == (
        "866a5aba21966af95d6c7ab78eb2b2fc913915c28be3b9aa07cc04ff903e3f28"
    )


def test_type_strings_published_by_the_contracts():
    # ERC-2612 and DAI's PERMIT_TYPEHASH constants.
    assert keccak(_encode_type("Permit", PERMIT_USDC["types"]).encode()).hex() == (
        "6e71edae12b1b97f4d1f60370fef10105fa2faae0126114a169c64845d6126c9"
    )
    assert keccak(_encode_type("Permit", PERMIT_DAI["types"]).encode()).hex() == (
        "ea2aa0a1be11a07ed86d755c93467f4f82362b452371d1ba94d1715123511acb"
    )
    # Uniswap Permit2, src/libraries/PermitHash.sol.
    details = "PermitDetails(address token,uint160 amount,uint48 expiration,uint48 nonce)"
    permissions = "TokenPermissions(address token,uint256 amount)"
    assert _encode_type("PermitSingle", PERMIT_SINGLE["types"]) == (
        "PermitSingle(PermitDetails details,address spender,uint256 sigDeadline)" + details
    )
    assert _encode_type("PermitBatch", PERMIT_BATCH["types"]) == (
        "PermitBatch(PermitDetails[] details,address spender,uint256 sigDeadline)" + details
    )
    assert _encode_type("PermitTransferFrom", PERMIT_TRANSFER_FROM["types"]) == (
        "PermitTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline)" + permissions
    )
    assert _encode_type("PermitBatchTransferFrom", PERMIT_BATCH_TRANSFER_FROM["types"]) == (
        "PermitBatchTransferFrom(TokenPermissions[] permitted,address spender,uint256 nonce,uint256 deadline)"
        + permissions
    )


def test_integer_spellings_hash_alike():
    # int, decimal string and hex string are one value, not three.
    spellings = [U160_MAX, str(U160_MAX), hex(U160_MAX), "0x" + "0" * 24 + "f" * 40]
    digests = set()
    for amount in spellings:
        doc = copy.deepcopy(PERMIT_SINGLE)
        doc["message"]["details"]["amount"] = amount
        digests.add(hash_typed_data(doc).digest)
    assert len(digests) == 1


# --- Domains, arrays, bytes and strings --------------------------------------------

SIMPLE_TYPES = {"Note": fields("string text")}


def doc_with_domain(names: tuple[str, ...], domain: dict) -> dict:
    return {
        "types": {"EIP712Domain": domain_type(*names), **SIMPLE_TYPES},
        "primaryType": "Note",
        "domain": domain,
        "message": {"text": "hi"},
    }


DOMAINS = {
    "name+chainId": (("name", "chainId"), {"name": "App", "chainId": 10}),
    "chainId only": (("chainId",), {"chainId": "0x2105"}),
    "salt+chainId": (("chainId", "salt"), {"chainId": 137, "salt": "0x" + "5a" * 32}),
    "all five": (
        ("name", "version", "chainId", "verifyingContract", "salt"),
        {"name": "App", "version": "3", "chainId": 1, "verifyingContract": PERMIT2, "salt": "0x" + "00" * 31 + "01"},
    ),
    "verifyingContract only": (("verifyingContract",), {"verifyingContract": USDC.lower()}),
}


@pytest.mark.parametrize(("names", "domain"), DOMAINS.values(), ids=DOMAINS.keys())
def test_partial_domains_agree_with_eth_account(names, domain):
    agree_with_eth_account(doc_with_domain(names, domain))


def test_domain_is_hashed_in_the_order_the_type_lists():
    # The spec: user agents "should accept fields in any order as specified by
    # the EIP712Domain type". eth-account instead rebuilds the domain type in
    # the canonical order, so it is not the oracle here; the hash is written out.
    doc = doc_with_domain(("chainId", "name"), {"name": "App", "chainId": 10})
    expected = keccak(keccak(b"EIP712Domain(uint256 chainId,string name)") + (10).to_bytes(32, "big") + keccak(b"App"))
    assert hash_typed_data(doc).domain_separator == expected


PERSON = fields("string name", "address wallet")

ARRAYS = {
    "types": {
        "EIP712Domain": domain_type("name", "chainId"),
        "Grid": fields(
            "uint256[][] rows",
            "bytes2[2][] pairs",
            "string[] tags",
            "bytes[] blobs",
            "Person[][] teams",
            "int8[3] small",
            "bool[] flags",
            "address[] nobody",
            "Person[2] duo",
            "uint8[][2][] deep",
        ),
        "Person": PERSON,
    },
    "primaryType": "Grid",
    "domain": {"name": "Arrays", "chainId": 1},
    "message": {
        "rows": [[1, 2, 3], [], ["4"], ["0x5", 6]],
        "pairs": [["0x0102", "0xfffe"], ["0x0000", "0xabcd"]],
        "tags": ["", "a", "ünïcödé", "emoji 🦄"],
        "blobs": ["0x", "0x00", "0x" + "de" * 100],
        "teams": [[{"name": "Ann", "wallet": OWNER}], [], [MAIL["message"]["from"], MAIL["message"]["to"]]],
        "small": [-128, "127", "-1"],
        "flags": [True, False, True],
        "nobody": [],
        "duo": [MAIL["message"]["from"], MAIL["message"]["to"]],
        "deep": [[[1], [2, 3]], [[], []]],
    },
}


def test_nested_arrays_agree_with_eth_account():
    agree_with_eth_account(ARRAYS)


def test_array_encoding_by_hand():
    # Spelled out once: an array is keccak256 of its elements' encodings.
    doc = {
        "types": {"EIP712Domain": domain_type("chainId"), "A": fields("uint8[][] m", "string[] s")},
        "primaryType": "A",
        "domain": {"chainId": 1},
        "message": {"m": [[1, 2], []], "s": ["x"]},
    }
    word = lambda n: n.to_bytes(32, "big")  # noqa: E731
    m = keccak(keccak(word(1) + word(2)) + keccak(b""))
    s = keccak(keccak(b"x"))
    expected = keccak(keccak(b"A(uint8[][] m,string[] s)") + m + s)
    assert hash_typed_data(doc).struct_hash == expected


BYTES_AND_STRINGS = {
    "types": {
        "EIP712Domain": domain_type("name", "version", "chainId", "verifyingContract"),
        "Blob": fields(
            "bytes data", "bytes empty", "string text", "string blank", "bytes1 one", "bytes32 full", "bytes16 half"
        ),
    },
    "primaryType": "Blob",
    "domain": {"name": "Blobs", "version": "0", "chainId": "31337", "verifyingContract": OWNER},
    "message": {
        "data": "0x" + bytes(range(256)).hex().upper(),
        "empty": "0x",
        "text": "line one\nline two\t\u00e9\u4e2d\U0001f600",
        "blank": "",
        "one": "0xff",
        "full": "0x" + "11" * 32,
        "half": "0x" + "Ab" * 16,
    },
}


def test_bytes_and_strings_agree_with_eth_account():
    agree_with_eth_account(BYTES_AND_STRINGS)


def test_signed_integers_agree_with_eth_account():
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


def nested_nodes(levels: int) -> dict:
    node: dict = {"value": levels, "children": []}
    for level in range(levels - 1, 0, -1):
        node = {"value": level, "children": [node, {"value": 0, "children": []}]}
    return node


def node_doc(levels: int) -> dict:
    return {
        "types": {"EIP712Domain": domain_type("name"), "Node": fields("uint256 value", "Node[] children")},
        "primaryType": "Node",
        "domain": {"name": "Tree"},
        "message": nested_nodes(levels),
    }


def test_recursive_type_agrees_with_eth_account():
    assert _encode_type("Node", node_doc(1)["types"]) == "Node(uint256 value,Node[] children)"
    agree_with_eth_account(node_doc(5))


def test_depth_bound():
    # Each Node level is two containers: the struct and its children array.
    deepest = MAX_DEPTH // 2
    agree_with_eth_account(node_doc(deepest))
    too_deep = r"^message(\.children\[0\]){%d}: nested deeper than %d" % (deepest, MAX_DEPTH)
    with pytest.raises(InvalidTypedData, match=too_deep):
        hash_typed_data(node_doc(deepest + 1))


def test_self_containing_python_value_is_bounded():
    message: dict = {"value": 1}
    message["children"] = [message]
    doc = node_doc(1)
    doc["message"] = message
    with pytest.raises(InvalidTypedData, match="nested deeper than"):
        hash_typed_data(doc)


def test_value_budget():
    doc = {
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


def atomic_values(type_string: str):
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
def typed_documents(draw):
    count = draw(st.integers(1, 4))
    names = draw(st.permutations(STRUCT_NAMES))[:count]
    types: dict = {}
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
        types[name] = [{"name": n, "type": t} for n, t in zip(field_names, shaped)]

    def value_of(type_string: str, budget: list[int]):
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
def test_random_documents_agree_with_eth_account(doc):
    ours = hash_typed_data(doc)
    signable = encode_typed_data(full_message=copy.deepcopy(doc))
    assert ours.domain_separator == bytes(signable.header)
    assert ours.struct_hash == bytes(signable.body)
    assert ours.digest == bytes(_hash_eip191_message(signable))


# --- Refusals: each names the JSON path --------------------------------------------


def refused(doc: dict, path: str, what: str) -> None:
    with pytest.raises(InvalidTypedData) as info:
        hash_typed_data(doc)
    message = str(info.value)
    assert message.startswith(path + ":"), message
    assert re.search(what, message), message


def edited(doc: dict, edit) -> dict:
    doc = copy.deepcopy(doc)
    edit(doc)
    return doc


def test_uint_overflow_refused():
    doc = edited(PERMIT_SINGLE, lambda d: d["message"]["details"].update(amount=2**160))
    refused(doc, "message.details.amount", r"uint160 must be < 2\*\*160, got %d$" % 2**160)
    doc = edited(PERMIT_BATCH, lambda d: d["message"]["details"][2].update(nonce=str(2**48)))
    refused(doc, "message.details[2].nonce", r"uint48 must be < 2\*\*48")
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(value=hex(2**256)))
    refused(doc, "message.value", r"uint256 must be < 2\*\*256")


@pytest.mark.parametrize("value", [-1, "-1", "-0x1"])
def test_negative_uint_refused(value):
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(value=value))
    refused(doc, "message.value", "uint256" if value != "-0x1" else "decimal string or a 0x-hex string")


def test_negative_uint_message():
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(nonce=-5))
    refused(doc, "message.nonce", "uint256 is unsigned, must be >= 0, got -5")


@pytest.mark.parametrize("value", [1, 0, "true", "false", None, "1"])
def test_bool_must_be_true_or_false(value):
    doc = edited(PERMIT_DAI, lambda d: d["message"].update(allowed=value))
    refused(doc, "message.allowed", "bool takes true or false")


@pytest.mark.parametrize(
    "salt", ["0x" + "00" * 31, "0x" + "00" * 33, "0x", "00" * 32, "0x" + "0" * 63, "0x" + "zz" * 32, 0, b"\x00" * 32]
)
def test_bytes32_of_wrong_length_refused(salt):
    names, domain = DOMAINS["salt+chainId"]
    doc = doc_with_domain(names, dict(domain, salt=salt))
    refused(doc, "domain.salt", "bytes32 takes")


def test_missing_field_refused():
    doc = edited(PERMIT_USDC, lambda d: d["message"].pop("spender"))
    refused(doc, "message.spender", "missing; Permit requires address spender")
    doc = edited(PERMIT_BATCH, lambda d: d["message"]["details"][1].pop("token"))
    refused(doc, "message.details[1].token", "missing")


def test_extra_field_refused():
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(memo="approve 10 USDC"))
    refused(doc, "message.memo", "not a field of Permit .* would be shown but not signed")
    doc = edited(PERMIT_TRANSFER_FROM, lambda d: d["message"]["permitted"].update(to=OWNER))
    refused(doc, "message.permitted.to", "not a field of TokenPermissions")


def test_undefined_type_refused():
    doc = edited(MAIL, lambda d: d["types"]["Mail"][0].update(type="Persn"))
    refused(doc, "types.Mail[0].type", "struct type Persn is not defined")
    doc = edited(MAIL, lambda d: d["types"]["Mail"][1].update(type="Person[][]x"))
    refused(doc, "types.Mail[1].type", "is not a type")


def test_domain_key_not_in_eip712domain_refused():
    doc = edited(MAIL, lambda d: d["domain"].update(salt="0x" + "00" * 32))
    refused(doc, "domain.salt", "not a field of EIP712Domain")
    doc = edited(PERMIT_SINGLE, lambda d: d["domain"].update(version="1"))
    refused(doc, "domain.version", "not a field of EIP712Domain")


def test_domain_key_missing_refused():
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
def test_value_refusals(edit, path, what):
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
def test_array_refusals(edit, path, what):
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
def test_structural_refusals(edit, path, what):
    doc = edited(MAIL, edit)
    with pytest.raises(InvalidTypedData) as info:
        validate_types(doc)
    assert str(info.value).startswith(path + ":"), str(info.value)
    assert re.search(what, str(info.value)), str(info.value)
    refused(doc, path, what)


def test_validate_types_accepts_good_documents():
    for doc in [MAIL, ARRAYS, BYTES_AND_STRINGS, node_doc(3), *PERMITS.values()]:
        assert validate_types(doc) is None


def test_validate_types_leaves_values_alone():
    # Structural only: a bad value is hash_typed_data's to find.
    doc = edited(PERMIT_USDC, lambda d: d["message"].update(value=-1))
    validate_types(doc)
    refused(doc, "message.value", "unsigned")


def test_not_a_mapping():
    with pytest.raises(InvalidTypedData, match="^document: must be an object"):
        hash_typed_data([MAIL])
