"""Tests for evm.typed_data (EIP-712): the specification's own example, permits and values
published on chain, against eth-account as an independent implementation. Encoding of domains,
arrays and random documents is in test_evm_typed_data_encoding.py, the refusals in
test_evm_typed_data_refusals.py.

eth-account is imported here only, as an oracle.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from evm._crypto import keccak
from evm.messages import recover_digest, sign_digest
from evm.typed_data import _encode_type, hash_typed_data
from tests.eip712_support import (
    MAIL,
    PERMIT_BATCH,
    PERMIT_BATCH_TRANSFER_FROM,
    PERMIT_DAI,
    PERMIT_SINGLE,
    PERMIT_TRANSFER_FROM,
    PERMIT_USDC,
    PERMITS,
    U160_MAX,
    agree_with_eth_account,
)


def _types(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc["types"]`` as a mapping (the permits of tests.eip712_support have no declared type)."""
    types: dict[str, Any] = doc["types"]
    return types


def test_eip712_specification_example() -> None:
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


def test_eip712_specification_example_agrees_with_eth_account() -> None:
    agree_with_eth_account(MAIL)


def test_hashes_are_frozen() -> None:
    hashes = hash_typed_data(MAIL)
    with pytest.raises(AttributeError):
        cast(Any, hashes).digest = b"\x00" * 32


@pytest.mark.parametrize("doc", PERMITS.values(), ids=PERMITS.keys())
def test_permits_agree_with_eth_account(doc: dict[str, Any]) -> None:
    agree_with_eth_account(doc)


def test_domain_separators_published_on_chain() -> None:
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


def test_type_strings_published_by_the_contracts() -> None:
    # ERC-2612 and DAI's PERMIT_TYPEHASH constants.
    assert keccak(_encode_type("Permit", _types(PERMIT_USDC)).encode()).hex() == (
        "6e71edae12b1b97f4d1f60370fef10105fa2faae0126114a169c64845d6126c9"
    )
    assert keccak(_encode_type("Permit", _types(PERMIT_DAI)).encode()).hex() == (
        "ea2aa0a1be11a07ed86d755c93467f4f82362b452371d1ba94d1715123511acb"
    )
    # Uniswap Permit2, src/libraries/PermitHash.sol.
    details = "PermitDetails(address token,uint160 amount,uint48 expiration,uint48 nonce)"
    permissions = "TokenPermissions(address token,uint256 amount)"
    assert _encode_type("PermitSingle", _types(PERMIT_SINGLE)) == (
        "PermitSingle(PermitDetails details,address spender,uint256 sigDeadline)" + details
    )
    assert _encode_type("PermitBatch", _types(PERMIT_BATCH)) == (
        "PermitBatch(PermitDetails[] details,address spender,uint256 sigDeadline)" + details
    )
    assert _encode_type("PermitTransferFrom", _types(PERMIT_TRANSFER_FROM)) == (
        "PermitTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline)" + permissions
    )
    assert _encode_type("PermitBatchTransferFrom", _types(PERMIT_BATCH_TRANSFER_FROM)) == (
        "PermitBatchTransferFrom(TokenPermissions[] permitted,address spender,uint256 nonce,uint256 deadline)"
        + permissions
    )


def test_integer_spellings_hash_alike() -> None:
    # int, decimal string and hex string are one value, not three.
    spellings = [U160_MAX, str(U160_MAX), hex(U160_MAX), "0x" + "0" * 24 + "f" * 40]
    digests = set()
    for amount in spellings:
        doc: dict[str, Any] = copy.deepcopy(PERMIT_SINGLE)
        doc["message"]["details"]["amount"] = amount
        digests.add(hash_typed_data(doc).digest)
    assert len(digests) == 1
