"""Tests for signer.chain_keys: the supported key chains, Ethereum against published vectors,
fresh keys for every chain, and the input checks that never echo a private key (or a bitcoin
seed). Bitcoin's vectors are in test_chain_keys_bitcoin.py; Solana, XRP, Cardano, Tron and
Base58Check in test_chain_keys_solana_xrp_cardano_tron.py.

Sources (each vector below names its own):
  EIP-55   ethereum/EIPs EIPS/eip-55.md
  eth-account  eth_account/account.py, Account.from_key docstring example
"""

from __future__ import annotations

import hashlib
from typing import Any

import base58
import coincurve
import pytest
from Crypto.Hash import RIPEMD160
from eth_utils import is_checksum_address

from btc.addresses import script_of
from signer.chain_keys import (
    KEY_CHAINS,
    XRP_ALPHABET,
    UnknownKeyChain,
    address,
    base58check_decode,
    bech32_decode,
    convertbits,
    eip55_checksum_address,
    generate_private_key,
    public_key,
)

SECP256K1_N = int("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)


# --------------------------------------------------------------------------
# Chain names
# --------------------------------------------------------------------------


def test_key_chains_are_the_six_supported() -> None:
    assert KEY_CHAINS == ("ethereum", "bitcoin", "solana", "xrp", "cardano", "tron")


@pytest.mark.parametrize("bad", ["dogecoin", "Ethereum", "", None, 3])
def test_unknown_chain_is_rejected_with_allowed_list(bad: Any) -> None:  # Any: not a chain name, on purpose
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


def test_ethereum_eth_account_vector() -> None:
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
def test_ethereum_eip55_vectors(checksummed: str) -> None:
    assert eip55_checksum_address(bytes.fromhex(checksummed[2:].lower())) == checksummed


@pytest.mark.parametrize("chain", KEY_CHAINS)
def test_generated_key_is_a_fresh_valid_bytearray(chain: str) -> None:
    first = generate_private_key(chain)
    second = generate_private_key(chain)
    assert isinstance(first, bytearray) and len(first) == 32
    assert first != second
    if chain in ("ethereum", "xrp", "tron"):  # bitcoin's is a BIP-32 seed: any 32 bytes
        assert 0 < int.from_bytes(first, "big") < SECP256K1_N
        coincurve.PrivateKey(bytes(first))  # libsecp256k1 accepts it


@pytest.mark.parametrize("chain", KEY_CHAINS)
def test_fresh_key_address_has_the_chain_format(chain: str) -> None:
    key = generate_private_key(chain)
    pub = public_key(chain, key)
    addr = address(chain, pub)
    if chain == "ethereum":
        assert len(pub) == 65
        assert addr.startswith("0x") and len(addr) == 42 and is_checksum_address(addr)
    elif chain == "bitcoin":
        assert len(pub) == 33
        assert addr.startswith("bc1q") and len(addr) == 42
        key_hash = RIPEMD160.new(hashlib.sha256(pub).digest()).digest()
        assert script_of(addr) == b"\x00\x14" + key_hash  # P2WPKH of the key, BIP-141
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


@pytest.mark.parametrize("chain", ["ethereum", "xrp", "tron"])
def test_secp256k1_rejects_out_of_range_scalars_without_echoing_them(chain: str) -> None:
    order = SECP256K1_N.to_bytes(32, "big")
    for bad in (bytearray(32), bytearray(order), bytearray(b"\xff" * 32)):
        with pytest.raises(ValueError) as info:
            public_key(chain, bad)
        assert bad.hex() not in str(info.value)
    with pytest.raises(ValueError):
        public_key(chain, bytearray(31))


def test_a_bitcoin_seed_is_16_to_64_bytes_and_never_echoed() -> None:
    # BIP-32: a seed is 128 to 512 bits; any such bytes derive a key, the all-zero ones included.
    for size in (16, 32, 64):
        assert len(public_key("bitcoin", bytearray(size))) == 33
    assert public_key("bitcoin", bytearray(32)) != public_key("bitcoin", bytearray(b"\x01" * 32))
    for bad in (bytearray(b"\xab" * 15), bytearray(b"\xab" * 65)):
        with pytest.raises(ValueError, match="16 to 64 bytes") as info:
            public_key("bitcoin", bad)
        assert "abab" not in str(info.value)


@pytest.mark.parametrize("chain", KEY_CHAINS)
def test_wrong_length_private_key_is_rejected(chain: str) -> None:
    with pytest.raises(ValueError):
        public_key(chain, bytearray(65 if chain == "bitcoin" else 33))
    hex_text: Any = "00" * 32  # not a bytearray, on purpose
    with pytest.raises(TypeError):
        public_key(chain, hex_text)


@pytest.mark.parametrize("chain", ["ethereum", "bitcoin", "xrp", "tron"])
def test_secp256k1_address_rejects_bad_points(chain: str) -> None:
    with pytest.raises(ValueError):
        address(chain, bytes(32))
    with pytest.raises(ValueError):
        address(chain, b"\x02" + b"\xff" * 32)  # x >= p: not on the curve


@pytest.mark.parametrize("chain", ["solana", "cardano"])
def test_ed25519_address_rejects_wrong_length(chain: str) -> None:
    with pytest.raises(ValueError):
        address(chain, bytes(33))
