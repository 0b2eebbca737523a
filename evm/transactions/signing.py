"""Encoding and signing: each type's payload (its RLP-encoded fields, in wire order), its
``signing_hash_<eip>`` over that payload, and ``sign_transaction``, which signs the hash and
serializes the same payload with the signature behind the EIP-2718 type byte.
"""

from __future__ import annotations

from eth_utils import to_checksum_address

from evm._crypto import address_of, keccak, sign_hash
from evm._rlp import encode_access_list, encode_bytes, encode_list, encode_uint
from evm.authorizations import encode_authorization_list
from evm.transactions.types import (
    AccessListTransaction,
    BlobTransaction,
    FeeMarketTransaction,
    InvalidTransaction,
    LegacyTransaction,
    SetCodeTransaction,
    SignedTx,
    Transaction,
    _check_chain_id,
)

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


def payload_1559(tx: FeeMarketTransaction | BlobTransaction | SetCodeTransaction) -> bytes:
    # Blob and set-code transactions begin with the same nine fields.
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


def _same_chain(
    tx: AccessListTransaction | FeeMarketTransaction | BlobTransaction | SetCodeTransaction, chain_id: int
) -> None:
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
    # ``type(tx) is`` rather than isinstance: a subclass could override the validation.
    if type(tx) is FeeMarketTransaction:
        _same_chain(tx, chain_id)
        payload, prefix = payload_1559(tx), b"\x02"
        msg_hash = signing_hash_1559(tx, payload)
    elif type(tx) is AccessListTransaction:
        _same_chain(tx, chain_id)
        payload, prefix = payload_2930(tx), b"\x01"
        msg_hash = signing_hash_2930(tx, payload)
    elif type(tx) is BlobTransaction:
        _same_chain(tx, chain_id)
        payload, prefix = payload_4844(tx), b"\x03"
        msg_hash = signing_hash_4844(tx, payload)
    elif type(tx) is SetCodeTransaction:
        _same_chain(tx, chain_id)
        payload, prefix = payload_7702(tx), b"\x04"
        msg_hash = signing_hash_7702(tx, payload)
    elif type(tx) is LegacyTransaction:
        payload, prefix = payload_legacy(tx), b""
        msg_hash = signing_hash_155(tx, chain_id, payload)
    else:
        raise InvalidTransaction(f"unsupported transaction type {type(tx).__name__}")

    if sender is None:
        sender = address_of(private_key)
    recovery_id, r, s = sign_hash(msg_hash, private_key)
    # Typed transactions carry the y-parity; legacy ones EIP-155's v.
    v = recovery_id if prefix else recovery_id + 35 + 2 * chain_id
    raw = prefix + encode_list(payload + encode_uint(v) + encode_uint(r) + encode_uint(s))
    return SignedTx(raw=raw, tx_hash=keccak(raw), sender=sender, v=v, r=r, s=s)
