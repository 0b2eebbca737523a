"""EIP-712 documents the evm.typed_data tests share (the specification's Mail, permits, domains,
arrays) and the check that a document hashes and signs as eth-account, the oracle, does."""

from __future__ import annotations

import copy
from typing import Any

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from evm.messages import sign_digest
from evm.typed_data import TypedDataHashes, hash_typed_data

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = Account.from_key(KEY).address

DOMAIN_TYPES = {
    "name": "string",
    "version": "string",
    "chainId": "uint256",
    "verifyingContract": "address",
    "salt": "bytes32",
}


def domain_type(*names: str) -> list[dict[str, Any]]:
    return [{"name": name, "type": DOMAIN_TYPES[name]} for name in names]


def fields(*pairs: str) -> list[dict[str, Any]]:
    """fields("address owner", "uint256 value") -> EIP-712 field list."""
    out = []
    for pair in pairs:
        type_string, name = pair.split(" ")
        out.append({"name": name, "type": type_string})
    return out


def agree_with_eth_account(doc: dict[str, Any]) -> TypedDataHashes:
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

MAIL: dict[str, Any] = {
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
SIMPLE_TYPES = {"Note": fields("string text")}


def doc_with_domain(names: tuple[str, ...], domain: dict[str, Any]) -> dict[str, Any]:
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


def nested_nodes(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"value": levels, "children": []}
    for level in range(levels - 1, 0, -1):
        node = {"value": level, "children": [node, {"value": 0, "children": []}]}
    return node


def node_doc(levels: int) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": domain_type("name"), "Node": fields("uint256 value", "Node[] children")},
        "primaryType": "Node",
        "domain": {"name": "Tree"},
        "message": nested_nodes(levels),
    }
