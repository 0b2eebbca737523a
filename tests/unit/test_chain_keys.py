"""Tests for signer.chain_keys against published vectors.

Sources (each vector below names its own):
  BIP-173  bitcoin/bips bip-0173.mediawiki, "Test vectors"
  BIP-350  bitcoin/bips bip-0350.mediawiki, "Test vectors"
  BIP-84   bitcoin/bips bip-0084.mediawiki, "Test vectors"
  EIP-55   ethereum/EIPs EIPS/eip-55.md
  eth-account  eth_account/account.py, Account.from_key docstring example
  RFC 8032 section 7.1, TEST 1
  solana-web3.js  solana-labs/solana web3.js/test/keypair.test.ts
  XRPL     xrpl-dev-portal docs/.../key-generation-methods/wallet_propose.md
           (response example for seed snoPBrXtMeMyMHUVTgbuqAfg1SUTb)
  ripple-lib  signing test fixture: the same genesis keypair as raw hex
  CIP-19   cardano-foundation/CIPs CIP-0019/README.md, "Test Vectors"
  wallet-core  trustwallet/wallet-core tests/chains/Tron/AddressTests.cpp
"""

from __future__ import annotations

import base64
import hashlib

import base58
import coincurve
import pytest
from eth_utils import is_checksum_address

from signer.chain_keys import (
    KEY_CHAINS,
    XRP_ALPHABET,
    Base58CheckError,
    Bech32Error,
    Bech32Variant,
    UnknownKeyChain,
    address,
    base58check_decode,
    base58check_encode,
    bech32_decode,
    bech32_encode,
    cardano_enterprise_address,
    convertbits,
    eip55_checksum_address,
    generate_private_key,
    public_key,
    segwit_decode,
    segwit_encode,
)

SECP256K1_N = int("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)


# --------------------------------------------------------------------------
# Chain names
# --------------------------------------------------------------------------


def test_key_chains_are_the_six_supported():
    assert KEY_CHAINS == ("ethereum", "bitcoin", "solana", "xrp", "cardano", "tron")


@pytest.mark.parametrize("bad", ["dogecoin", "Ethereum", "", None, 3])
def test_unknown_chain_is_rejected_with_allowed_list(bad):
    for call in (
        lambda: generate_private_key(bad),
        lambda: public_key(bad, bytearray(32)),
        lambda: address(bad, bytes(33)),
    ):
        with pytest.raises(UnknownKeyChain) as info:
            call()
        assert isinstance(info.value, ValueError)
        for chain in KEY_CHAINS:
            assert chain in str(info.value)


# --------------------------------------------------------------------------
# Ethereum
# --------------------------------------------------------------------------


def test_ethereum_eth_account_vector():
    # eth-account, Account.from_key docstring:
    # key 0xb25c7db3…b364 -> 0x5ce9454909639D2D17A3F753ce7d93fa0b9aB12E
    key = bytearray.fromhex("b25c7db31feed9122727bf0939dc769a96564b2de4c4726d035b36ecf1e5b364")
    pub = public_key("ethereum", key)
    assert len(pub) == 65 and pub[0] == 0x04
    assert address("ethereum", pub) == "0x5ce9454909639D2D17A3F753ce7d93fa0b9aB12E"
    # The compressed form of the same point gives the same address.
    compressed = coincurve.PublicKey(pub).format(compressed=True)
    assert address("ethereum", compressed) == "0x5ce9454909639D2D17A3F753ce7d93fa0b9aB12E"


@pytest.mark.parametrize(
    "checksummed",
    [
        # EIP-55, the four test() addresses in the specification.
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_ethereum_eip55_vectors(checksummed):
    assert eip55_checksum_address(bytes.fromhex(checksummed[2:].lower())) == checksummed


# --------------------------------------------------------------------------
# Bitcoin: BIP-84 keys, BIP-173 / BIP-350 codec vectors
# --------------------------------------------------------------------------

# BIP-84 test vectors, mnemonic "abandon … about", m/84'/0'/0'/{0/0, 0/1, 1/0}.
BIP84_VECTORS = [
    (
        "KyZpNDKnfs94vbrwhJneDi77V6jF64PWPF8x5cdJb8ifgg2DUc9d",
        "0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c",
        "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    ),
    (
        "Kxpf5b8p3qX56DKEe5NqWbNUP9MnqoRFzZwHRtsFqhzuvUJsYZCy",
        "03e775fd51f0dfb8cd865d9ff1cca2a158cf651fe997fdc9fee9c1d3b5e995ea77",
        "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g",
    ),
    (
        "KxuoxufJL5csa1Wieb2kp29VNdn92Us8CoaUG3aGtPtcF3AzeXvF",
        "03025324888e429ab8e3dbaf1f7802648b9cd01e9b418485c5fa4c1b9b5700e1a6",
        "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el",
    ),
]


@pytest.mark.parametrize("wif, pubkey_hex, expected", BIP84_VECTORS)
def test_bitcoin_bip84_vectors(wif, pubkey_hex, expected):
    # The published WIF is base58check(0x80 || key || 0x01 compressed flag).
    raw = base58check_decode(wif)
    assert raw[0] == 0x80 and len(raw) == 34 and raw[-1] == 0x01
    key = bytearray(raw[1:33])
    pub = public_key("bitcoin", key)
    assert pub.hex() == pubkey_hex
    assert address("bitcoin", pub) == expected
    # From the published public key alone, as well.
    assert address("bitcoin", bytes.fromhex(pubkey_hex)) == expected
    # And the address decodes to a v0 program equal to hash160(pubkey).
    version, program = segwit_decode("bc", expected)
    assert version == 0 and len(program) == 20


# BIP-173 "The following strings are valid Bech32".
BIP173_VALID_BECH32 = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]

# BIP-350 "The following strings are valid Bech32m".
BIP350_VALID_BECH32M = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]


@pytest.mark.parametrize(
    "text, variant",
    [(s, Bech32Variant.BECH32) for s in BIP173_VALID_BECH32]
    + [(s, Bech32Variant.BECH32M) for s in BIP350_VALID_BECH32M],
)
def test_valid_bech32_vectors_decode_and_reencode(text, variant):
    hrp, data, got_variant = bech32_decode(text)
    assert got_variant is variant
    assert bech32_encode(hrp, data, variant) == text.lower()


BIP173_INVALID_BECH32 = [
    "\x20" + "1nwldj5",  # HRP character out of range
    "\x7f" + "1axkwrx",  # HRP character out of range
    "\x80" + "1eym55h",  # HRP character out of range
    # overall max length exceeded
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
    "pzry9x0s0muk",  # No separator character
    "1pzry9x0s0muk",  # Empty HRP
    "x1b4n0q5v",  # Invalid data character
    "li1dgmt3",  # Too short checksum
    "de1lg7wt" + "\xff",  # Invalid character in checksum
    "A1G7SGD8",  # checksum calculated with uppercase form of HRP
    "10a06t8",  # empty HRP
    "1qzzfhee",  # empty HRP
]

BIP350_INVALID_BECH32M = [
    "\x20" + "1xj0phk",
    "\x7f" + "1g6xzxy",
    "\x80" + "1vctc34",
    "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
    "qyrz8wqd2c9m",
    "1qyrz8wqd2c9m",
    "y1b0jsk6g",
    "lt1igcx5c0",
    "in1muywd",
    "mm1crxm3i",
    "au1s5cgom",
    "M1VUXWEZ",
    "16plkw9",
    "1p2gdwpf",
]


@pytest.mark.parametrize("text", BIP173_INVALID_BECH32 + BIP350_INVALID_BECH32M)
def test_invalid_bech32_vectors_are_rejected(text):
    with pytest.raises(Bech32Error):
        bech32_decode(text)


# BIP-350 valid segwit addresses (v0 entries are also BIP-173's) and their scriptPubKey.
VALID_SEGWIT = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
]


def _script_pubkey(version: int, program: bytes) -> str:
    return (bytes([version + 0x50 if version else 0, len(program)]) + program).hex()


@pytest.mark.parametrize("addr, script_hex", VALID_SEGWIT)
def test_valid_segwit_addresses(addr, script_hex):
    hrp = addr[:2].lower()
    version, program = segwit_decode(hrp, addr)
    assert _script_pubkey(version, program) == script_hex
    assert segwit_encode(hrp, version, program) == addr.lower()


INVALID_SEGWIT = [
    # BIP-173
    "tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty",  # Invalid human-readable part
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",  # Invalid checksum
    "BC13W508D6QEJXTDG4Y5R3ZARVARY0C5XW7KN40WF2",  # Invalid witness version
    "bc1rw5uspcuh",  # Invalid program length
    "bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90",
    "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",  # v0 program length (BIP-141)
    "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7",  # Mixed case
    "bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du",  # zero padding of more than 4 bits
    "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv",  # Non-zero padding
    "bc1gmk9yu",  # Empty data section
    # BIP-173's v1+ examples carry bech32 checksums, which BIP-350 made invalid.
    "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx",
    "BC1SW50QA3JX3S",
    "bc1zw508d6qejxtdg4y5r3zarvaryvg6kdaj",
    # BIP-350
    "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
    "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
    "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
    "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
    "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
    "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",
    "bc1pw5dgrnzv",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
    "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j",
]


@pytest.mark.parametrize("addr", INVALID_SEGWIT)
def test_invalid_segwit_addresses_are_rejected(addr):
    # As in the reference tests: invalid under both mainnet and testnet hrp.
    for hrp in ("bc", "tb"):
        with pytest.raises(Bech32Error):
            segwit_decode(hrp, addr)


@pytest.mark.parametrize("size", [0, 1, 20, 32, 40, 47])
def test_bech32_round_trip_of_our_encoding(size):
    payload = bytes((7 * i + 3) % 256 for i in range(size))
    for variant in Bech32Variant:
        text = bech32_encode("warden", convertbits(payload, 8, 5, True), variant)
        hrp, data, got = bech32_decode(text)
        assert (hrp, got) == ("warden", variant)
        assert bytes(convertbits(data, 5, 8, False)) == payload
        # Any single substituted character is caught by the checksum.
        i = len(text) - 3
        flipped = text[:i] + ("q" if text[i] != "q" else "p") + text[i + 1 :]
        with pytest.raises(Bech32Error):
            bech32_decode(flipped)


def test_bech32_length_limit_is_enforced_and_can_be_lifted():
    data = convertbits(bytes(60), 8, 5, True)
    with pytest.raises(Bech32Error):
        bech32_encode("addr", data)
    text = bech32_encode("addr", data, max_length=None)
    assert len(text) > 90
    with pytest.raises(Bech32Error):
        bech32_decode(text)
    assert bech32_decode(text, max_length=None)[1] == data


# --------------------------------------------------------------------------
# Solana
# --------------------------------------------------------------------------

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
def test_solana_vectors(seed_hex, pubkey_hex, expected):
    pub = public_key("solana", bytearray.fromhex(seed_hex))
    assert pub.hex() == pubkey_hex
    assert address("solana", pub) == expected
    assert base58.b58decode(expected) == pub


def test_solana_web3_from_seed_vector():
    # solana-web3.js keypair.test.ts, "generate keypair from random seed".
    pub = public_key("solana", bytearray([8] * 32))
    assert address("solana", pub) == "2KW2XRd9kwqet15Aha2oK3tYvd3nWbTFH1MBiRAv1BE1"


# --------------------------------------------------------------------------
# XRP
# --------------------------------------------------------------------------

XRPL_GENESIS_PUBKEY = "0330E7FC9D56BB25D6893BA3F317AE5BCF33B3291BD63DB32654A313222F7FD020"


def test_xrp_wallet_propose_vector():
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


def test_xrp_genesis_private_key_vector():
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


def test_cardano_cip19_enterprise_vectors():
    key = _cip19_payment_key()
    assert address("cardano", key) == CIP19_TYPE6_MAINNET
    assert cardano_enterprise_address(key, network_id=0) == CIP19_TYPE6_TESTNET
    _, data, _ = bech32_decode(CIP19_TYPE6_MAINNET, max_length=None)
    raw = bytes(convertbits(data, 5, 8, False))
    assert raw[0] == 0x61
    assert raw[1:] == hashlib.blake2b(key, digest_size=28).digest()


def test_cardano_long_addresses_need_the_lifted_limit():
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
def test_tron_wallet_core_vectors(key_hex, expected):
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
def test_base58check_round_trip_and_flipped_character(alphabet):
    payload = b"\x41" + bytes(range(1, 21))
    text = base58check_encode(payload, alphabet=alphabet)
    assert base58check_decode(text, alphabet=alphabet) == payload
    chars = alphabet.decode()
    for i in range(len(text)):
        replacement = chars[(chars.index(text[i]) + 1) % len(chars)]
        flipped = text[:i] + replacement + text[i + 1 :]
        with pytest.raises(Base58CheckError):
            base58check_decode(flipped, alphabet=alphabet)


def test_base58check_rejects_bad_characters():
    for bad in ("0OIl", "T\u00e9st", ""):
        with pytest.raises(Base58CheckError):
            base58check_decode(bad)


def test_published_addresses_fail_with_one_flipped_character():
    tron = "TJRyWwFs9wTFGZg3JbrVriFbNfCug5tDeC"
    with pytest.raises(Base58CheckError):
        base58check_decode(tron[:10] + ("x" if tron[10] != "x" else "y") + tron[11:])
    xrp = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
    flipped = xrp[:10] + ("x" if xrp[10] != "x" else "y") + xrp[11:]
    with pytest.raises(Base58CheckError):
        base58check_decode(flipped, alphabet=XRP_ALPHABET)


# --------------------------------------------------------------------------
# Fresh keys for every chain
# --------------------------------------------------------------------------


@pytest.mark.parametrize("chain", KEY_CHAINS)
def test_generated_key_is_a_fresh_valid_bytearray(chain):
    first = generate_private_key(chain)
    second = generate_private_key(chain)
    assert isinstance(first, bytearray) and len(first) == 32
    assert first != second
    if chain in ("ethereum", "bitcoin", "xrp", "tron"):
        assert 0 < int.from_bytes(first, "big") < SECP256K1_N
        coincurve.PrivateKey(bytes(first))  # libsecp256k1 accepts it


@pytest.mark.parametrize("chain", KEY_CHAINS)
def test_fresh_key_address_has_the_chain_format(chain):
    key = generate_private_key(chain)
    pub = public_key(chain, key)
    addr = address(chain, pub)
    if chain == "ethereum":
        assert len(pub) == 65
        assert addr.startswith("0x") and len(addr) == 42 and is_checksum_address(addr)
    elif chain == "bitcoin":
        assert len(pub) == 33
        assert addr.startswith("bc1q") and len(addr) == 42
        version, program = segwit_decode("bc", addr)
        assert version == 0 and len(program) == 20
    elif chain == "solana":
        assert len(pub) == 32
        assert 32 <= len(addr) <= 44 and base58.b58decode(addr) == pub
    elif chain == "xrp":
        assert len(pub) == 33
        assert addr.startswith("r") and 25 <= len(addr) <= 35
        decoded = base58check_decode(addr, alphabet=XRP_ALPHABET)
        assert decoded[0] == 0x00 and len(decoded) == 21
    elif chain == "cardano":
        assert len(pub) == 32
        assert addr.startswith("addr1v") and len(addr) == 58
        hrp, data, _ = bech32_decode(addr, max_length=None)
        raw = bytes(convertbits(data, 5, 8, False))
        assert hrp == "addr" and raw[0] == 0x61 and len(raw) == 29
    elif chain == "tron":
        assert len(pub) == 65
        assert addr.startswith("T") and len(addr) == 34
        decoded = base58check_decode(addr)
        assert decoded[0] == 0x41 and len(decoded) == 21
    else:  # pragma: no cover - KEY_CHAINS and this test must move together
        pytest.fail(f"no format check for {chain}")


# --------------------------------------------------------------------------
# Input checks, and private keys never echoed
# --------------------------------------------------------------------------


@pytest.mark.parametrize("chain", ["ethereum", "bitcoin", "xrp", "tron"])
def test_secp256k1_rejects_out_of_range_scalars_without_echoing_them(chain):
    order = SECP256K1_N.to_bytes(32, "big")
    for bad in (bytearray(32), bytearray(order), bytearray(b"\xff" * 32)):
        with pytest.raises(ValueError) as info:
            public_key(chain, bad)
        assert bad.hex() not in str(info.value)
    with pytest.raises(ValueError):
        public_key(chain, bytearray(31))


@pytest.mark.parametrize("chain", KEY_CHAINS)
def test_wrong_length_private_key_is_rejected(chain):
    with pytest.raises(ValueError):
        public_key(chain, bytearray(33))
    with pytest.raises(TypeError):
        public_key(chain, "00" * 32)


@pytest.mark.parametrize("chain", ["ethereum", "bitcoin", "xrp", "tron"])
def test_secp256k1_address_rejects_bad_points(chain):
    with pytest.raises(ValueError):
        address(chain, bytes(32))
    with pytest.raises(ValueError):
        address(chain, b"\x02" + b"\xff" * 32)  # x >= p: not on the curve


@pytest.mark.parametrize("chain", ["solana", "cardano"])
def test_ed25519_address_rejects_wrong_length(chain):
    with pytest.raises(ValueError):
        address(chain, bytes(33))
