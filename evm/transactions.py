"""
Transactions are atomic units of work created externally to Ethereum and
submitted to be executed. If Ethereum is viewed as a state machine,
transactions are the events that move between states.

A transaction carries no ``from`` field: the sender is whoever produced the
secp256k1 signature over the transaction's *signing hash*, recovered from
``(v, r, s)``. Each transaction type below therefore has three
representations:

* the unsigned fields (the frozen dataclasses in this module, in wire order),
* the signing hash, whose preimage binds the chain id so a signature cannot
  be replayed on another chain (EIP-155 for legacy, in-payload for typed),
* the signed serialization broadcast to the network: ``RLP([...fields, v, r,
  s])`` for legacy transactions and ``type_byte || RLP([...fields, y_parity,
  r, s])`` for EIP-2718 typed transactions.

This module is the custody signer's core. Everything money-like is an exact
``int``; anything that is not exactly an ``int`` (including ``bool`` and
``float``) is rejected rather than coerced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import rlp
from coincurve import PublicKey
from eth_utils import to_checksum_address

from evm._checks import check_uint
from evm._crypto import InvalidKey, address_of, keccak, sign_hash
from evm._rlp import encode_access_list, encode_bytes, encode_list, encode_uint
from evm.authorizations import InvalidAuthorization, SignedAuthorization, encode_authorization_list
from evm.blobs import MAX_BLOBS_PER_TX, VERSIONED_HASH_VERSION_KZG
from evm.constants import NONCE_LIMIT, SECP256K1N, SECP256K1N_HALF

__all__ = [
    "AccessList",
    "AccessListTransaction",
    "BlobTransaction",
    "SetCodeTransaction",
    "FeeMarketTransaction",
    "InvalidKey",
    "InvalidTransaction",
    "LegacyTransaction",
    "SignedTx",
    "Transaction",
    "address_of",
    "checksum",
    "check_nonce",
    "decode_signed",
    "payload_1559",
    "payload_2930",
    "payload_4844",
    "payload_7702",
    "payload_legacy",
    "recover_sender",
    "sign_transaction",
    "signing_hash_155",
    "signing_hash_1559",
    "signing_hash_2930",
    "signing_hash_4844",
    "signing_hash_7702",
    "signing_hash_pre155",
]


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


def _check_fee_market(tx) -> None:
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


# ---------------------------------------------------------------------------
# Payloads: the RLP-encoded fields of each type, in wire order. Each is used by
# its signing hash (and so by signing and by recovery) and by the serialization.
# ---------------------------------------------------------------------------


def payload_legacy(tx: LegacyTransaction) -> bytes:
    return b"".join(
        (
            encode_uint(tx.nonce),
            encode_uint(tx.gas_price),
            encode_uint(tx.gas),
            encode_bytes(tx.to),
            encode_uint(tx.value),
            encode_bytes(tx.data),
        )
    )


def payload_2930(tx: AccessListTransaction) -> bytes:
    return b"".join(
        (
            encode_uint(tx.chain_id),
            encode_uint(tx.nonce),
            encode_uint(tx.gas_price),
            encode_uint(tx.gas),
            encode_bytes(tx.to),
            encode_uint(tx.value),
            encode_bytes(tx.data),
            encode_access_list(tx.access_list),
        )
    )


def payload_1559(tx: FeeMarketTransaction) -> bytes:
    return b"".join(
        (
            encode_uint(tx.chain_id),
            encode_uint(tx.nonce),
            encode_uint(tx.max_priority_fee_per_gas),
            encode_uint(tx.max_fee_per_gas),
            encode_uint(tx.gas),
            encode_bytes(tx.to),
            encode_uint(tx.value),
            encode_bytes(tx.data),
            encode_access_list(tx.access_list),
        )
    )


def payload_4844(tx: BlobTransaction) -> bytes:
    return b"".join(
        (
            payload_1559(tx),
            encode_uint(tx.max_fee_per_blob_gas),
            encode_list(b"".join(b"\xa0" + h for h in tx.blob_versioned_hashes)),
        )
    )


def payload_7702(tx: SetCodeTransaction) -> bytes:
    return payload_1559(tx) + encode_authorization_list(tx.authorization_list)


# ---------------------------------------------------------------------------
# Signing hashes. ``payload`` lets ``sign_transaction`` pass the fields it has
# already encoded for the serialization; recovery leaves it out.
# ---------------------------------------------------------------------------


def signing_hash_pre155(tx: LegacyTransaction, payload: bytes | None = None) -> bytes:
    """
    Hash signed by a legacy transaction without replay protection
    (``v`` in {27, 28}). The signer never produces these; it exists so such
    transactions can still be decoded and attributed.
    """
    return keccak(encode_list(payload_legacy(tx) if payload is None else payload))


def signing_hash_155(tx: LegacyTransaction, chain_id: int, payload: bytes | None = None) -> bytes:
    """
    EIP-155 signing hash: the six legacy fields followed by
    ``chain_id, 0, 0``, which ties the signature to one chain.
    """
    _check_chain_id("chain_id", chain_id)
    fields = payload_legacy(tx) if payload is None else payload
    return keccak(encode_list(fields + encode_uint(chain_id) + b"\x80\x80"))


def signing_hash_2930(tx: AccessListTransaction, payload: bytes | None = None) -> bytes:
    """EIP-2930 signing hash: ``keccak(0x01 || RLP(fields))``."""
    return keccak(b"\x01" + encode_list(payload_2930(tx) if payload is None else payload))


def signing_hash_1559(tx: FeeMarketTransaction, payload: bytes | None = None) -> bytes:
    """EIP-1559 signing hash: ``keccak(0x02 || RLP(fields))``."""
    return keccak(b"\x02" + encode_list(payload_1559(tx) if payload is None else payload))


def signing_hash_4844(tx: BlobTransaction, payload: bytes | None = None) -> bytes:
    """EIP-4844 signing hash: ``keccak(0x03 || RLP(fields))``."""
    return keccak(b"\x03" + encode_list(payload_4844(tx) if payload is None else payload))


def signing_hash_7702(tx: SetCodeTransaction, payload: bytes | None = None) -> bytes:
    """EIP-7702 signing hash: ``keccak(0x04 || RLP(fields))``."""
    return keccak(b"\x04" + encode_list(payload_7702(tx) if payload is None else payload))


# ---------------------------------------------------------------------------
# Signing
# ---------------------------------------------------------------------------


def checksum(address: bytes) -> str:
    """EIP-55 mixed-case hex form of a 20-byte address."""
    if type(address) is not bytes or len(address) != 20:
        raise ValueError("address must be 20 bytes")
    return to_checksum_address(address)


def _same_chain(tx, chain_id: int) -> None:
    # A typed transaction carries its own chain id; disagreeing with the
    # caller means one of them is pointed at the wrong network.
    if tx.chain_id != chain_id:
        raise InvalidTransaction(f"chain_id mismatch: transaction is for {tx.chain_id}, signer is for {chain_id}")


def sign_transaction(
    tx: Transaction, private_key: bytearray | bytes, chain_id: int, sender: bytes | None = None
) -> SignedTx:
    """
    Sign ``tx`` for ``chain_id`` and return its broadcastable serialization.

    The caller owns ``private_key`` and is responsible for wiping it (a
    ``bytearray`` can be zeroed in place; ``bytes`` cannot). Nothing derived
    from the key outlives this call except the public address.

    ``sender`` is the address the caller already derived from this very key
    (the signer caches it per key version): deriving the public key again
    costs as much as the signature itself. Without it, it is derived here.
    """
    _check_chain_id("chain_id", chain_id)
    tx_class = type(tx)
    if tx_class is FeeMarketTransaction:
        _same_chain(tx, chain_id)
        payload, prefix = payload_1559(tx), b"\x02"
        msg_hash = signing_hash_1559(tx, payload)
    elif tx_class is AccessListTransaction:
        _same_chain(tx, chain_id)
        payload, prefix = payload_2930(tx), b"\x01"
        msg_hash = signing_hash_2930(tx, payload)
    elif tx_class is BlobTransaction:
        _same_chain(tx, chain_id)
        payload, prefix = payload_4844(tx), b"\x03"
        msg_hash = signing_hash_4844(tx, payload)
    elif tx_class is SetCodeTransaction:
        _same_chain(tx, chain_id)
        payload, prefix = payload_7702(tx), b"\x04"
        msg_hash = signing_hash_7702(tx, payload)
    elif tx_class is LegacyTransaction:
        payload, prefix = payload_legacy(tx), b""
        msg_hash = signing_hash_155(tx, chain_id, payload)
    else:
        raise InvalidTransaction(f"unsupported transaction type {tx_class.__name__}")

    if sender is None:
        sender = address_of(private_key)
    recovery_id, r, s = sign_hash(msg_hash, private_key)
    # Typed transactions carry the y-parity; legacy ones EIP-155's v.
    v = recovery_id if prefix else recovery_id + 35 + 2 * chain_id
    raw = prefix + encode_list(payload + encode_uint(v) + encode_uint(r) + encode_uint(s))
    return SignedTx(raw=raw, tx_hash=keccak(raw), sender=sender, v=v, r=r, s=s)


# ---------------------------------------------------------------------------
# Decoding and recovery
# ---------------------------------------------------------------------------


def _decode_uint(name: str, item: object) -> int:
    if type(item) is not bytes:
        raise InvalidTransaction(f"{name} must be an RLP string")
    # A leading zero byte means two encodings of the same value, which would
    # give the same transaction two hashes.
    if item[:1] == b"\x00":
        raise InvalidTransaction(f"{name} is not a canonical integer")
    if len(item) > 32:
        raise InvalidTransaction(f"{name} must be < 2**256")
    return int.from_bytes(item, "big")


def _decode_bytes(name: str, item: object) -> bytes:
    if type(item) is not bytes:
        raise InvalidTransaction(f"{name} must be an RLP string")
    return item


def _decode_access_list(item: object) -> AccessList:
    if type(item) is not list:
        raise InvalidTransaction("access_list must be an RLP list")
    entries = []
    for entry in item:
        if type(entry) is not list or len(entry) != 2:
            raise InvalidTransaction("access_list entries must be [address, storage_keys]")
        address = _decode_bytes("access_list address", entry[0])
        keys = entry[1]
        if type(keys) is not list:
            raise InvalidTransaction("access_list storage_keys must be an RLP list")
        entries.append((address, tuple(_decode_bytes("access_list storage key", k) for k in keys)))
    return tuple(entries)


def _decode_authorization_list(item: object) -> tuple[SignedAuthorization, ...]:
    if type(item) is not list:
        raise InvalidTransaction("authorization_list must be an RLP list")
    entries = []
    for entry in item:
        if type(entry) is not list or len(entry) != 6:
            raise InvalidTransaction("authorization_list entries must be [chain_id, address, nonce, y_parity, r, s]")
        try:
            entries.append(
                SignedAuthorization(
                    _decode_uint("authorization chain_id", entry[0]),
                    _decode_bytes("authorization address", entry[1]),
                    *(
                        _decode_uint(name, value)
                        for name, value in zip(("authorization nonce", "y_parity", "r", "s"), entry[2:])
                    ),
                )
            )
        except InvalidAuthorization as exc:
            raise InvalidTransaction(f"authorization_list: {exc}") from None
    return tuple(entries)


def _decode_rlp_list(payload: bytes, field_count: int, kind: str) -> list:
    try:
        items = rlp.decode(payload, strict=True)
    except rlp.exceptions.DecodingError as exc:
        raise InvalidTransaction(f"malformed RLP: {exc}") from None
    if type(items) is not list or len(items) != field_count:
        raise InvalidTransaction(f"{kind} transaction must be an RLP list of {field_count} items")
    return items


def _is_network_form(raw: bytes) -> bool:
    # EIP-4844's [tx_payload_body, blobs, commitments, proofs] or EIP-7594's
    # [tx_payload_body, wrapper_version, blobs, commitments, cell_proofs]: a list whose first
    # item is the signed transaction's own list.
    try:
        items = rlp.decode(raw[1:], strict=True)
    except rlp.exceptions.DecodingError:
        return False
    return type(items) is list and len(items) in (4, 5) and type(items[0]) is list


def _check_rs(r: int, s: int) -> None:
    if not 0 < r < SECP256K1N:
        raise InvalidTransaction("bad r")
    # EIP-2: (r, n - s) is an equally valid signature of the same hash, so
    # accepting high s would let anyone mint a second hash for one payment.
    if not 0 < s <= SECP256K1N_HALF:
        raise InvalidTransaction("bad s")


def decode_signed(raw: bytes) -> tuple[Transaction, int, int, int]:
    """
    Decode a signed serialization into ``(tx, v, r, s)``.

    For legacy transactions ``v`` is returned as found on the wire
    (27/28, or ``35 + 2 * chain_id + parity``); for typed transactions it is
    the y-parity. A blob transaction (type 3) is taken in its canonical form, the one its hash
    and signature cover, not in the network form that carries its blobs (``blobs.network_encoding``).
    """
    if type(raw) is not bytes or not raw:
        raise InvalidTransaction("raw transaction must be non-empty bytes")
    first = raw[0]
    if first >= 0xC0:
        items = _decode_rlp_list(raw, 9, "legacy")
        tx = LegacyTransaction(
            nonce=_decode_uint("nonce", items[0]),
            gas_price=_decode_uint("gas_price", items[1]),
            gas=_decode_uint("gas", items[2]),
            to=_decode_bytes("to", items[3]),
            value=_decode_uint("value", items[4]),
            data=_decode_bytes("data", items[5]),
        )
        v = _decode_uint("v", items[6])
        if v not in (27, 28) and not (37 <= v < 35 + 2 * _U64_LIMIT):
            raise InvalidTransaction("bad v")
    elif first == TX_TYPE_2930:
        items = _decode_rlp_list(raw[1:], 11, "EIP-2930")
        tx = AccessListTransaction(
            chain_id=_decode_uint("chain_id", items[0]),
            nonce=_decode_uint("nonce", items[1]),
            gas_price=_decode_uint("gas_price", items[2]),
            gas=_decode_uint("gas", items[3]),
            to=_decode_bytes("to", items[4]),
            value=_decode_uint("value", items[5]),
            data=_decode_bytes("data", items[6]),
            access_list=_decode_access_list(items[7]),
        )
        v = _decode_uint("y_parity", items[8])
        if v not in (0, 1):
            raise InvalidTransaction("bad v")
    elif first == TX_TYPE_1559:
        items = _decode_rlp_list(raw[1:], 12, "EIP-1559")
        tx = FeeMarketTransaction(
            chain_id=_decode_uint("chain_id", items[0]),
            nonce=_decode_uint("nonce", items[1]),
            max_priority_fee_per_gas=_decode_uint("max_priority_fee_per_gas", items[2]),
            max_fee_per_gas=_decode_uint("max_fee_per_gas", items[3]),
            gas=_decode_uint("gas", items[4]),
            to=_decode_bytes("to", items[5]),
            value=_decode_uint("value", items[6]),
            data=_decode_bytes("data", items[7]),
            access_list=_decode_access_list(items[8]),
        )
        v = _decode_uint("y_parity", items[9])
        if v not in (0, 1):
            raise InvalidTransaction("bad v")
    elif first in (TX_TYPE_4844, TX_TYPE_7702):
        count, kind = (14, "EIP-4844") if first == TX_TYPE_4844 else (13, "EIP-7702")
        try:
            items = _decode_rlp_list(raw[1:], count, kind)
        except InvalidTransaction:
            if first == TX_TYPE_4844 and _is_network_form(raw):
                raise InvalidTransaction(
                    "this is a blob transaction's network form (with its blobs and proofs); only the signed "
                    "transaction inside it, 0x03 || rlp(tx_payload_body), is decoded here"
                ) from None
            raise
        fields = dict(
            chain_id=_decode_uint("chain_id", items[0]),
            nonce=_decode_uint("nonce", items[1]),
            max_priority_fee_per_gas=_decode_uint("max_priority_fee_per_gas", items[2]),
            max_fee_per_gas=_decode_uint("max_fee_per_gas", items[3]),
            gas=_decode_uint("gas", items[4]),
            to=_decode_bytes("to", items[5]),
            value=_decode_uint("value", items[6]),
            data=_decode_bytes("data", items[7]),
            access_list=_decode_access_list(items[8]),
        )
        if first == TX_TYPE_4844:
            hashes = items[10]
            if type(hashes) is not list:
                raise InvalidTransaction("blob_versioned_hashes must be an RLP list")
            tx = BlobTransaction(
                **fields,
                max_fee_per_blob_gas=_decode_uint("max_fee_per_blob_gas", items[9]),
                blob_versioned_hashes=tuple(_decode_bytes("blob hash", h) for h in hashes),
            )
        else:
            tx = SetCodeTransaction(**fields, authorization_list=_decode_authorization_list(items[9]))
        v = _decode_uint("y_parity", items[-3])
        if v not in (0, 1):
            raise InvalidTransaction("bad v")
    else:
        raise InvalidTransaction(f"unsupported transaction type 0x{first:02x}")

    r = _decode_uint("r", items[-2])
    s = _decode_uint("s", items[-1])
    _check_rs(r, s)
    return tx, v, r, s


def recover_sender(raw: bytes) -> bytes:
    """The 20-byte address that signed the serialized transaction ``raw``."""
    tx, v, r, s = decode_signed(raw)
    if type(tx) is LegacyTransaction:
        if v in (27, 28):
            recovery_id = v - 27
            msg_hash = signing_hash_pre155(tx)
        else:
            chain_id, recovery_id = divmod(v - 35, 2)
            msg_hash = signing_hash_155(tx, chain_id)
    else:
        recovery_id = v
        msg_hash = {
            AccessListTransaction: signing_hash_2930,
            FeeMarketTransaction: signing_hash_1559,
            BlobTransaction: signing_hash_4844,
            SetCodeTransaction: signing_hash_7702,
        }[type(tx)](tx)

    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((recovery_id,))
    try:
        public_key = PublicKey.from_signature_and_message(signature, msg_hash, hasher=None)
    except ValueError:
        raise InvalidTransaction("signature does not recover to a public key") from None
    return keccak(public_key.format(compressed=False)[1:])[12:]
