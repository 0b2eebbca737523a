"""Tests for evm.transactions: published vectors, eth-account as an oracle,
and the validation the custody signer relies on.

eth-account is imported here only, as an independent reference implementation.
"""

from __future__ import annotations

import re

import pytest
import rlp
from eth_account import Account
from eth_hash.auto import keccak as eth_hash_keccak

from evm._rlp import encode_list
from evm.constants import SECP256K1N
from evm.transactions import (
    AccessListTransaction,
    FeeMarketTransaction,
    InvalidKey,
    InvalidTransaction,
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

# --- EIP-155 published example ----------------------------------------------

EIP155_KEY = bytes.fromhex("46" * 32)
EIP155_TX = LegacyTransaction(
    nonce=9,
    gas_price=20 * 10**9,
    gas=21000,
    to=bytes.fromhex("35" * 20),
    value=10**18,
    data=b"",
)
EIP155_SIGNING_DATA = bytes.fromhex(
    "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080"
)
EIP155_SIGNING_HASH = bytes.fromhex("daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53")
EIP155_SIGNED = bytes.fromhex(
    "f86c098504a817c800825208943535353535353535353535353535353535353535"
    "880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c"
    "71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc"
    "64214b297fb1966a3b6d83"
)
EIP155_V = 37
EIP155_R = 18515461264373351373200002665853028612451056578545711640558177340181847433846
EIP155_S = 46948507304638947509940763649030358759909902576025900602547168820602576006531
EIP155_SENDER = bytes.fromhex("9d8a62f656a8d1615c1294fd71e9cfb3e4855a4f")


def test_eip155_signing_data_and_hash():
    assert encode_list(payload_legacy(EIP155_TX) + b"\x01\x80\x80") == EIP155_SIGNING_DATA
    assert signing_hash_155(EIP155_TX, 1) == EIP155_SIGNING_HASH


def test_eip155_signed_transaction():
    signed = sign_transaction(EIP155_TX, bytearray(EIP155_KEY), 1)
    assert signed.raw == EIP155_SIGNED
    assert (signed.v, signed.r, signed.s) == (EIP155_V, EIP155_R, EIP155_S)
    assert signed.tx_hash == eth_hash_keccak(EIP155_SIGNED)
    assert signed.sender == EIP155_SENDER
    assert address_of(EIP155_KEY) == EIP155_SENDER


def test_eip155_decode_and_recover():
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

USDC = bytes.fromhex("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
RECIPIENT = bytes.fromhex("35" * 20)
ERC20_TRANSFER = bytes.fromhex("a9059cbb" + "00" * 12 + "35" * 20 + (10**6).to_bytes(32, "big").hex())
INITCODE = bytes.fromhex("6080604052348015600f57600080fd5b50603f80601d6000396000f3fe") + bytes(40)
SLOT = lambda i: i.to_bytes(32, "big")  # noqa: E731
ACCESS_LIST = (
    (USDC, (SLOT(0), SLOT(3), bytes.fromhex("ff" * 32))),
    (RECIPIENT, ()),
    (bytes(20), (SLOT(1),)),
)
BIG = 2**256 - 1

# Data lengths straddle RLP's 1-byte, 55-byte and 256-byte encoding boundaries.
DATAS = [b"", b"\x00", b"\x7f", b"\x80", bytes(55), bytes(56), bytes(255), bytes(256), bytes(70000)]

LEGACY_CASES = [
    (EIP155_TX, 1),
    (LegacyTransaction(0, 1, 60000, USDC, 0, ERC20_TRANSFER), 1),
    (LegacyTransaction(1, 10**9, 3_000_000, b"", 0, INITCODE), 5),
    (LegacyTransaction(2**64 - 2, BIG, 2**64 - 1, RECIPIENT, BIG, b"\x01"), 137),
    (LegacyTransaction(127, 128, 21000, RECIPIENT, 1, b""), 11155111),
    (LegacyTransaction(3, 7, 21000, RECIPIENT, 10**18, b""), 2**64 - 1),
] + [(LegacyTransaction(4, 10**9, 100000, USDC, 0, d), 31337) for d in DATAS]

ACCESS_LIST_CASES = [
    AccessListTransaction(1, 0, 10**9, 60000, USDC, 0, ERC20_TRANSFER, ()),
    AccessListTransaction(1, 7, 10**9, 90000, USDC, 0, ERC20_TRANSFER, ACCESS_LIST),
    AccessListTransaction(5, 1, 1, 3_000_000, b"", 0, INITCODE, ((USDC, (SLOT(2),)),)),
    AccessListTransaction(137, 2**64 - 2, BIG, 2**64 - 1, RECIPIENT, BIG, b"", ()),
    AccessListTransaction(
        31337, 3, 2, 21000, RECIPIENT, 1, b"\x80", tuple((bytes([i]) * 20, (SLOT(i),)) for i in range(40))
    ),
]

FEE_MARKET_CASES = [
    FeeMarketTransaction(1, 5, 2 * 10**9, 30 * 10**9, 60000, USDC, 0, ERC20_TRANSFER, ()),
    FeeMarketTransaction(1, 6, 2 * 10**9, 30 * 10**9, 90000, USDC, 0, ERC20_TRANSFER, ACCESS_LIST),
    FeeMarketTransaction(10, 0, 0, 0, 21000, RECIPIENT, 0, b"", ()),
    FeeMarketTransaction(8453, 1, 1, 2, 3_000_000, b"", 0, INITCODE, ()),
    FeeMarketTransaction(2**64 - 1, 2**64 - 2, BIG, BIG, 2**64 - 1, RECIPIENT, BIG, b"\x00", ()),
    FeeMarketTransaction(42161, 9, 5, 5, 21000, RECIPIENT, 10**18, bytes(56), ((RECIPIENT, ()),)),
] + [FeeMarketTransaction(1, 2, 1, 2, 100000, USDC, 0, d, ()) for d in DATAS]


def _access_list_dict(access_list):
    return [
        {"address": checksum(address), "storageKeys": ["0x" + key.hex() for key in keys]}
        for address, keys in access_list
    ]


def _to_eth_account_dict(tx, chain_id):
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


ALL_CASES = (
    [pytest.param(tx, cid, id=f"legacy-{i}") for i, (tx, cid) in enumerate(LEGACY_CASES)]
    + [pytest.param(tx, tx.chain_id, id=f"2930-{i}") for i, tx in enumerate(ACCESS_LIST_CASES)]
    + [pytest.param(tx, tx.chain_id, id=f"1559-{i}") for i, tx in enumerate(FEE_MARKET_CASES)]
)


@pytest.mark.parametrize("key", KEYS, ids=["k46", "k1", "kn-1", "kdoc"])
@pytest.mark.parametrize("tx, chain_id", ALL_CASES)
def test_matches_eth_account(tx, chain_id, key):
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
def test_recover_unprotected_legacy(key):
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
    assert signing_hash_pre155(tx) == eth_hash_keccak(encode_list(payload_legacy(tx)))


# --- determinism ----------------------------------------------------------------


@pytest.mark.parametrize("tx, chain_id", ALL_CASES[:1] + ALL_CASES[-3:])
def test_signing_is_deterministic(tx, chain_id):
    first = sign_transaction(tx, bytearray(EIP155_KEY), chain_id)
    second = sign_transaction(tx, bytearray(EIP155_KEY), chain_id)
    from_bytes = sign_transaction(tx, EIP155_KEY, chain_id)
    assert first == second == from_bytes
    assert isinstance(first, SignedTx)


def test_signing_does_not_modify_the_key_buffer():
    key = bytearray(EIP155_KEY)
    sign_transaction(EIP155_TX, key, 1)
    assert key == bytearray(EIP155_KEY)
    # The caller wipes it; the signer must then refuse it rather than sign
    # with a zero scalar.
    key[:] = bytes(32)
    with pytest.raises(InvalidKey):
        sign_transaction(EIP155_TX, key, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda key: sign_transaction(EIP155_TX, key, 1),
        lambda key: address_of(key),
    ],
)
def test_key_buffer_is_released_even_on_error(call):
    # The signer points into the caller's bytearray instead of copying it;
    # that export must end with the call, or a caller wiping the key from an
    # exception handler would get BufferError instead.
    key = bytearray(32)
    try:
        call(key)
    except InvalidKey:
        key.clear()
    assert key == bytearray()
    key = bytearray(EIP155_KEY)
    call(key)
    key.clear()


def test_signing_hashes_differ_by_type_and_chain():
    tx = FEE_MARKET_CASES[0]
    assert signing_hash_155(EIP155_TX, 1) != signing_hash_155(EIP155_TX, 5)
    assert signing_hash_1559(tx) != signing_hash_1559(
        FeeMarketTransaction(5, *[getattr(tx, f) for f in tx.__slots__[1:]])
    )
    assert signing_hash_2930(ACCESS_LIST_CASES[0]) != signing_hash_1559(tx)


# --- validation ---------------------------------------------------------------


def _legacy(**overrides):
    fields = dict(nonce=0, gas_price=1, gas=21000, to=RECIPIENT, value=0, data=b"")
    fields.update(overrides)
    return LegacyTransaction(**fields)


def _fee_market(**overrides):
    fields = dict(
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


def _access_list_tx(**overrides):
    fields = dict(chain_id=1, nonce=0, gas_price=1, gas=21000, to=RECIPIENT, value=0, data=b"", access_list=())
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
def test_invalid_fields(build, message):
    with pytest.raises(InvalidTransaction) as excinfo:
        build()
    assert str(excinfo.value).startswith(message)


def test_chain_id_mismatch():
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
def test_bad_chain_id_argument(chain_id, message):
    with pytest.raises(InvalidTransaction, match="^" + re.escape(message)):
        sign_transaction(EIP155_TX, EIP155_KEY, chain_id)


def test_unsupported_transaction_object():
    class Sneaky(FeeMarketTransaction):
        __slots__ = ()

    with pytest.raises(InvalidTransaction, match="unsupported transaction type"):
        sign_transaction({"nonce": 0}, EIP155_KEY, 1)
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
def test_invalid_keys(key):
    with pytest.raises(InvalidKey) as excinfo:
        sign_transaction(EIP155_TX, key, 1)
    if isinstance(key, bytes) and len(key) == 32:
        assert key.hex() not in str(excinfo.value)
    with pytest.raises(InvalidKey):
        address_of(key)


# --- decoding ---------------------------------------------------------------


def _reencode(raw, mutate):
    """Decode ``raw``, let ``mutate`` edit the RLP item list, re-serialize."""
    prefix, payload = (b"", raw) if raw[0] >= 0xC0 else (raw[:1], raw[1:])
    items = rlp.decode(payload)
    mutate(items)
    return prefix + rlp.encode(items)


def _int(value):
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


@pytest.mark.parametrize("tx, chain_id", [ALL_CASES[0], ALL_CASES[len(LEGACY_CASES)], ALL_CASES[-1]])
def test_high_s_rejected(tx, chain_id):
    signed = sign_transaction(tx, EIP155_KEY, chain_id)
    # (r, n - s) with the other parity is the malleated twin of a valid
    # signature: it recovers the same sender, so only EIP-2 rejects it.
    high_s = SECP256K1N - signed.s
    if isinstance(tx, LegacyTransaction):
        flipped_v = signed.v + 1 if (signed.v - 35) % 2 == 0 else signed.v - 1
    else:
        flipped_v = signed.v ^ 1

    def mutate(items):
        items[-3] = _int(flipped_v)
        items[-1] = _int(high_s)

    malleated = _reencode(signed.raw, mutate)
    # Sanity: without the EIP-2 check this would recover the same sender.
    assert checksum(signed.sender) == Account.recover_transaction(malleated)
    with pytest.raises(InvalidTransaction, match="^bad s$"):
        decode_signed(malleated)
    with pytest.raises(InvalidTransaction, match="^bad s$"):
        recover_sender(malleated)


def test_decode_rejects_bad_signature_values():
    legacy = EIP155_SIGNED
    typed = sign_transaction(FEE_MARKET_CASES[0], EIP155_KEY, 1).raw

    def set_item(index, value):
        def mutate(items):
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


def test_decode_rejects_malformed_input():
    typed = sign_transaction(FEE_MARKET_CASES[0], EIP155_KEY, 1).raw

    def leading_zero(items):
        items[1] = b"\x00\x05"

    def drop_field(items):
        del items[2]

    def to_as_list(items):
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
def test_checksum_eip55(expected):
    assert checksum(bytes.fromhex(expected[2:])) == expected


def test_checksum_rejects_wrong_length():
    with pytest.raises(ValueError):
        checksum(bytes(19))


def test_address_of_known_keys():
    assert checksum(address_of((1).to_bytes(32, "big"))) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert address_of(bytearray(EIP155_KEY)) == EIP155_SENDER


def test_a_known_sender_skips_derivation_and_gives_the_same_bytes():
    key = bytearray(bytes.fromhex("4646464646464646464646464646464646464646464646464646464646464646"))
    tx = FeeMarketTransaction(1, 0, 10**9, 2 * 10**9, 21000, b"\x35" * 20, 1, b"", ())
    derived = sign_transaction(tx, key, 1)
    given = sign_transaction(tx, key, 1, sender=derived.sender)
    assert given == derived
