"""Tests for signer.chain_keys on Bitcoin against published vectors: BIP-84's keys and addresses
(bitcoin/bips bip-0084.mediawiki, "Test vectors"), and the BIP-173 / BIP-350 bech32 and bech32m
string vectors for the hand-written codec Cardano's addresses use (bip-0173 and bip-0350.mediawiki,
"Test vectors"). Each vector names its own source. Segwit addresses are btc.addresses' and tested
with BIP-173's and BIP-350's address vectors in test_btc_addresses.py."""

from __future__ import annotations

import coincurve
import pytest
from embit.bip39 import mnemonic_to_seed

from signer.chain_keys import (
    Bech32Error,
    Bech32Variant,
    address,
    bech32_decode,
    bech32_encode,
    convertbits,
    public_key,
)

# BIP-84 test vectors: mnemonic "abandon … about", no passphrase; account 0 keys at m/84'/0'/0'/…
BIP84_MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
BIP84_FIRST_RECEIVE = (
    "0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c",  # m/84'/0'/0'/0/0
    "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
)
BIP84_PUBLIC_KEYS = [
    BIP84_FIRST_RECEIVE,
    (
        "03e775fd51f0dfb8cd865d9ff1cca2a158cf651fe997fdc9fee9c1d3b5e995ea77",  # m/84'/0'/0'/0/1
        "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g",
    ),
    (
        "03025324888e429ab8e3dbaf1f7802648b9cd01e9b418485c5fa4c1b9b5700e1a6",  # m/84'/0'/0'/1/0
        "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el",
    ),
]


def test_the_bitcoin_key_is_bip84s_first_receive_key_of_the_seed() -> None:
    # The stored secret is a BIP-32 seed; BIP-84's is the BIP-39 seed of its mnemonic (64 bytes).
    seed = bytearray(mnemonic_to_seed(BIP84_MNEMONIC))
    pub = public_key("bitcoin", seed)
    assert pub.hex() == BIP84_FIRST_RECEIVE[0]
    assert address("bitcoin", pub) == BIP84_FIRST_RECEIVE[1]
    assert seed == bytearray(mnemonic_to_seed(BIP84_MNEMONIC))  # read, not changed


@pytest.mark.parametrize("pubkey_hex, expected", BIP84_PUBLIC_KEYS)
def test_bitcoin_address_of_bip84s_public_keys(pubkey_hex: str, expected: str) -> None:
    assert address("bitcoin", bytes.fromhex(pubkey_hex)) == expected


def test_bitcoin_address_of_the_uncompressed_form_is_the_compressed_keys() -> None:
    # address() accepts either secp256k1 form; P2WPKH commits to the compressed one (BIP-143).
    point = coincurve.PublicKey(bytes.fromhex(BIP84_FIRST_RECEIVE[0]))
    assert address("bitcoin", point.format(compressed=False)) == BIP84_FIRST_RECEIVE[1]


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
def test_valid_bech32_vectors_decode_and_reencode(text: str, variant: Bech32Variant) -> None:
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
def test_invalid_bech32_vectors_are_rejected(text: str) -> None:
    with pytest.raises(Bech32Error):
        bech32_decode(text)


@pytest.mark.parametrize("size", [0, 1, 20, 32, 40, 47])
def test_bech32_round_trip_of_our_encoding(size: int) -> None:
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


def test_bech32_length_limit_is_enforced_and_can_be_lifted() -> None:
    data = convertbits(bytes(60), 8, 5, True)
    with pytest.raises(Bech32Error):
        bech32_encode("addr", data)
    text = bech32_encode("addr", data, max_length=None)
    assert len(text) > 90
    with pytest.raises(Bech32Error):
        bech32_decode(text)
    assert bech32_decode(text, max_length=None)[1] == data
