"""Tests for signer.chain_keys on Bitcoin against published vectors: BIP-84 keys and the BIP-173 /
BIP-350 bech32 and segwit codec vectors (bitcoin/bips bip-0084, bip-0173 and bip-0350.mediawiki,
"Test vectors"). Each vector names its own source."""

from __future__ import annotations

import pytest

from signer.chain_keys import (
    Bech32Error,
    Bech32Variant,
    address,
    base58check_decode,
    bech32_decode,
    bech32_encode,
    convertbits,
    public_key,
    segwit_decode,
    segwit_encode,
)

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
def test_bitcoin_bip84_vectors(wif: str, pubkey_hex: str, expected: str) -> None:
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
def test_valid_segwit_addresses(addr: str, script_hex: str) -> None:
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
def test_invalid_segwit_addresses_are_rejected(addr: str) -> None:
    # As in the reference tests: invalid under both mainnet and testnet hrp.
    for hrp in ("bc", "tb"):
        with pytest.raises(Bech32Error):
            segwit_decode(hrp, addr)


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
