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

# The public coincurve API (``PrivateKey(secret).sign_recoverable``) derives
# an x-only (BIP-340) public key on construction that Ethereum never uses: a
# wasted point multiplication costing a third of a signature. Calling the
# libsecp256k1 functions coincurve binds avoids it, and lets us sign straight
# out of the caller's buffer instead of copying the key into ``bytes``.
# ``tests/test_transactions.py`` pins the results against the public API.
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from eth_hash.auto import keccak as _eth_hash_keccak
from eth_utils import to_checksum_address

__all__ = [
    "AccessList",
    "AccessListTransaction",
    "FeeMarketTransaction",
    "InvalidKey",
    "InvalidTransaction",
    "LegacyTransaction",
    "SignedTx",
    "Transaction",
    "address_of",
    "checksum",
    "decode_signed",
    "recover_sender",
    "sign_transaction",
    "signing_hash_155",
    "signing_hash_1559",
    "signing_hash_2930",
    "signing_hash_pre155",
]

SECP256K1N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1N // 2

_U64_LIMIT = 2**64
_U256_LIMIT = 2**256

TX_TYPE_2930 = 0x01
TX_TYPE_1559 = 0x02

AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]


def _make_keccak():
    """
    Build keccak-256 on pycryptodome's C sponge, reusing one sponge per
    thread.

    ``eth_hash``'s pycryptodome backend allocates a hash object and a
    destructor wrapper per call, which costs twice the hashing itself; a
    signature needs three hashes, so this saves about a sixth of the signing
    time. The reused sponge is per thread because cffi releases the GIL
    during each call. Any surprise in pycryptodome's internals falls back to
    ``eth_hash``; the tests compare both on inputs around the sponge rate.
    """
    try:
        import threading

        from Crypto.Hash.keccak import _raw_keccak_lib as raw
        from Crypto.Util import _raw_api

        if _raw_api.backend != "cffi":
            return _eth_hash_keccak
        kffi = _raw_api.ffi
        local = threading.local()

        def new_sponge():
            handle = kffi.new("void **")
            # capacity 64 bytes, 24 rounds: Keccak-256.
            if raw.keccak_init(handle, 64, 24):
                raise MemoryError("keccak_init failed")
            sponge = kffi.gc(handle[0], raw.keccak_destroy)
            local.sponge = sponge
            local.out = kffi.new("uint8_t[32]")
            return sponge

        absorb, digest, reset = raw.keccak_absorb, raw.keccak_digest, raw.keccak_reset
        buffer = kffi.buffer

        def keccak(data: bytes) -> bytes:
            try:
                sponge = local.sponge
            except AttributeError:
                sponge = new_sponge()
            out = local.out
            # A failed call would leave the previous digest in ``out``; a
            # stale hash must never be signed.
            # 0x01 is Keccak's original domain padding (SHA3 uses 0x06).
            if (
                reset(sponge)
                or absorb(sponge, data, len(data))
                or digest(sponge, out, 32, 0x01)
            ):
                raise RuntimeError("keccak-256 failed")
            return buffer(out)[:]

        if keccak(b"") != _eth_hash_keccak(b""):
            return _eth_hash_keccak
        return keccak
    except (ImportError, AttributeError, TypeError, MemoryError):
        return _eth_hash_keccak


keccak = _make_keccak()


class InvalidTransaction(ValueError):
    """A transaction (or a signed serialization of one) is not acceptable."""


class InvalidKey(ValueError):
    """A private key is not a valid secp256k1 secret. Never carries the key."""


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _check_uint(name: str, value: object, limit: int, limit_text: str) -> None:
    # ``type(...) is int`` rather than isinstance: ``True`` is an int to
    # Python but never a deliberate nonce or amount, and int subclasses may
    # override arithmetic or formatting.
    if type(value) is not int:
        raise InvalidTransaction(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise InvalidTransaction(f"{name} must be >= 0")
    if value >= limit:
        raise InvalidTransaction(f"{name} must be < {limit_text}")


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
        raise InvalidTransaction(
            f"to must be 20 bytes (or empty for contract creation), got {len(to)}"
        )


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
            raise InvalidTransaction(
                "access_list entries must be (address, storage_keys) tuples"
            )
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
        _check_uint("nonce", self.nonce, _U64_LIMIT, "2**64")
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
        _check_uint("nonce", self.nonce, _U64_LIMIT, "2**64")
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
        _check_uint("nonce", self.nonce, _U64_LIMIT, "2**64")
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
            raise InvalidTransaction(
                "max_priority_fee_per_gas must be <= max_fee_per_gas"
            )
        _check_uint("gas", self.gas, _U64_LIMIT, "2**64")
        _check_to(self.to)
        _check_uint("value", self.value, _U256_LIMIT, "2**256")
        _check_data(self.data)
        _check_access_list(self.access_list)


Transaction = Union[LegacyTransaction, AccessListTransaction, FeeMarketTransaction]


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
# RLP encoding
# ---------------------------------------------------------------------------
#
# A hand-rolled encoder for the handful of shapes a transaction has: pyrlp's
# generic ``rlp.encode`` infers a sedes for every item and costs more than the
# secp256k1 signature itself. Each field is encoded once and the encoded body
# is shared between the signing payload and the signed serialization.
# ``tests/test_transactions.py`` checks it against ``rlp.encode``.


def _encode_length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes((offset + length,))
    length_bytes = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(length_bytes),)) + length_bytes


def _encode_uint(value: int) -> bytes:
    if value == 0:
        return b"\x80"
    if value < 0x80:
        return bytes((value,))
    # Every integer field is < 2**256, so its length always fits the
    # short-string form.
    length = (value.bit_length() + 7) // 8
    return bytes((0x80 + length,)) + value.to_bytes(length, "big")


def _encode_bytes(value: bytes) -> bytes:
    length = len(value)
    if length == 1 and value[0] < 0x80:
        return value
    if length < 56:
        return bytes((0x80 + length,)) + value
    return _encode_length(length, 0x80) + value


def _encode_list(payload: bytes) -> bytes:
    return _encode_length(len(payload), 0xC0) + payload


def _encode_access_list(access_list: AccessList) -> bytes:
    if not access_list:
        return b"\xc0"
    entries = []
    for address, keys in access_list:
        # Storage keys are always 32 bytes: 0xa0 prefix.
        encoded_keys = b"".join([b"\xa0" + key for key in keys])
        entries.append(_encode_list(b"\x94" + address + _encode_list(encoded_keys)))
    return _encode_list(b"".join(entries))


def _body_legacy(tx: LegacyTransaction) -> bytes:
    return b"".join(
        (
            _encode_uint(tx.nonce),
            _encode_uint(tx.gas_price),
            _encode_uint(tx.gas),
            _encode_bytes(tx.to),
            _encode_uint(tx.value),
            _encode_bytes(tx.data),
        )
    )


def _body_2930(tx: AccessListTransaction) -> bytes:
    return b"".join(
        (
            _encode_uint(tx.chain_id),
            _encode_uint(tx.nonce),
            _encode_uint(tx.gas_price),
            _encode_uint(tx.gas),
            _encode_bytes(tx.to),
            _encode_uint(tx.value),
            _encode_bytes(tx.data),
            _encode_access_list(tx.access_list),
        )
    )


def _body_1559(tx: FeeMarketTransaction) -> bytes:
    return b"".join(
        (
            _encode_uint(tx.chain_id),
            _encode_uint(tx.nonce),
            _encode_uint(tx.max_priority_fee_per_gas),
            _encode_uint(tx.max_fee_per_gas),
            _encode_uint(tx.gas),
            _encode_bytes(tx.to),
            _encode_uint(tx.value),
            _encode_bytes(tx.data),
            _encode_access_list(tx.access_list),
        )
    )


def _signature_fields(v: int, r: int, s: int) -> bytes:
    return _encode_uint(v) + _encode_uint(r) + _encode_uint(s)


# ---------------------------------------------------------------------------
# Signing hashes
# ---------------------------------------------------------------------------


def signing_hash_pre155(tx: LegacyTransaction) -> bytes:
    """
    Hash signed by a legacy transaction without replay protection
    (``v`` in {27, 28}). The signer never produces these; it exists so such
    transactions can still be decoded and attributed.
    """
    return keccak(_encode_list(_body_legacy(tx)))


def signing_hash_155(tx: LegacyTransaction, chain_id: int) -> bytes:
    """
    EIP-155 signing hash: the six legacy fields followed by
    ``chain_id, 0, 0``, which ties the signature to one chain.
    """
    _check_chain_id("chain_id", chain_id)
    return keccak(_encode_list(_body_legacy(tx) + _encode_uint(chain_id) + b"\x80\x80"))


def signing_hash_2930(tx: AccessListTransaction) -> bytes:
    """EIP-2930 signing hash: ``keccak(0x01 || RLP(fields))``."""
    return keccak(b"\x01" + _encode_list(_body_2930(tx)))


def signing_hash_1559(tx: FeeMarketTransaction) -> bytes:
    """EIP-1559 signing hash: ``keccak(0x02 || RLP(fields))``."""
    return keccak(b"\x02" + _encode_list(_body_1559(tx)))


# ---------------------------------------------------------------------------
# Keys and signatures
# ---------------------------------------------------------------------------

_CTX = GLOBAL_CONTEXT.ctx
_UNCOMPRESSED = lib.SECP256K1_EC_UNCOMPRESSED


def _secret_pointer(private_key: bytearray | bytes):
    # libsecp256k1 reads exactly 32 bytes from the pointer it is given, so
    # the length check is what keeps a short key from becoming an
    # out-of-bounds read.
    if type(private_key) not in (bytearray, bytes) or len(private_key) != 32:
        raise InvalidKey("private key must be 32 bytes")
    # ``from_buffer`` points into the caller's buffer instead of copying it,
    # so no unwipeable ``bytes`` copy of the key is created here. Callers
    # must ``ffi.release`` it: while the export is alive the caller's
    # bytearray cannot be resized, e.g. cleared in an exception handler.
    return ffi.from_buffer(private_key)


def _address_from_secret(secret) -> bytes:
    pubkey = ffi.new("secp256k1_pubkey *")
    # Also the key-range check: fails for 0 and for anything >= n.
    if not lib.secp256k1_ec_pubkey_create(_CTX, pubkey, secret):
        raise InvalidKey("private key is not a valid secp256k1 secret")
    out = ffi.new("unsigned char[65]")
    out_len = ffi.new("size_t *", 65)
    lib.secp256k1_ec_pubkey_serialize(_CTX, out, out_len, pubkey, _UNCOMPRESSED)
    # Drop the 0x04 uncompressed-point prefix; the address is the last 20
    # bytes of the hash of X || Y.
    return keccak(ffi.buffer(out, 65)[1:])[12:]


def _sign_hash(msg_hash: bytes, secret) -> tuple[int, int, int]:
    signature = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    # NULL nonce function = RFC 6979 deterministic nonces; libsecp256k1
    # always emits low-s signatures, as EIP-2 requires.
    if not lib.secp256k1_ecdsa_sign_recoverable(
        _CTX, signature, msg_hash, secret, ffi.NULL, ffi.NULL
    ):
        raise InvalidKey("private key is not a valid secp256k1 secret")
    compact = ffi.new("unsigned char[64]")
    recovery_id = ffi.new("int *")
    lib.secp256k1_ecdsa_recoverable_signature_serialize_compact(
        _CTX, compact, recovery_id, signature
    )
    rs = ffi.buffer(compact, 64)[:]
    return (
        recovery_id[0],
        int.from_bytes(rs[:32], "big"),
        int.from_bytes(rs[32:], "big"),
    )


def address_of(private_key: bytearray | bytes) -> bytes:
    """The 20-byte address controlled by ``private_key``."""
    secret = _secret_pointer(private_key)
    try:
        return _address_from_secret(secret)
    finally:
        ffi.release(secret)


def checksum(address: bytes) -> str:
    """EIP-55 mixed-case hex form of a 20-byte address."""
    if type(address) is not bytes or len(address) != 20:
        raise ValueError("address must be 20 bytes")
    return to_checksum_address(address)


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
        # A typed transaction carries its own chain id; disagreeing with the
        # caller means one of them is pointed at the wrong network.
        if tx.chain_id != chain_id:
            raise InvalidTransaction(
                f"chain_id mismatch: transaction is for {tx.chain_id}, "
                f"signer is for {chain_id}"
            )
        body = _body_1559(tx)
        prefix = b"\x02"
    elif tx_class is AccessListTransaction:
        if tx.chain_id != chain_id:
            raise InvalidTransaction(
                f"chain_id mismatch: transaction is for {tx.chain_id}, "
                f"signer is for {chain_id}"
            )
        body = _body_2930(tx)
        prefix = b"\x01"
    elif tx_class is LegacyTransaction:
        body = _body_legacy(tx)
        prefix = b""
    else:
        raise InvalidTransaction(f"unsupported transaction type {tx_class.__name__}")

    secret = _secret_pointer(private_key)
    try:
        if sender is None:
            sender = _address_from_secret(secret)
        if prefix:
            recovery_id, r, s = _sign_hash(keccak(prefix + _encode_list(body)), secret)
            v = recovery_id
        else:
            msg_hash = keccak(_encode_list(body + _encode_uint(chain_id) + b"\x80\x80"))
            recovery_id, r, s = _sign_hash(msg_hash, secret)
            v = recovery_id + 35 + 2 * chain_id
    finally:
        ffi.release(secret)

    raw = prefix + _encode_list(body + _signature_fields(v, r, s))
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
            raise InvalidTransaction(
                "access_list entries must be [address, storage_keys]"
            )
        address = _decode_bytes("access_list address", entry[0])
        keys = entry[1]
        if type(keys) is not list:
            raise InvalidTransaction("access_list storage_keys must be an RLP list")
        entries.append(
            (address, tuple(_decode_bytes("access_list storage key", k) for k in keys))
        )
    return tuple(entries)


def _decode_rlp_list(payload: bytes, field_count: int, kind: str) -> list:
    try:
        items = rlp.decode(payload, strict=True)
    except rlp.exceptions.DecodingError as exc:
        raise InvalidTransaction(f"malformed RLP: {exc}") from None
    if type(items) is not list or len(items) != field_count:
        raise InvalidTransaction(f"{kind} transaction must be an RLP list of {field_count} items")
    return items


def _check_rs(r: int, s: int) -> None:
    if not 0 < r < SECP256K1N:
        raise InvalidTransaction("bad r")
    # EIP-2: (r, n - s) is an equally valid signature of the same hash, so
    # accepting high s would let anyone mint a second hash for one payment.
    if not 0 < s <= _HALF_N:
        raise InvalidTransaction("bad s")


def decode_signed(raw: bytes) -> tuple[Transaction, int, int, int]:
    """
    Decode a signed serialization into ``(tx, v, r, s)``.

    For legacy transactions ``v`` is returned as found on the wire
    (27/28, or ``35 + 2 * chain_id + parity``); for typed transactions it is
    the y-parity.
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
    elif type(tx) is AccessListTransaction:
        recovery_id = v
        msg_hash = signing_hash_2930(tx)
    else:
        recovery_id = v
        msg_hash = signing_hash_1559(tx)

    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((recovery_id,))
    try:
        public_key = PublicKey.from_signature_and_message(signature, msg_hash, hasher=None)
    except ValueError:
        raise InvalidTransaction("signature does not recover to a public key") from None
    return keccak(public_key.format(compressed=False)[1:])[12:]
