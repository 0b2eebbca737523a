"""Tests for signer.chain_keys on Solana, XRP, Cardano and Tron against published vectors, and the
Base58Check codec. Sources (each vector names its own): RFC 8032 section 7.1 TEST 1; solana-
web3.js keypair.test.ts; the XRPL wallet_propose response example and ripple-lib's genesis
keypair; CIP-19 "Test Vectors"; wallet-core tests/chains/Tron/AddressTests.cpp."""

from __future__ import annotations

import base64
import hashlib

import base58
import pytest

from signer.chain_keys import (
    XRP_ALPHABET,
    Base58CheckError,
    Bech32Error,
    Bech32Variant,
    address,
    base58check_decode,
    base58check_encode,
    bech32_decode,
    cardano_enterprise_address,
    convertbits,
    public_key,
)

_WEB3_SECRET_KEY = base64.b64decode(
    "mdqVWeFekT7pqy5T49+tV12jO0m+ESW7ki4zSU9JiCgbL0kJbj5dvQ/PqcDAzZLZqzshVEs01d1KZdmLh4uZIg=="
)

SOLANA_VECTORS = [
    # RFC 8032 section 7.1 TEST 1: SECRET KEY -> PUBLIC KEY (d75a98…511a).
    # The RFC has no base58; the address string is the one independent public
    # Solana code gives for this key, and the encoder itself is pinned by the
    # solana-web3.js vectors below.
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z",
    ),
    # solana-web3.js keypair.test.ts, "create keypair from secret key": the
    # 64-byte secretKey is seed || public key; the seed is its first 32 bytes.
    (
        _WEB3_SECRET_KEY[:32].hex(),
        _WEB3_SECRET_KEY[32:].hex(),
        "2q7pyhPwAwZ3QMfZrnAbDhnh9mDUqycszcpf86VgQxhF",
    ),
]


@pytest.mark.parametrize("seed_hex, pubkey_hex, expected", SOLANA_VECTORS)
def test_solana_vectors(seed_hex: str, pubkey_hex: str, expected: str) -> None:
    pub = public_key("solana", bytearray.fromhex(seed_hex))
    assert pub.hex() == pubkey_hex
    assert address("solana", pub) == expected
    assert base58.b58decode(expected) == pub


def test_solana_web3_from_seed_vector() -> None:
    # solana-web3.js keypair.test.ts, "generate keypair from random seed".
    pub = public_key("solana", bytearray([8] * 32))
    assert address("solana", pub) == "2KW2XRd9kwqet15Aha2oK3tYvd3nWbTFH1MBiRAv1BE1"


# --------------------------------------------------------------------------
# XRP
# --------------------------------------------------------------------------

XRPL_GENESIS_PUBKEY = "0330E7FC9D56BB25D6893BA3F317AE5BCF33B3291BD63DB32654A313222F7FD020"


def test_xrp_wallet_propose_vector() -> None:
    # XRPL wallet_propose response example: public_key_hex -> account_id.
    genesis = bytes.fromhex(XRPL_GENESIS_PUBKEY)
    assert address("xrp", genesis) == "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
    # Same example: "public_key" is base58check(0x23 || key) in the XRP alphabet.
    assert (
        base58check_encode(b"\x23" + bytes.fromhex(XRPL_GENESIS_PUBKEY), alphabet=XRP_ALPHABET)
        == "aBQG8RQAzjs1eTKFEAQXr2gS4utcDiEC9wmi7pfUPTi27VCahwgw"
    )
    decoded = base58check_decode("rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", alphabet=XRP_ALPHABET)
    assert decoded[0] == 0x00 and len(decoded) == 21


def test_xrp_genesis_private_key_vector() -> None:
    # ripple-lib signing fixture: privateKey 00||1ACAAEDE… pairs with the genesis key.
    key = bytearray.fromhex("1ACAAEDECE405B2A958212629E16F2EB46B153EEE94CDD350FDEFF52795525B7")
    pub = public_key("xrp", key)
    assert pub.hex().upper() == XRPL_GENESIS_PUBKEY
    assert address("xrp", pub) == "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"


# --------------------------------------------------------------------------
# Cardano
# --------------------------------------------------------------------------

# CIP-19 test vectors: the payment key and the type-6 (enterprise) addresses.
CIP19_PAYMENT_VK = "addr_vk1w0l2sr2zgfm26ztc6nl9xy8ghsk5sh6ldwemlpmp9xylzy4dtf7st80zhd"
CIP19_TYPE6_MAINNET = "addr1vx2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzers66hrl8"
CIP19_TYPE6_TESTNET = "addr_test1vz2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzerspjrlsz"
# CIP-19 type-00 (base) mainnet address: 103 characters, past bech32's 90.
CIP19_TYPE0_MAINNET = (
    "addr1qx2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzer3n0d3vllmyqwsx5wktcd8cc3sq835lu7drv2xwl2wywfgse35a3x"
)


def _cip19_payment_key() -> bytes:
    hrp, data, variant = bech32_decode(CIP19_PAYMENT_VK)
    assert (hrp, variant) == ("addr_vk", Bech32Variant.BECH32)
    key = bytes(convertbits(data, 5, 8, False))
    assert len(key) == 32
    return key


def test_cardano_cip19_enterprise_vectors() -> None:
    key = _cip19_payment_key()
    assert address("cardano", key) == CIP19_TYPE6_MAINNET
    assert cardano_enterprise_address(key, network_id=0) == CIP19_TYPE6_TESTNET
    _, data, _ = bech32_decode(CIP19_TYPE6_MAINNET, max_length=None)
    raw = bytes(convertbits(data, 5, 8, False))
    assert raw[0] == 0x61
    assert raw[1:] == hashlib.blake2b(key, digest_size=28).digest()


def test_cardano_long_addresses_need_the_lifted_limit() -> None:
    assert len(CIP19_TYPE0_MAINNET) > 90
    with pytest.raises(Bech32Error):
        bech32_decode(CIP19_TYPE0_MAINNET)
    hrp, data, _ = bech32_decode(CIP19_TYPE0_MAINNET, max_length=None)
    raw = bytes(convertbits(data, 5, 8, False))
    assert hrp == "addr" and raw[0] == 0x01 and len(raw) == 57
    # Its payment part is the same CIP-19 key hash as the enterprise address.
    assert raw[1:29] == hashlib.blake2b(_cip19_payment_key(), digest_size=28).digest()


# --------------------------------------------------------------------------
# Tron
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key_hex, expected",
    [
        # wallet-core tests/chains/Tron/AddressTests.cpp, TronAddress.FromPublicKey
        (
            "2d8f68944bdbfbc0769542fba8fc2d2a3de67393334471624364c7006da2aa54",
            "TJRyWwFs9wTFGZg3JbrVriFbNfCug5tDeC",
        ),
        (
            "BE88DF1D0BF30A923CB39C3BB953178BAAF3726E8D3CE81E7C8462E046E0D835",
            "THRF3GuPnvvPzKoaT8pJex5XHmo8NNbCb3",
        ),
    ],
)
def test_tron_wallet_core_vectors(key_hex: str, expected: str) -> None:
    pub = public_key("tron", bytearray.fromhex(key_hex))
    assert len(pub) == 65 and pub[0] == 0x04
    assert address("tron", pub) == expected
    decoded = base58check_decode(expected)
    assert decoded[0] == 0x41 and len(decoded) == 21
    # Tron and Ethereum share the account bytes for the same key.
    eth = address("ethereum", pub)
    assert decoded[1:].hex() == eth[2:].lower()


# --------------------------------------------------------------------------
# Base58Check
# --------------------------------------------------------------------------


@pytest.mark.parametrize("alphabet", [base58.BITCOIN_ALPHABET, XRP_ALPHABET])
def test_base58check_round_trip_and_flipped_character(alphabet: bytes) -> None:
    payload = b"\x41" + bytes(range(1, 21))
    text = base58check_encode(payload, alphabet=alphabet)
    assert base58check_decode(text, alphabet=alphabet) == payload
    chars = alphabet.decode()
    for i in range(len(text)):
        replacement = chars[(chars.index(text[i]) + 1) % len(chars)]
        flipped = text[:i] + replacement + text[i + 1 :]
        with pytest.raises(Base58CheckError):
            base58check_decode(flipped, alphabet=alphabet)


def test_base58check_rejects_bad_characters() -> None:
    for bad in ("0OIl", "T\u00e9st", ""):
        with pytest.raises(Base58CheckError):
            base58check_decode(bad)


def test_published_addresses_fail_with_one_flipped_character() -> None:
    tron = "TJRyWwFs9wTFGZg3JbrVriFbNfCug5tDeC"
    with pytest.raises(Base58CheckError):
        base58check_decode(tron[:10] + ("x" if tron[10] != "x" else "y") + tron[11:])
    xrp = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
    flipped = xrp[:10] + ("x" if xrp[10] != "x" else "y") + xrp[11:]
    with pytest.raises(Base58CheckError):
        base58check_decode(flipped, alphabet=XRP_ALPHABET)
