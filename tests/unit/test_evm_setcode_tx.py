"""EIP-7702 set-code transactions (type 4) and their authorizations, checked against an independent
implementation (eth-account 0.14: ``Account.sign_authorization``, type-4 ``sign_transaction`` and
``recover_transaction``; eth-keys for recovering an authority) and mined by a real, private Anvil
(1.7.1, default hardfork Bpo1, which includes Prague's EIP-7702)."""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_account.datastructures import SignedSetCodeAuthorization
from eth_keys import keys
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from hypothesis import given, settings
from hypothesis import strategies as st

from evm import authorizations as auth
from evm import transactions as txs
from evm.authorizations import SignedAuthorization
from evm.constants import SECP256K1N
from evm.transactions.types import AccessList
from tests.evm_support import CHAIN

KEY = bytes.fromhex("4c0883a69102937d6231471b5decb2243e0e3ad3b0ad39fea4d99bb1b1b3c2c7")
OTHER_KEY = bytes.fromhex("8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f")
ADDRESS = Account.from_key(KEY).address
D = bytes.fromhex("00" * 18 + "de1e")
ACCESS = ((bytes.fromhex("11" * 20), (bytes(31) + b"\x07",)),)


def _tx(authorization_list: Any, **overrides: Any) -> txs.SetCodeTransaction:
    """A type-4 transaction of ``authorization_list``: any value, since the refusals pass ones
    that are not a tuple of signed authorizations."""
    fields: dict[str, Any] = dict(
        chain_id=CHAIN,
        nonce=4,
        max_priority_fee_per_gas=10**9,
        max_fee_per_gas=3 * 10**10,
        gas=100_000,
        to=D,
        value=5,
        data=b"\x01\x02\x00",
        access_list=ACCESS,
        authorization_list=authorization_list,
    )
    return txs.SetCodeTransaction(**(fields | overrides))


def _theirs(tx: txs.SetCodeTransaction, authorization_list: list[Any]) -> dict[str, Any]:
    return {
        "type": 4,
        "chainId": tx.chain_id,
        "nonce": tx.nonce,
        "maxPriorityFeePerGas": tx.max_priority_fee_per_gas,
        "maxFeePerGas": tx.max_fee_per_gas,
        "gas": tx.gas,
        "to": to_checksum_address(tx.to),
        "value": tx.value,
        "data": "0x" + tx.data.hex(),
        "authorizationList": authorization_list,
        "accessList": [
            {"address": to_checksum_address(a), "storageKeys": ["0x" + k.hex() for k in keys_]}
            for a, keys_ in tx.access_list
        ],
    }


def _as_rpc(signed: auth.SignedAuthorization) -> dict[str, Any]:
    """Our tuple as eth-account's JSON-RPC form, so its serializer (not its signer) encodes it."""
    return {
        "chainId": signed.chain_id,
        "address": to_checksum_address(signed.address),
        "nonce": signed.nonce,
        "yParity": signed.y_parity,
        "r": signed.r,
        "s": signed.s,
    }


# --- authorizations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chain_id, nonce", [(CHAIN, 0), (0, 7), (1, 2**64 - 2), (2**256 - 1, 1)])
def test_an_authorization_is_the_one_eth_account_signs_and_it_recovers_to_its_authority(
    chain_id: int, nonce: int
) -> None:
    mine = auth.sign_authorization(auth.Authorization(chain_id, D, nonce), KEY)
    theirs = Account.sign_authorization({"chainId": chain_id, "address": to_checksum_address(D), "nonce": nonce}, KEY)
    assert (mine.chain_id, mine.address, mine.nonce) == (theirs.chain_id, theirs.address, theirs.nonce)
    assert (mine.y_parity, mine.r, mine.s) == (theirs.y_parity, theirs.r, theirs.s)
    assert mine.s <= SECP256K1N // 2
    # The signed message, from the EIP text: keccak(0x05 || rlp([chain_id, address, nonce])).
    digest = keccak(b"\x05" + rlp.encode([chain_id, D, nonce]))
    assert auth.authorization_hash(mine) == auth.authorization_hash(auth.Authorization(chain_id, D, nonce)) == digest
    assert digest == bytes(theirs.authorization_hash)
    # eth-account (through eth-keys) recovers our tuple to the key's address.
    signature = keys.Signature(vrs=(mine.y_parity, mine.r, mine.s))
    as_theirs = SignedSetCodeAuthorization(
        chain_id=mine.chain_id,
        address=mine.address,
        nonce=mine.nonce,
        y_parity=mine.y_parity,
        r=mine.r,
        s=mine.s,
        signature=signature,
        authorization_hash=HexBytes(digest),
    )
    assert to_checksum_address(as_theirs.authority) == ADDRESS
    assert to_checksum_address(auth.recover_authority(mine)) == ADDRESS
    # A bytearray key (which the caller can wipe) signs the same.
    assert auth.sign_authorization(auth.Authorization(chain_id, D, nonce), bytearray(KEY)) == mine


@pytest.mark.parametrize(
    "fields, error",
    [
        ((CHAIN, D, 2**64 - 1), "nonce must be < 2**64 - 1 (EIP-2681)"),
        ((CHAIN, D, -1), "nonce must be >= 0"),
        ((CHAIN, D, True), "nonce must be an int, not bool"),
        ((2**256, D, 0), "chain_id must be < 2**256"),
        ((-1, D, 0), "chain_id must be >= 0"),
        ((CHAIN, D[:19], 0), "address must be 20 bytes"),
        ((CHAIN, bytearray(D), 0), "address must be 20 bytes"),
        ((CHAIN, "0x" + D.hex(), 0), "address must be 20 bytes"),
    ],
)
def test_an_authorization_that_could_never_apply_is_refused(
    fields: tuple[Any, ...],
    error: str,
) -> None:
    with pytest.raises(auth.InvalidAuthorization) as caught:
        auth.Authorization(*fields)
    assert error in str(caught.value)


def test_a_signed_authorization_that_does_not_recover_is_refused_with_the_reason() -> None:
    mine = auth.sign_authorization(auth.Authorization(CHAIN, D, 3), KEY)
    # (r, n - s) with the other parity is the same signature mirrored: EIP-7702 skips it (EIP-2).
    high_s = auth.SignedAuthorization(
        mine.chain_id, mine.address, mine.nonce, 1 - mine.y_parity, mine.r, SECP256K1N - mine.s
    )
    with pytest.raises(auth.InvalidAuthorization, match="lower half"):
        auth.recover_authority(high_s)
    with pytest.raises(auth.InvalidAuthorization, match="signature r out of range"):
        auth.recover_authority(auth.SignedAuthorization(CHAIN, D, 3, 0, 0, mine.s))
    with pytest.raises(auth.InvalidAuthorization, match="signature s out of range"):
        auth.recover_authority(auth.SignedAuthorization(CHAIN, D, 3, 0, mine.r, 0))
    for y_parity in (2, 27, True):
        with pytest.raises(auth.InvalidAuthorization, match="y_parity must be 0 or 1"):
            auth.SignedAuthorization(CHAIN, D, 3, y_parity, mine.r, mine.s)
    with pytest.raises(auth.InvalidAuthorization, match=r"r must be < 2\*\*256"):
        auth.SignedAuthorization(CHAIN, D, 3, 0, 2**256, mine.s)
    already_signed: Any = mine
    with pytest.raises(auth.InvalidAuthorization, match="expected an Authorization"):
        auth.sign_authorization(already_signed, KEY)
    unsigned: Any = auth.Authorization(CHAIN, D, 3)
    with pytest.raises(auth.InvalidAuthorization, match="expected a SignedAuthorization"):
        auth.recover_authority(unsigned)
    # Another address's tuple recovers to someone else, not to an error: the chain decides by nonce.
    tampered = auth.SignedAuthorization(CHAIN, bytes(20), 3, mine.y_parity, mine.r, mine.s)
    assert to_checksum_address(auth.recover_authority(tampered)) != ADDRESS


# --- the transaction --------------------------------------------------------------------------------


def test_a_set_code_transaction_is_byte_for_byte_eth_accounts_and_recovers() -> None:
    own = auth.sign_authorization(auth.Authorization(CHAIN, D, 5), KEY)
    everywhere = auth.sign_authorization(auth.Authorization(0, bytes.fromhex("22" * 20), 0), OTHER_KEY)
    tx = _tx((own, everywhere))
    mine = txs.sign_transaction(tx, KEY, CHAIN)
    assert mine.raw[0] == 4 and mine.v in (0, 1) and mine.s <= SECP256K1N // 2
    # eth-account's signer for the tuples, and its serializer for ours: both give our bytes.
    their_auths = [
        Account.sign_authorization(
            {"chainId": a.chain_id, "address": to_checksum_address(a.address), "nonce": a.nonce}, k
        )
        for a, k in ((own, KEY), (everywhere, OTHER_KEY))
    ]
    for authorization_list in (their_auths, [_as_rpc(own), _as_rpc(everywhere)]):
        theirs = Account.sign_transaction(_theirs(tx, authorization_list), KEY)
        assert mine.raw == bytes(theirs.raw_transaction)
        assert mine.tx_hash == bytes(theirs.hash) == keccak(mine.raw)
    assert Account.recover_transaction(mine.raw) == ADDRESS
    assert txs.decode_signed(mine.raw) == (tx, mine.v, mine.r, mine.s)
    assert txs.recover_sender(mine.raw) == mine.sender == bytes.fromhex(ADDRESS[2:])
    # The wire order of EIP-7702: the nine EIP-1559 fields, the authorization list, y_parity, r, s.
    items = rlp.decode(mine.raw[1:])
    assert len(items) == 13 and items[5] == D
    assert items[9] == rlp.decode(
        rlp.encode([[a.chain_id, a.address, a.nonce, a.y_parity, a.r, a.s] for a in (own, everywhere)])
    )
    assert txs.signing_hash_7702(tx) == keccak(b"\x04" + rlp.encode(items[:10]))


def test_a_set_code_transaction_that_is_not_one_is_refused() -> None:
    signed = auth.sign_authorization(auth.Authorization(CHAIN, D, 5), KEY)
    with pytest.raises(txs.InvalidTransaction, match="non-empty tuple"):
        _tx(())
    with pytest.raises(txs.InvalidTransaction, match="non-empty tuple"):
        _tx([signed])
    with pytest.raises(txs.InvalidTransaction, match="entries must be SignedAuthorization"):
        _tx((auth.Authorization(CHAIN, D, 5),))
    with pytest.raises(txs.InvalidTransaction, match="type 4 cannot create a contract"):
        _tx((signed,), to=b"")
    with pytest.raises(txs.InvalidTransaction, match="max_priority_fee_per_gas must be <= max_fee_per_gas"):
        _tx((signed,), max_priority_fee_per_gas=2, max_fee_per_gas=1)
    with pytest.raises(txs.InvalidTransaction, match="chain_id mismatch"):
        txs.sign_transaction(_tx((signed,)), KEY, 1)


def test_decoding_refuses_tuples_that_could_never_apply() -> None:
    good = txs.sign_transaction(_tx((auth.sign_authorization(auth.Authorization(CHAIN, D, 5), KEY),)), KEY, CHAIN)
    items = rlp.decode(good.raw[1:])
    for index, value, error in (
        (3, b"\x02", "y_parity must be 0 or 1"),
        (2, b"\xff" * 8, "nonce must be"),
        (1, b"\x01" * 19, "address must be 20 bytes"),
        (2, b"\x00\x01", "authorization nonce is not a canonical integer"),
    ):
        bad = [list(entry) for entry in items[9]]
        bad[0][index] = value
        raw = b"\x04" + rlp.encode(items[:9] + [bad] + items[10:])
        with pytest.raises(txs.InvalidTransaction, match=error):
            txs.decode_signed(raw)
    with pytest.raises(txs.InvalidTransaction, match=r"\[chain_id, address, nonce, y_parity, r, s\]"):
        txs.decode_signed(b"\x04" + rlp.encode(items[:9] + [[items[9][0][:5]]] + items[10:]))


# --- round trips ------------------------------------------------------------------------------------

_addresses = st.binary(min_size=20, max_size=20)
_keys = st.integers(1, SECP256K1N - 1).map(lambda k: k.to_bytes(32, "big"))
_authorizations = st.builds(
    lambda chain_id, address, nonce, key: auth.sign_authorization(auth.Authorization(chain_id, address, nonce), key),
    st.integers(0, 2**256 - 1),
    _addresses,
    st.integers(0, 2**64 - 2),
    _keys,
)


@settings(max_examples=60, deadline=None)
@given(
    key=_keys,
    chain_id=st.integers(1, 2**64 - 1),
    nonce=st.integers(0, 2**64 - 2),
    fees=st.tuples(st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1)).map(sorted),
    gas=st.integers(0, 2**64 - 1),
    to=_addresses,
    value=st.integers(0, 2**256 - 1),
    data=st.binary(max_size=80),
    access=st.lists(
        st.tuples(_addresses, st.lists(st.binary(min_size=32, max_size=32), max_size=3).map(tuple)), max_size=3
    ).map(tuple),
    authorization_list=st.lists(_authorizations, min_size=1, max_size=4).map(tuple),
)
def test_type_4_round_trips_and_recovers(
    key: bytes,
    chain_id: int,
    nonce: int,
    fees: list[int],
    gas: int,
    to: bytes,
    value: int,
    data: bytes,
    access: AccessList,
    authorization_list: tuple[SignedAuthorization, ...],
) -> None:
    tx = txs.SetCodeTransaction(chain_id, nonce, fees[0], fees[1], gas, to, value, data, access, authorization_list)
    signed = txs.sign_transaction(tx, key, chain_id)
    assert txs.decode_signed(signed.raw) == (tx, signed.v, signed.r, signed.s)
    assert txs.recover_sender(signed.raw) == signed.sender == txs.address_of(key)
    assert Account.recover_transaction(signed.raw) == to_checksum_address(signed.sender)
    decoded = txs.decode_signed(signed.raw)[0]
    assert isinstance(decoded, txs.SetCodeTransaction)
    for entry in decoded.authorization_list:
        auth.recover_authority(entry)  # low s and a valid point: every tuple we sign recovers
