"""Decoding a signed serialization back into its transaction and signature, with every field's
encoding checked (canonical integers, EIP-2 low s), and recovering the sender from the same
``signing_hash_<eip>`` that signing used.
"""

from __future__ import annotations

import rlp
from coincurve import PublicKey

from evm._crypto import keccak
from evm.authorizations import InvalidAuthorization, SignedAuthorization
from evm.constants import SECP256K1N, SECP256K1N_HALF
from evm.transactions.signing import (
    signing_hash_155,
    signing_hash_1559,
    signing_hash_2930,
    signing_hash_4844,
    signing_hash_7702,
    signing_hash_pre155,
)
from evm.transactions.types import (
    _U64_LIMIT,
    TX_TYPE_1559,
    TX_TYPE_2930,
    TX_TYPE_4844,
    TX_TYPE_7702,
    AccessList,
    AccessListTransaction,
    BlobTransaction,
    FeeMarketFields,
    FeeMarketTransaction,
    InvalidTransaction,
    LegacyTransaction,
    SetCodeTransaction,
    Transaction,
)

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
                        for name, value in zip(("authorization nonce", "y_parity", "r", "s"), entry[2:], strict=True)
                    ),
                )
            )
        except InvalidAuthorization as exc:
            raise InvalidTransaction(f"authorization_list: {exc}") from None
    return tuple(entries)


def _decode_rlp_list(payload: bytes, field_count: int, kind: str) -> list[object]:
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


def _decode_y_parity(item: object) -> int:
    """A typed transaction's v: its y-parity, 0 or 1."""
    v = _decode_uint("y_parity", item)
    if v not in (0, 1):
        raise InvalidTransaction("bad v")
    return v


def _decode_legacy(raw: bytes) -> tuple[LegacyTransaction, int, list[object]]:
    """A legacy transaction, its v as found on the wire, and its RLP items (r and s are the last two)."""
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
    return tx, v, items


def _decode_2930(payload: bytes) -> tuple[AccessListTransaction, int, list[object]]:
    """An EIP-2930 transaction (``payload``: after its type byte), its y-parity and its RLP items."""
    items = _decode_rlp_list(payload, 11, "EIP-2930")
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
    return tx, _decode_y_parity(items[8]), items


def _decode_fee_market_fields(items: list[object]) -> FeeMarketFields:
    """The first nine items of an EIP-1559, blob or set-code transaction, which all three share."""
    return FeeMarketFields(
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


def _decode_1559(payload: bytes) -> tuple[FeeMarketTransaction, int, list[object]]:
    """An EIP-1559 transaction (``payload``: after its type byte), its y-parity and its RLP items."""
    items = _decode_rlp_list(payload, 12, "EIP-1559")
    tx = FeeMarketTransaction(**_decode_fee_market_fields(items))
    return tx, _decode_y_parity(items[9]), items


def _decode_blob_or_set_code(raw: bytes) -> tuple[BlobTransaction | SetCodeTransaction, int, list[object]]:
    """A blob (type 3) or set-code (type 4) transaction, its y-parity and its RLP items; a blob
    transaction's network form is refused by name, so the caller learns which form to send."""
    first = raw[0]
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
    fields = _decode_fee_market_fields(items)
    tx: BlobTransaction | SetCodeTransaction
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
    return tx, _decode_y_parity(items[-3]), items


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
    tx: Transaction
    items: list[object]
    if first >= 0xC0:
        tx, v, items = _decode_legacy(raw)
    elif first == TX_TYPE_2930:
        tx, v, items = _decode_2930(raw[1:])
    elif first == TX_TYPE_1559:
        tx, v, items = _decode_1559(raw[1:])
    elif first in (TX_TYPE_4844, TX_TYPE_7702):
        tx, v, items = _decode_blob_or_set_code(raw)
    else:
        raise InvalidTransaction(f"unsupported transaction type 0x{first:02x}")

    # Every form ends with its signature's r and s.
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
        if type(tx) is AccessListTransaction:
            msg_hash = signing_hash_2930(tx)
        elif type(tx) is FeeMarketTransaction:
            msg_hash = signing_hash_1559(tx)
        elif type(tx) is BlobTransaction:
            msg_hash = signing_hash_4844(tx)
        elif type(tx) is SetCodeTransaction:
            msg_hash = signing_hash_7702(tx)
        else:  # decode_signed makes only the five types
            raise InvalidTransaction(f"unsupported transaction type {type(tx).__name__}")

    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((recovery_id,))
    try:
        public_key = PublicKey.from_signature_and_message(signature, msg_hash, hasher=None)
    except ValueError:
        raise InvalidTransaction("signature does not recover to a public key") from None
    return keccak(public_key.format(compressed=False)[1:])[12:]
