"""Transaction material the evm tests share: the EIP-155 example, the legacy, access-list and
fee-market cases checked against eth-account, and two blobs with their destination and chain."""

from __future__ import annotations

import pytest

from evm.transactions import AccessListTransaction, FeeMarketTransaction, LegacyTransaction

TO = bytes.fromhex("00" * 18 + "b10b")
CHAIN = 31337


def blob_of(seed: int) -> bytes:
    # A zero first byte in each 32-byte field element keeps it below the BLS modulus.
    return b"".join(b"\x00" + bytes([(seed + i) % 251]) * 31 for i in range(4096))


BLOBS = (blob_of(1), blob_of(2))


EIP155_KEY = bytes.fromhex("46" * 32)
EIP155_TX = LegacyTransaction(
    nonce=9,
    gas_price=20 * 10**9,
    gas=21000,
    to=bytes.fromhex("35" * 20),
    value=10**18,
    data=b"",
)
EIP155_SIGNED = bytes.fromhex(
    "f86c098504a817c800825208943535353535353535353535353535353535353535"
    "880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c"
    "71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc"
    "64214b297fb1966a3b6d83"
)
EIP155_SENDER = bytes.fromhex("9d8a62f656a8d1615c1294fd71e9cfb3e4855a4f")
USDC = bytes.fromhex("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
RECIPIENT = bytes.fromhex("35" * 20)
ERC20_TRANSFER = bytes.fromhex("a9059cbb" + "00" * 12 + "35" * 20 + (10**6).to_bytes(32, "big").hex())
INITCODE = bytes.fromhex("6080604052348015600f57600080fd5b50603f80601d6000396000f3fe") + bytes(40)


def SLOT(i: int) -> bytes:  # noqa: N802 - read as a constant's name in the tables below
    return i.to_bytes(32, "big")


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
ALL_CASES = (
    [pytest.param(tx, cid, id=f"legacy-{i}") for i, (tx, cid) in enumerate(LEGACY_CASES)]
    + [pytest.param(tx, tx.chain_id, id=f"2930-{i}") for i, tx in enumerate(ACCESS_LIST_CASES)]
    + [pytest.param(tx, tx.chain_id, id=f"1559-{i}") for i, tx in enumerate(FEE_MARKET_CASES)]
)
