"""The EVM fast paths (evm/_crypto.py, _rlp.py) pinned against the public implementations they
stand in for: pycryptodome's and eth-hash's keccak, pyrlp's ``rlp.encode``, coincurve's public
``PrivateKey`` API and eth-account, on fixed edge cases and on random inputs (hypothesis); and the
public fallback, selected when a private symbol is missing, giving identical results.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

import pytest
import rlp
from coincurve import PrivateKey
from eth_account import Account
from eth_hash.auto import keccak as eth_hash_keccak
from hypothesis import example, given, settings
from hypothesis import strategies as st

import evm._crypto
from evm._crypto import InvalidPrivateKey, address_of, keccak, keccak_public, sign_hash, sign_hash_public
from evm._rlp import encode_access_list, encode_bytes, encode_list, encode_uint
from evm.constants import SECP256K1N
from evm.transactions import FeeMarketTransaction, LegacyTransaction, checksum, sign_transaction

SECRETS = st.integers(min_value=1, max_value=SECP256K1N - 1).map(lambda k: k.to_bytes(32, "big"))
UINT256 = st.integers(min_value=0, max_value=2**256 - 1)
ACCESS_LISTS = st.lists(
    st.tuples(
        st.binary(min_size=20, max_size=20), st.lists(st.binary(min_size=32, max_size=32), max_size=3).map(tuple)
    ),
    max_size=3,
).map(tuple)


# --- keccak -------------------------------------------------------------------------------------


def test_keccak_matches_eth_hash_around_the_sponge_rate() -> None:
    # Lengths around the 136-byte rate exercise multi-block absorption.
    for length in list(range(0, 300)) + [1000, 70000]:
        data = bytes((i * 7 + length) & 0xFF for i in range(length))
        assert keccak(data) == eth_hash_keccak(data) == keccak_public(data), length


@given(st.binary(max_size=2000))
def test_keccak_matches_eth_hash_on_random_input(data: bytes) -> None:
    assert keccak(data) == eth_hash_keccak(data) == keccak_public(data)


def test_keccak_is_thread_safe() -> None:
    inputs = [bytes([i]) * (i * 13 % 400) for i in range(64)]
    expected = [eth_hash_keccak(d) for d in inputs]
    failures: list[bytes] = []

    def work() -> None:
        for _ in range(200):
            for data, want in zip(inputs, expected, strict=False):
                if keccak(data) != want:
                    failures.append(data)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- RLP ----------------------------------------------------------------------------------------

INTS = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 2**55, 2**64 - 1, 2**64, 2**255, 2**256 - 1]
BYTES = [b"", b"\x00", b"\x7f", b"\x80", b"\xff", b"ab", bytes(55), bytes(56), bytes(255), bytes(256), bytes(65536)]


def test_rlp_encoder_matches_pyrlp_at_the_length_boundaries() -> None:
    for value in INTS:
        assert encode_uint(value) == rlp.encode(value), value
    for raw in BYTES:
        assert encode_bytes(raw) == rlp.encode(raw), len(raw)
    for length in (0, 1, 54, 55, 56, 255, 256, 65536):
        assert encode_list(bytes(length)) == rlp.encode([b"\x00"] * length)


@given(UINT256, st.binary(max_size=300), ACCESS_LISTS)
def test_rlp_encoder_matches_pyrlp_on_random_fields(
    value: int, data: bytes, access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...]
) -> None:
    assert encode_uint(value) == rlp.encode(value)
    assert encode_bytes(data) == rlp.encode(data)
    assert encode_list(encode_uint(value) + encode_bytes(data)) == rlp.encode([value, data])
    assert encode_access_list(access_list) == rlp.encode([[a, list(keys)] for a, keys in access_list])


# --- secp256k1 ----------------------------------------------------------------------------------


@settings(max_examples=60)
@given(SECRETS, st.binary(min_size=32, max_size=32))
@example((1).to_bytes(32, "big"), bytes(32))
@example((SECP256K1N - 1).to_bytes(32, "big"), b"\xff" * 32)
def test_signatures_and_addresses_match_coincurve_public_api(secret: bytes, msg_hash: bytes) -> None:
    expected = PrivateKey(secret).sign_recoverable(msg_hash, hasher=None)
    recovery_id, r, s = sign_hash(msg_hash, bytearray(secret))
    assert r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((recovery_id,)) == expected
    assert sign_hash_public(msg_hash, bytearray(secret)) == (recovery_id, r, s)
    public = PrivateKey(secret).public_key.format(compressed=False)
    assert address_of(secret) == eth_hash_keccak(public[1:])[12:]


def test_both_signing_paths_refuse_the_same_keys_with_the_same_error() -> None:
    hex_text: Any = "00" * 32  # not bytes, on purpose: refused as well
    for bad in (bytes(32), SECP256K1N.to_bytes(32, "big"), b"\xff" * 32, bytes(31), b"\x01" * 33, hex_text):
        for sign in (sign_hash, sign_hash_public):
            with pytest.raises(InvalidPrivateKey):
                sign(bytes(32), bad)
        with pytest.raises(InvalidPrivateKey):
            address_of(bad)


# --- the public fallback ------------------------------------------------------------------------


def test_the_paths_in_use_are_the_private_ones_here() -> None:
    # The installed pycryptodome and coincurve are the ones the private paths were written for; if
    # this fails after an upgrade, Warden still works (on the public paths) but is slower.
    assert evm._crypto.PATHS == {"keccak": "private", "sign_hash": "private"}


def _crypto_without_private_symbols(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh copy of evm/_crypto.py imported while both private symbols are missing."""
    import Crypto.Hash.keccak

    monkeypatch.delattr(Crypto.Hash.keccak, "_raw_keccak_lib")
    monkeypatch.setitem(sys.modules, "coincurve._libsecp256k1", None)
    spec = importlib.util.spec_from_file_location("evm_crypto_public", evm._crypto.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_missing_private_symbol_selects_the_public_path(monkeypatch: pytest.MonkeyPatch) -> None:
    public = _crypto_without_private_symbols(monkeypatch)
    assert public.keccak_private() is None and public.sign_hash_private() is None
    assert public.PATHS == {"keccak": "public", "sign_hash": "public"}
    assert public.keccak is public.keccak_public
    assert public.sign_hash is public.sign_hash_public


@settings(max_examples=40)
@given(SECRETS, st.binary(min_size=32, max_size=32), st.binary(max_size=2000))
def test_the_public_fallback_gives_identical_results(secret: bytes, msg_hash: bytes, data: bytes) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        public = _crypto_without_private_symbols(monkeypatch)
    assert public.keccak(data) == keccak(data)
    assert public.sign_hash(msg_hash, bytearray(secret)) == sign_hash(msg_hash, bytearray(secret))
    assert public.address_of(secret) == address_of(secret)


@settings(max_examples=40)
@given(SECRETS, st.integers(0, 2**64 - 2), UINT256, st.binary(max_size=100), st.integers(1, 2**32))
def test_whole_transactions_recover_with_eth_account(
    secret: bytes, nonce: int, value: int, data: bytes, chain_id: int
) -> None:
    for tx in (
        FeeMarketTransaction(chain_id, nonce, 1, 2, 21000, bytes(range(20)), value, data, ()),
        LegacyTransaction(nonce, 7, 21000, bytes(range(20)), value, data),
    ):
        signed = sign_transaction(tx, bytearray(secret), chain_id)
        assert Account.recover_transaction(signed.raw) == checksum(address_of(secret))
