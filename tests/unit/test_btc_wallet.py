"""btc.wallet: the agent's key is BIP-84's first receive key of its seed, its scripts are P2WPKH
and BIP-86's key path P2TR of that key, against the BIPs' published vectors and an independent
BIP-341 tweak (coincurve); its descriptors are read back by embit to the same scripts."""

from __future__ import annotations

import hashlib

import coincurve
import pytest
from Crypto.Hash import RIPEMD160
from embit import bip32
from embit.descriptor import Descriptor
from embit.descriptor.checksum import checksum

from btc import wallet
from btc.addresses import address_of, script_of
from tests.btc_support import K_HEX, OTHER_K, K, seed

BIP84_ADDRESS = "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"  # BIP-84, m/84'/0'/0'/0/0
BIP86_ADDRESS = "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"  # BIP-86, m/86'/0'/0'/0/0


def test_the_key_is_bip84s_first_receive_key() -> None:
    assert wallet.PATH == "m/84h/0h/0h/0/0"
    secret = seed()
    assert wallet.public_key(secret).hex() == K_HEX
    assert secret == seed()  # read, not changed: the caller wipes it
    assert wallet.addresses(K, "main")[0] == BIP84_ADDRESS


def test_the_p2tr_script_is_bip86s_tweak() -> None:
    # BIP-86's vector is for another path of the same seed; its address is our P2TR of that key,
    # so own_scripts' tweak is BIP-86's (BIP-341's with no script tree).
    key86 = bip32.HDKey.from_seed(bytes(seed())).derive("m/86h/0h/0h/0/0")
    p2tr = wallet.own_scripts(bytes(key86.sec())).p2tr
    assert address_of(p2tr, "main") == BIP86_ADDRESS
    assert script_of(BIP86_ADDRESS) == p2tr


def _tagged(tag: str, data: bytes) -> bytes:
    tag_hash = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(tag_hash + tag_hash + data).digest()


@pytest.mark.parametrize("key", [K, OTHER_K])
def test_own_scripts_computed_independently(key: bytes) -> None:
    own = wallet.own_scripts(key)
    key_hash = RIPEMD160.new(hashlib.sha256(key).digest()).digest()
    assert own.p2wpkh == b"\x00\x14" + key_hash  # BIP-141 P2WPKH
    # BIP-341: Q = lift_x(x(K)) + hash_TapTweak(x(K))·G, with no script tree.
    x_only = key[1:]
    output = coincurve.PublicKeyXOnly(x_only)
    output.tweak_add(_tagged("TapTweak", x_only))
    assert own.p2tr == b"\x51\x20" + output.format()
    assert own.owns(own.p2wpkh) and own.owns(own.p2tr)
    other = wallet.own_scripts(OTHER_K if key == K else K)
    assert not own.owns(other.p2wpkh) and not own.owns(other.p2tr) and not own.owns(b"")


def test_addresses_per_network() -> None:
    own = wallet.own_scripts(K)
    main = wallet.addresses(K, "main")
    regtest = wallet.addresses(K, "regtest")
    assert main[0].startswith("bc1q") and main[1].startswith("bc1p")
    assert regtest[0].startswith("bcrt1q") and regtest[1].startswith("bcrt1p")
    for p2wpkh, p2tr in (main, regtest):
        assert (script_of(p2wpkh), script_of(p2tr)) == (own.p2wpkh, own.p2tr)
    with pytest.raises(ValueError, match="unknown Bitcoin network"):
        wallet.addresses(K, "bitcoin")


def test_descriptors_read_back_by_embit_to_the_own_scripts() -> None:
    wpkh, tr = wallet.descriptors(K)
    assert wpkh.startswith(f"wpkh({K_HEX})#")
    assert tr.startswith(f"tr({K_HEX[2:]})#")  # BIP-386: the key x-only
    own = wallet.own_scripts(K)
    assert bytes(Descriptor.from_string(wpkh).script_pubkey().data) == own.p2wpkh
    assert bytes(Descriptor.from_string(tr).script_pubkey().data) == own.p2tr
    # The checksum is BIP-380's: embit's checksum gives BIP-380's published example.
    assert checksum("raw(deadbeef)") == "89f8spxm"
    for text in (wpkh, tr):
        body, _, check = text.partition("#")
        assert check == checksum(body) and len(check) == 8


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        K[1:],  # x-only
        coincurve.PublicKey(K).format(compressed=False),  # uncompressed
        b"\x02" + b"\xff" * 32,  # x >= p: no point
        b"\x04" + K[1:],  # not a compressed prefix
        b"\x02" + bytes(32),  # x = 0: not on the curve
    ],
)
def test_a_key_that_is_not_a_compressed_point_is_refused(bad: bytes) -> None:
    with pytest.raises(ValueError, match="compressed secp256k1 point|not a point of secp256k1"):
        wallet.own_scripts(bad)
    with pytest.raises(ValueError):
        wallet.descriptors(bad)


def test_seed_lengths_and_types() -> None:
    # BIP-32: 128 to 512 bits.
    assert len(wallet.public_key(bytearray(16))) == 33 and len(wallet.public_key(bytes(64))) == 33
    for size in (0, 15, 65):
        with pytest.raises(ValueError, match="16 to 64 bytes"):
            wallet.public_key(bytearray(b"\x5a" * size))
    text: object = "00" * 32
    with pytest.raises(TypeError):
        wallet.public_key(text)  # type: ignore[arg-type]  # a hex string, on purpose
