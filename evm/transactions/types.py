"""The transaction types, one frozen dataclass per type with its fields in wire order, each
validated once where it is made: legacy (type 0, EIP-155), EIP-2930 (type 1), EIP-1559 (type 2),
EIP-4844 (type 3) and EIP-7702 (type 4); and ``SignedTx``, what signing returns. A value out of its
range raises ``InvalidTransaction`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, Union

from evm._checks import check_uint
from evm.authorizations import SignedAuthorization
from evm.blobs import MAX_BLOBS_PER_TX, VERSIONED_HASH_VERSION_KZG
from evm.constants import NONCE_LIMIT

_U64_LIMIT = 2**64
_U256_LIMIT = 2**256

TX_TYPE_2930 = 0x01
TX_TYPE_1559 = 0x02
TX_TYPE_4844 = 0x03
TX_TYPE_7702 = 0x04

AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]


class InvalidTransaction(ValueError):
    """A transaction (or a signed serialization of one) is not acceptable."""


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _check_uint(name: str, value: object, limit: int, limit_text: str) -> None:
    check_uint(name, value, limit, limit_text, InvalidTransaction)


def check_nonce(value: object) -> None:
    """EIP-2681: a nonce is below 2**64 - 1 (reserved, so nonce + 1 still fits): a transaction at
    that nonce is invalid on every chain. Raises `InvalidTransaction`."""
    _check_uint("nonce", value, NONCE_LIMIT, "2**64 - 1 (EIP-2681)")


def _check_chain_id(name: str, value: object) -> None:
    _check_uint(name, value, _U64_LIMIT, "2**64")
    # Chain id 0 is nobody's chain; signing for it only invites replay
    # ambiguity.
    if value == 0:
        raise InvalidTransaction(f"{name} must be >= 1")


def _check_to(to: object) -> None:
    if type(to) is not bytes:
        raise InvalidTransaction(f"to must be bytes, not {type(to).__name__}")
    if len(to) not in (0, 20):
        raise InvalidTransaction(f"to must be 20 bytes (or empty for contract creation), got {len(to)}")


def _check_data(data: object) -> None:
    # bytearray is refused so a frozen transaction cannot change under us
    # between validation and signing.
    if type(data) is not bytes:
        raise InvalidTransaction(f"data must be bytes, not {type(data).__name__}")


def _check_access_list(access_list: object) -> None:
    # Tuples only, for the same immutability reason as ``data``.
    if type(access_list) is not tuple:
        raise InvalidTransaction("access_list must be a tuple")
    for entry in access_list:
        if type(entry) is not tuple or len(entry) != 2:
            raise InvalidTransaction("access_list entries must be (address, storage_keys) tuples")
        address, keys = entry
        if type(address) is not bytes or len(address) != 20:
            raise InvalidTransaction("access_list address must be 20 bytes")
        if type(keys) is not tuple:
            raise InvalidTransaction("access_list storage_keys must be a tuple")
        for key in keys:
            if type(key) is not bytes or len(key) != 32:
                raise InvalidTransaction("access_list storage key must be 32 bytes")


# ---------------------------------------------------------------------------
# Transaction types
# ---------------------------------------------------------------------------
#
# Validation runs once, in ``__post_init__``: the instances are frozen, and
# ``sign_transaction`` dispatches on the exact class so a subclass cannot
# sidestep it by overriding ``__post_init__``.


@dataclass(frozen=True, slots=True)
class LegacyTransaction:
    """
    Pre-EIP-2718 transaction. The chain id is not a field: EIP-155 folds it
    into the signing hash and into ``v``.
    """

    nonce: int
    gas_price: int
    gas: int
    to: bytes
    value: int
    data: bytes

    def __post_init__(self) -> None:
        # Nonces are capped at 2**64 - 1 by EIP-2681.
        check_nonce(self.nonce)
        _check_uint("gas_price", self.gas_price, _U256_LIMIT, "2**256")
        _check_uint("gas", self.gas, _U64_LIMIT, "2**64")
        _check_to(self.to)
        _check_uint("value", self.value, _U256_LIMIT, "2**256")
        _check_data(self.data)


@dataclass(frozen=True, slots=True)
class AccessListTransaction:
    """
    EIP-2930 transaction: legacy fee model plus an access list of accounts and
    storage slots to pre-warm. The chain id is part of the signed payload.
    """

    chain_id: int
    nonce: int
    gas_price: int
    gas: int
    to: bytes
    value: int
    data: bytes
    access_list: AccessList

    def __post_init__(self) -> None:
        _check_chain_id("chain_id", self.chain_id)
        check_nonce(self.nonce)
        _check_uint("gas_price", self.gas_price, _U256_LIMIT, "2**256")
        _check_uint("gas", self.gas, _U64_LIMIT, "2**64")
        _check_to(self.to)
        _check_uint("value", self.value, _U256_LIMIT, "2**256")
        _check_data(self.data)
        _check_access_list(self.access_list)


class FeeMarketFields(TypedDict):
    """`FeeMarketTransaction`'s fields, which the blob and set-code types begin with: a table of
    them can be spread (``**fields``) into any of the three and still type-check."""

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: bytes
    value: int
    data: bytes
    access_list: AccessList


@dataclass(frozen=True, slots=True)
class FeeMarketTransaction:
    """
    EIP-1559 transaction: the sender pays the block's base fee plus a tip,
    never more than ``max_fee_per_gas`` per unit of gas in total.
    """

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: bytes
    value: int
    data: bytes
    access_list: AccessList

    def __post_init__(self) -> None:
        _check_chain_id("chain_id", self.chain_id)
        check_nonce(self.nonce)
        _check_uint(
            "max_priority_fee_per_gas",
            self.max_priority_fee_per_gas,
            _U256_LIMIT,
            "2**256",
        )
        _check_uint("max_fee_per_gas", self.max_fee_per_gas, _U256_LIMIT, "2**256")
        # Nodes reject a tip larger than the cap (it could never be paid in
        # full), so signing one would only burn a nonce slot on a dud.
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise InvalidTransaction("max_priority_fee_per_gas must be <= max_fee_per_gas")
        _check_uint("gas", self.gas, _U64_LIMIT, "2**64")
        _check_to(self.to)
        _check_uint("value", self.value, _U256_LIMIT, "2**256")
        _check_data(self.data)
        _check_access_list(self.access_list)


def _check_fee_market(tx: BlobTransaction | SetCodeTransaction) -> None:
    _check_chain_id("chain_id", tx.chain_id)
    check_nonce(tx.nonce)
    _check_uint("max_priority_fee_per_gas", tx.max_priority_fee_per_gas, _U256_LIMIT, "2**256")
    _check_uint("max_fee_per_gas", tx.max_fee_per_gas, _U256_LIMIT, "2**256")
    if tx.max_priority_fee_per_gas > tx.max_fee_per_gas:
        raise InvalidTransaction("max_priority_fee_per_gas must be <= max_fee_per_gas")
    _check_uint("gas", tx.gas, _U64_LIMIT, "2**64")
    # Neither a blob nor a set-code transaction can create a contract.
    if type(tx.to) is not bytes or len(tx.to) != 20:
        raise InvalidTransaction(f"to must be 20 bytes (type {tx.TYPE} cannot create a contract)")
    _check_uint("value", tx.value, _U256_LIMIT, "2**256")
    _check_data(tx.data)
    _check_access_list(tx.access_list)


@dataclass(frozen=True, slots=True)
class BlobTransaction:
    """
    EIP-4844 transaction: an EIP-1559 transaction that also pays for blob gas and commits to
    its blobs by their versioned hashes (the blobs travel beside it, see ``blobs.py``).
    """

    TYPE = TX_TYPE_4844

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: bytes
    value: int
    data: bytes
    access_list: AccessList
    max_fee_per_blob_gas: int
    blob_versioned_hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_fee_market(self)
        _check_uint("max_fee_per_blob_gas", self.max_fee_per_blob_gas, _U256_LIMIT, "2**256")
        hashes = self.blob_versioned_hashes
        if type(hashes) is not tuple or not 1 <= len(hashes) <= MAX_BLOBS_PER_TX:
            raise InvalidTransaction(f"blob_versioned_hashes must be a tuple of 1 to {MAX_BLOBS_PER_TX} hashes")
        for index, versioned in enumerate(hashes):
            if type(versioned) is not bytes or len(versioned) != 32 or versioned[0] != VERSIONED_HASH_VERSION_KZG:
                raise InvalidTransaction(f"blob_versioned_hashes[{index}] must be 32 bytes starting with 0x01")


@dataclass(frozen=True, slots=True)
class SetCodeTransaction:
    """
    EIP-7702 transaction: an EIP-1559 transaction whose authorization list sets the code of
    each authority to a delegation before the call runs.
    """

    TYPE = TX_TYPE_7702

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: bytes
    value: int
    data: bytes
    access_list: AccessList
    authorization_list: tuple[SignedAuthorization, ...]

    def __post_init__(self) -> None:
        _check_fee_market(self)
        if type(self.authorization_list) is not tuple or not self.authorization_list:
            raise InvalidTransaction("authorization_list must be a non-empty tuple (EIP-7702)")
        for entry in self.authorization_list:
            if type(entry) is not SignedAuthorization:
                raise InvalidTransaction("authorization_list entries must be SignedAuthorization")


Transaction = Union[LegacyTransaction, AccessListTransaction, FeeMarketTransaction, BlobTransaction, SetCodeTransaction]


@dataclass(frozen=True, slots=True)
class SignedTx:
    """
    A signed transaction ready to broadcast. ``v`` is the EIP-155 ``v`` for
    legacy transactions and the y-parity (0 or 1) for typed ones.
    """

    raw: bytes
    tx_hash: bytes
    sender: bytes
    v: int
    r: int
    s: int
