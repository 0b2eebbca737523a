"""btc.addresses: every address form Warden pays, read to its script and written back, against
published vectors (BIP-173, BIP-350, BIP-84, BIP-86; each names its source) and base58check by
the `base58` package; and the refusals, each saying what is wrong."""

from __future__ import annotations

import base58
import pytest
from embit.networks import NETWORKS
from hypothesis import given
from hypothesis import strategies as st

from btc.addresses import NETWORK_OF_CHAIN, AddressInvalid, address_of, networks_of, parse_address, script_of

# BIP-350 "Test vectors for v0-v16 native segregated witness addresses", valid, with their
# scriptPubKeys (the v0 ones are BIP-173's too). Warden pays versions 0 and 1 only, and a version 1
# program only of 32 bytes (P2TR): the others are refused though valid.
PAID = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6", {"main"}),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
        {"test", "signet"},
    ),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
        {"test", "signet"},
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
        {"test", "signet"},
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        {"main"},
    ),
    # BIP-84's m/84'/0'/0'/0/0 and BIP-86's m/86'/0'/0'/0/0 of "abandon … about" (their output key).
    ("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", "0014c0cebcd6c3d3ca8c75dc5ec62ebe55330ef910e2", {"main"}),
    (
        "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr",
        "5120a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c",
        {"main"},
    ),
]

VALID_NOT_PAID = [
    # BIP-350: a version 1 program of 40 bytes, version 16 and version 2.
    ("bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y", "40 bytes is not P2WPKH"),
    ("BC1SW50QGDZ25J", "witness version 16 has no meaning yet"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "witness version 2 has no meaning yet"),
]

# BIP-173's and BIP-350's invalid segwit addresses.
INVALID_SEGWIT = [
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

# hash160 of the genesis block's coinbase key, whose P2PKH is 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa.
GENESIS_HASH = bytes.fromhex("62e907b15cbf27d5425399ebf6f0fb50ebb88f18")


def _p2pkh(key_hash: bytes) -> bytes:
    return b"\x76\xa9\x14" + key_hash + b"\x88\xac"


def _p2sh(script_hash: bytes) -> bytes:
    return b"\xa9\x14" + script_hash + b"\x87"


@pytest.mark.parametrize("text, script_hex, networks", PAID)
def test_segwit_vectors_read_to_their_script_and_write_back(text: str, script_hex: str, networks: set[str]) -> None:
    form = parse_address(text)
    assert form == text.lower()  # BIP-173: the uppercase form is the same address, written lowercase
    assert script_of(text) == bytes.fromhex(script_hex)
    assert networks_of(text) == networks
    for network in networks:
        assert address_of(bytes.fromhex(script_hex), network) == form


@pytest.mark.parametrize("text, why", VALID_NOT_PAID)
def test_valid_segwit_addresses_warden_does_not_pay_are_refused(text: str, why: str) -> None:
    with pytest.raises(AddressInvalid, match=why):
        parse_address(text)


@pytest.mark.parametrize("text", INVALID_SEGWIT)
def test_invalid_segwit_vectors_are_refused(text: str) -> None:
    with pytest.raises(AddressInvalid, match="must be a Bitcoin address"):
        parse_address(text)
    with pytest.raises(AddressInvalid):
        script_of(text)
    with pytest.raises(AddressInvalid):
        networks_of(text)


def test_base58_addresses_of_every_network() -> None:
    assert script_of("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa") == _p2pkh(GENESIS_HASH)
    assert networks_of("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa") == {"main"}
    p2sh = "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"  # the bitcoin wiki's P2SH example
    assert script_of(p2sh) == _p2sh(base58.b58decode_check(p2sh)[1:]) and networks_of(p2sh) == {"main"}
    # The test networks share their base58 versions (0x6f P2PKH, 0xc4 P2SH), written by the
    # `base58` package here.
    for version, script in ((b"\x6f", _p2pkh(GENESIS_HASH)), (b"\xc4", _p2sh(GENESIS_HASH))):
        text = base58.b58encode_check(version + GENESIS_HASH).decode()
        assert text[0] in "mn2"
        assert parse_address(text) == text and script_of(text) == script
        assert networks_of(text) == {"test", "regtest", "signet"}
        assert address_of(script, "regtest") == text and address_of(script, "main") != text


def test_regtest_writes_bcrt1() -> None:
    p2wpkh = bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")
    text = address_of(p2wpkh, "regtest")
    assert text == "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    assert networks_of(text) == {"regtest"} and script_of(text) == p2wpkh
    assert NETWORK_OF_CHAIN == {"bitcoin": "main", "bitcoin-regtest": "regtest"}
    assert set(NETWORK_OF_CHAIN.values()) <= set(NETWORKS)


@pytest.mark.parametrize(
    "text, why",
    [
        (None, "it is not text"),
        (b"bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", "it is not text"),
        (42, "it is not text"),
        ("", "printable ASCII"),
        (" bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu", "without spaces"),
        ("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu\n", "printable ASCII"),
        ("bc1q" + "q" * 90, "printable ASCII"),
        ("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyU", "never mixed"),
        ("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyv", "checksum"),
        ("ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9", "prefix 'ltc' is no Bitcoin network's"),
        ("LVg2kJoFNg45Nbpy53h7Fe1wKyeXVRhMH9", "version byte 0x30"),  # Litecoin P2PKH
        ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "base58 checksum"),
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "base58"),  # an Ethereum address
    ],
)
def test_refusals_say_what_is_wrong(text: object, why: str) -> None:
    with pytest.raises(AddressInvalid) as info:
        parse_address(text)
    assert why in str(info.value)
    assert "must be a Bitcoin address (bech32 bc1…/tb1…/bcrt1…, or base58)" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_base58_payload_of_another_length_is_refused() -> None:
    text = base58.b58encode_check(b"\x00" + GENESIS_HASH + b"\x00").decode()
    with pytest.raises(AddressInvalid, match="21 bytes"):
        parse_address(text)


@pytest.mark.parametrize(
    "script_hex",
    [
        "6a0b68656c6c6f20776f726c64",  # OP_RETURN data
        "5121" + "02" * 33 + "51ae",  # bare 1-of-1 multisig
        "5210751e76e8199196d454941c45d1b3a323",  # witness version 2
        "",
        "0014751e76e8199196d454941c45d1b3a323f1433b",  # v0 with a 19-byte program
    ],
)
def test_a_script_with_no_address_form_has_none(script_hex: str) -> None:
    for network in NETWORKS:
        assert address_of(bytes.fromhex(script_hex), network) is None


def test_address_of_an_unknown_network_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Bitcoin network 'mainnet'"):
        address_of(_p2pkh(GENESIS_HASH), "mainnet")


_SCRIPTS = st.one_of(
    st.binary(min_size=20, max_size=20).map(_p2pkh),
    st.binary(min_size=20, max_size=20).map(_p2sh),
    st.binary(min_size=20, max_size=20).map(lambda h: b"\x00\x14" + h),
    st.binary(min_size=32, max_size=32).map(lambda h: b"\x00\x20" + h),
    st.binary(min_size=32, max_size=32).map(lambda h: b"\x51\x20" + h),
)


@given(script=_SCRIPTS, network=st.sampled_from(sorted(NETWORKS)))
def test_every_script_of_a_paid_kind_writes_and_reads_back(script: bytes, network: str) -> None:
    text = address_of(script, network)
    assert text is not None
    assert parse_address(text) == text
    if script[0] in (0x00, 0x51):  # segwit: bech32 written uppercase is the same address
        assert parse_address(text.upper()) == text
    assert script_of(text) == script
    assert network in networks_of(text)
