"""What evm.transactions refuses and checks, as the custody signer relies on: invalid fields, chain
ids, objects and keys, high-s and malformed signatures and input when decoding, and EIP-55
addresses."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import rlp
from eth_account import Account

from evm.constants import SECP256K1N
from evm.transactions import (
    AccessListTransaction,
    FeeMarketTransaction,
    InvalidPrivateKey,
    InvalidTransaction,
    LegacyTransaction,
    address_of,
    checksum,
    decode_signed,
    recover_sender,
    sign_transaction,
)
from tests.evm_support import (
    ALL_CASES,
    EIP155_KEY,
    EIP155_SENDER,
    EIP155_SIGNED,
    EIP155_TX,
    FEE_MARKET_CASES,
    LEGACY_CASES,
    RECIPIENT,
    SLOT,
    USDC,
)


def _legacy(**overrides: Any) -> LegacyTransaction:
    fields: dict[str, Any] = dict(nonce=0, gas_price=1, gas=21000, to=RECIPIENT, value=0, data=b"")
    fields.update(overrides)
    return LegacyTransaction(**fields)


def _fee_market(**overrides: Any) -> FeeMarketTransaction:
    fields: dict[str, Any] = dict(
        chain_id=1,
        nonce=0,
        max_priority_fee_per_gas=1,
        max_fee_per_gas=2,
        gas=21000,
        to=RECIPIENT,
        value=0,
        data=b"",
        access_list=(),
    )
    fields.update(overrides)
    return FeeMarketTransaction(**fields)


def _access_list_tx(**overrides: Any) -> AccessListTransaction:
    fields: dict[str, Any] = dict(
        chain_id=1, nonce=0, gas_price=1, gas=21000, to=RECIPIENT, value=0, data=b"", access_list=()
    )
    fields.update(overrides)
    return AccessListTransaction(**fields)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: _legacy(nonce=-1), "nonce must be >= 0"),
        # EIP-2681: the largest nonce, 2**64 - 1, is reserved; the type refuses it, for every type.
        (lambda: _legacy(nonce=2**64 - 1), "nonce must be < 2**64 - 1 (EIP-2681)"),
        (lambda: _access_list_tx(nonce=2**64 - 1), "nonce must be < 2**64 - 1 (EIP-2681)"),
        (lambda: _fee_market(nonce=2**64 - 1), "nonce must be < 2**64 - 1 (EIP-2681)"),
        (lambda: _legacy(nonce=True), "nonce must be an int, not bool"),
        (lambda: _legacy(value=1.0), "value must be an int, not float"),
        (lambda: _legacy(value=2**256), "value must be < 2**256"),
        (lambda: _legacy(gas_price=-5), "gas_price must be >= 0"),
        (lambda: _legacy(gas=2**64), "gas must be < 2**64"),
        (lambda: _legacy(to=bytes(19)), "to must be 20 bytes"),
        (lambda: _legacy(to=bytes(21)), "to must be 20 bytes"),
        (lambda: _legacy(to="0x" + "35" * 20), "to must be bytes, not str"),
        (lambda: _legacy(data=bytearray(b"\x01")), "data must be bytes, not bytearray"),
        (
            lambda: _fee_market(max_priority_fee_per_gas=3, max_fee_per_gas=2),
            "max_priority_fee_per_gas must be <= max_fee_per_gas",
        ),
        (lambda: _fee_market(chain_id=0), "chain_id must be >= 1"),
        (lambda: _fee_market(chain_id=2**64), "chain_id must be < 2**64"),
        (lambda: _fee_market(access_list=[]), "access_list must be a tuple"),
        (lambda: _fee_market(access_list=((bytes(19), ()),)), "access_list address must be 20 bytes"),
        (lambda: _fee_market(access_list=((USDC, (bytes(31),)),)), "access_list storage key must be 32 bytes"),
        (lambda: _fee_market(access_list=((USDC, [SLOT(1)]),)), "access_list storage_keys must be a tuple"),
        (lambda: _fee_market(access_list=((USDC,),)), "access_list entries must be"),
        (lambda: _access_list_tx(gas_price=-1), "gas_price must be >= 0"),
    ],
)
def test_invalid_fields(build: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidTransaction) as excinfo:
        build()
    assert str(excinfo.value).startswith(message)


def test_chain_id_mismatch() -> None:
    with pytest.raises(InvalidTransaction, match=r"^chain_id mismatch: transaction is for 1, signer is for 5$"):
        sign_transaction(_fee_market(chain_id=1), EIP155_KEY, 5)
    with pytest.raises(InvalidTransaction, match=r"^chain_id mismatch"):
        sign_transaction(_access_list_tx(chain_id=10), EIP155_KEY, 1)


@pytest.mark.parametrize(
    "chain_id, message",
    [
        (0, "chain_id must be >= 1"),
        (-1, "chain_id must be >= 0"),
        (2**64, "chain_id must be < 2**64"),
        (1.0, "chain_id must be an int"),
    ],
)
def test_bad_chain_id_argument(chain_id: Any, message: str) -> None:  # a float among them, on purpose
    with pytest.raises(InvalidTransaction, match="^" + re.escape(message)):
        sign_transaction(EIP155_TX, EIP155_KEY, chain_id)


def test_unsupported_transaction_object() -> None:
    class Sneaky(FeeMarketTransaction):
        __slots__ = ()

    not_a_transaction: Any = {"nonce": 0}
    with pytest.raises(InvalidTransaction, match="unsupported transaction type"):
        sign_transaction(not_a_transaction, EIP155_KEY, 1)
    with pytest.raises(InvalidTransaction, match="unsupported transaction type Sneaky"):
        sign_transaction(
            Sneaky(*[getattr(FEE_MARKET_CASES[0], f) for f in FeeMarketTransaction.__slots__]), EIP155_KEY, 1
        )


@pytest.mark.parametrize(
    "key",
    [
        bytes(31),
        bytes(33),
        bytes(32),
        SECP256K1N.to_bytes(32, "big"),
        b"\xff" * 32,
        "46" * 32,
        5,
    ],
)
def test_invalid_keys(key: Any) -> None:  # not only bytes, on purpose
    with pytest.raises(InvalidPrivateKey) as excinfo:
        sign_transaction(EIP155_TX, key, 1)
    if isinstance(key, bytes) and len(key) == 32:
        assert key.hex() not in str(excinfo.value)
    with pytest.raises(InvalidPrivateKey):
        address_of(key)


# --- decoding ---------------------------------------------------------------


def _reencode(raw: bytes, mutate: Callable[[list[Any]], None]) -> bytes:
    """Decode ``raw``, let ``mutate`` edit the RLP item list, re-serialize."""
    prefix, payload = (b"", raw) if raw[0] >= 0xC0 else (raw[:1], raw[1:])
    items = rlp.decode(payload)
    mutate(items)
    encoded: bytes = rlp.encode(items)
    return prefix + encoded


def _int(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


@pytest.mark.parametrize("tx, chain_id", [ALL_CASES[0], ALL_CASES[len(LEGACY_CASES)], ALL_CASES[-1]])
def test_high_s_rejected(tx: LegacyTransaction | AccessListTransaction | FeeMarketTransaction, chain_id: int) -> None:
    signed = sign_transaction(tx, EIP155_KEY, chain_id)
    # (r, n - s) with the other parity is the malleated twin of a valid
    # signature: it recovers the same sender, so only EIP-2 rejects it.
    high_s = SECP256K1N - signed.s
    if isinstance(tx, LegacyTransaction):
        flipped_v = signed.v + 1 if (signed.v - 35) % 2 == 0 else signed.v - 1
    else:
        flipped_v = signed.v ^ 1

    def mutate(items: list[Any]) -> None:
        items[-3] = _int(flipped_v)
        items[-1] = _int(high_s)

    malleated = _reencode(signed.raw, mutate)
    # Sanity: without the EIP-2 check this would recover the same sender.
    assert checksum(signed.sender) == Account.recover_transaction(malleated)
    with pytest.raises(InvalidTransaction, match="^bad s$"):
        decode_signed(malleated)
    with pytest.raises(InvalidTransaction, match="^bad s$"):
        recover_sender(malleated)


def test_decode_rejects_bad_signature_values() -> None:
    legacy = EIP155_SIGNED
    typed = sign_transaction(FEE_MARKET_CASES[0], EIP155_KEY, 1).raw

    def set_item(index: int, value: bytes) -> Callable[[list[Any]], None]:
        def mutate(items: list[Any]) -> None:
            items[index] = value

        return mutate

    cases = [
        (_reencode(legacy, set_item(6, _int(36))), "bad v"),  # chain id 0
        (_reencode(legacy, set_item(6, _int(29))), "bad v"),
        (_reencode(legacy, set_item(6, b"")), "bad v"),
        (_reencode(typed, set_item(-3, _int(2))), "bad v"),
        (_reencode(typed, set_item(-2, b"")), "bad r"),
        (_reencode(typed, set_item(-2, _int(SECP256K1N))), "bad r"),
        (_reencode(typed, set_item(-1, b"")), "bad s"),
        (_reencode(typed, set_item(-1, _int(SECP256K1N // 2 + 1))), "bad s"),
    ]
    for raw, message in cases:
        with pytest.raises(InvalidTransaction, match="^" + re.escape(message) + "$"):
            decode_signed(raw)


def test_decode_rejects_malformed_input() -> None:
    typed = sign_transaction(FEE_MARKET_CASES[0], EIP155_KEY, 1).raw

    def leading_zero(items: list[Any]) -> None:
        items[1] = b"\x00\x05"

    def drop_field(items: list[Any]) -> None:
        del items[2]

    def to_as_list(items: list[Any]) -> None:
        items[5] = [USDC]

    cases = [
        (b"", "raw transaction must be non-empty bytes"),
        (b"\x05" + typed[1:], "unsupported transaction type 0x05"),
        (typed + b"\x00", "malformed RLP"),
        (typed[:-1], "malformed RLP"),
        (_reencode(typed, leading_zero), "nonce is not a canonical integer"),
        (_reencode(typed, drop_field), "EIP-1559 transaction must be an RLP list of 12 items"),
        (_reencode(typed, to_as_list), "to must be an RLP string"),
        (b"\x01" + typed[1:], "EIP-2930 transaction must be an RLP list of 11 items"),
        (_reencode(EIP155_SIGNED, lambda items: items.__setitem__(3, bytes(19))), "to must be 20 bytes"),
    ]
    for raw, message in cases:
        with pytest.raises(InvalidTransaction, match="^" + re.escape(message)):
            decode_signed(raw)


# --- addresses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "expected",
    [
        # EIP-55 published examples.
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_checksum_eip55(expected: str) -> None:
    assert checksum(bytes.fromhex(expected[2:])) == expected


def test_checksum_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        checksum(bytes(19))


def test_address_of_known_keys() -> None:
    assert checksum(address_of((1).to_bytes(32, "big"))) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert address_of(bytearray(EIP155_KEY)) == EIP155_SENDER


def test_a_known_sender_skips_derivation_and_gives_the_same_bytes() -> None:
    key = bytearray(bytes.fromhex("4646464646464646464646464646464646464646464646464646464646464646"))
    tx = FeeMarketTransaction(1, 0, 10**9, 2 * 10**9, 21000, b"\x35" * 20, 1, b"", ())
    derived = sign_transaction(tx, key, 1)
    given = sign_transaction(tx, key, 1, sender=derived.sender)
    assert given == derived
