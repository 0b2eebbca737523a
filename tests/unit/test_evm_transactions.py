"""Tests for evm.transactions: published vectors, eth-account as an oracle, and deterministic
signing. The validation the custody signer relies on is in test_evm_transactions_validation.py.

eth-account is imported here only, as an independent reference implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from eth_hash.auto import keccak as eth_hash_keccak

from evm._rlp import encode_list
from evm.constants import SECP256K1N
from evm.transactions import (
    AccessListTransaction,
    FeeMarketTransaction,
    InvalidPrivateKey,
    LegacyTransaction,
    SignedTx,
    address_of,
    checksum,
    decode_signed,
    payload_legacy,
    recover_sender,
    sign_transaction,
    signing_hash_155,
    signing_hash_1559,
    signing_hash_2930,
    signing_hash_pre155,
)
from evm.transactions.types import AccessList
from tests.evm_support import (
    ACCESS_LIST_CASES,
    ALL_CASES,
    EIP155_KEY,
    EIP155_SENDER,
    EIP155_SIGNED,
    EIP155_TX,
    FEE_MARKET_CASES,
    RECIPIENT,
)

EIP155_SIGNING_DATA = bytes.fromhex(
    "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080"
)
EIP155_SIGNING_HASH = bytes.fromhex("daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53")
EIP155_V = 37
EIP155_R = 18515461264373351373200002665853028612451056578545711640558177340181847433846
EIP155_S = 46948507304638947509940763649030358759909902576025900602547168820602576006531


def test_eip155_signing_data_and_hash() -> None:
    assert encode_list(payload_legacy(EIP155_TX) + b"\x01\x80\x80") == EIP155_SIGNING_DATA
    assert signing_hash_155(EIP155_TX, 1) == EIP155_SIGNING_HASH


def test_eip155_signed_transaction() -> None:
    signed = sign_transaction(EIP155_TX, bytearray(EIP155_KEY), 1)
    assert signed.raw == EIP155_SIGNED
    assert (signed.v, signed.r, signed.s) == (EIP155_V, EIP155_R, EIP155_S)
    assert signed.tx_hash == eth_hash_keccak(EIP155_SIGNED)
    assert signed.sender == EIP155_SENDER
    assert address_of(EIP155_KEY) == EIP155_SENDER


def test_eip155_decode_and_recover() -> None:
    tx, v, r, s = decode_signed(EIP155_SIGNED)
    assert tx == EIP155_TX
    assert (v, r, s) == (EIP155_V, EIP155_R, EIP155_S)
    assert recover_sender(EIP155_SIGNED) == EIP155_SENDER


# --- eth-account as an oracle -----------------------------------------------

KEYS = [
    bytes.fromhex("46" * 32),
    (1).to_bytes(32, "big"),
    (SECP256K1N - 1).to_bytes(32, "big"),
    bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"),
]


def _access_list_dict(access_list: AccessList) -> list[dict[str, Any]]:
    return [
        {"address": checksum(address), "storageKeys": ["0x" + key.hex() for key in keys]}
        for address, keys in access_list
    ]


def _to_eth_account_dict(
    tx: AccessListTransaction | FeeMarketTransaction | LegacyTransaction,
    chain_id: int,
) -> dict[str, Any]:
    d: dict[str, Any]
    if isinstance(tx, LegacyTransaction):
        d = {
            "nonce": tx.nonce,
            "gasPrice": tx.gas_price,
            "gas": tx.gas,
            "value": tx.value,
            "data": tx.data,
            "chainId": chain_id,
        }
    elif isinstance(tx, AccessListTransaction):
        d = {
            "type": 1,
            "chainId": tx.chain_id,
            "nonce": tx.nonce,
            "gasPrice": tx.gas_price,
            "gas": tx.gas,
            "value": tx.value,
            "data": tx.data,
            "accessList": _access_list_dict(tx.access_list),
        }
    else:
        d = {
            "type": 2,
            "chainId": tx.chain_id,
            "nonce": tx.nonce,
            "maxPriorityFeePerGas": tx.max_priority_fee_per_gas,
            "maxFeePerGas": tx.max_fee_per_gas,
            "gas": tx.gas,
            "value": tx.value,
            "data": tx.data,
            "accessList": _access_list_dict(tx.access_list),
        }
    if tx.to:
        d["to"] = checksum(tx.to)
    return d


@pytest.mark.parametrize("key", KEYS, ids=["k46", "k1", "kn-1", "kdoc"])
@pytest.mark.parametrize("tx, chain_id", ALL_CASES)
def test_matches_eth_account(
    tx: AccessListTransaction | FeeMarketTransaction | LegacyTransaction,
    chain_id: int,
    key: bytes,
) -> None:
    ours = sign_transaction(tx, bytearray(key), chain_id)
    theirs = Account.sign_transaction(_to_eth_account_dict(tx, chain_id), key)

    assert ours.raw == bytes(theirs.raw_transaction)
    assert ours.tx_hash == bytes(theirs.hash)
    assert (ours.v, ours.r, ours.s) == (theirs.v, theirs.r, theirs.s)
    assert checksum(ours.sender) == Account.from_key(key).address
    assert checksum(ours.sender) == Account.recover_transaction(ours.raw)
    assert recover_sender(bytes(theirs.raw_transaction)) == ours.sender

    decoded, v, r, s = decode_signed(ours.raw)
    assert decoded == tx
    assert (v, r, s) == (ours.v, ours.r, ours.s)


@pytest.mark.parametrize("key", KEYS, ids=["k46", "k1", "kn-1", "kdoc"])
def test_recover_unprotected_legacy(key: bytes) -> None:
    # Pre-EIP-155 (v = 27/28) transactions are never produced by the signer,
    # but still exist on chain and must be attributable.
    theirs = Account.sign_transaction(
        {"nonce": 0, "gasPrice": 1, "gas": 21000, "to": checksum(RECIPIENT), "value": 5, "data": b""},
        key,
    )
    assert theirs.v in (27, 28)
    raw = bytes(theirs.raw_transaction)
    tx, v, _, _ = decode_signed(raw)
    assert v == theirs.v
    assert checksum(recover_sender(raw)) == Account.recover_transaction(raw)
    assert recover_sender(raw) == address_of(key)
    assert isinstance(tx, LegacyTransaction)
    assert signing_hash_pre155(tx) == eth_hash_keccak(encode_list(payload_legacy(tx)))


# --- determinism ----------------------------------------------------------------


@pytest.mark.parametrize("tx, chain_id", ALL_CASES[:1] + ALL_CASES[-3:])
def test_signing_is_deterministic(tx: FeeMarketTransaction | LegacyTransaction, chain_id: int) -> None:
    first = sign_transaction(tx, bytearray(EIP155_KEY), chain_id)
    second = sign_transaction(tx, bytearray(EIP155_KEY), chain_id)
    from_bytes = sign_transaction(tx, EIP155_KEY, chain_id)
    assert first == second == from_bytes
    assert isinstance(first, SignedTx)


def test_signing_does_not_modify_the_key_buffer() -> None:
    key = bytearray(EIP155_KEY)
    sign_transaction(EIP155_TX, key, 1)
    assert key == bytearray(EIP155_KEY)
    # The caller wipes it; the signer must then refuse it rather than sign
    # with a zero scalar.
    key[:] = bytes(32)
    with pytest.raises(InvalidPrivateKey):
        sign_transaction(EIP155_TX, key, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda key: sign_transaction(EIP155_TX, key, 1),
        lambda key: address_of(key),
    ],
)
def test_key_buffer_is_released_even_on_error(call: Callable[[bytearray], object]) -> None:
    # The signer points into the caller's bytearray instead of copying it;
    # that export must end with the call, or a caller wiping the key from an
    # exception handler would get BufferError instead.
    key = bytearray(32)
    try:
        call(key)
    except InvalidPrivateKey:
        key.clear()
    assert key == bytearray()
    key = bytearray(EIP155_KEY)
    call(key)
    key.clear()


def test_signing_hashes_differ_by_type_and_chain() -> None:
    tx = FEE_MARKET_CASES[0]
    assert signing_hash_155(EIP155_TX, 1) != signing_hash_155(EIP155_TX, 5)
    assert signing_hash_1559(tx) != signing_hash_1559(
        FeeMarketTransaction(5, *[getattr(tx, f) for f in tx.__slots__[1:]])
    )
    assert signing_hash_2930(ACCESS_LIST_CASES[0]) != signing_hash_1559(tx)
