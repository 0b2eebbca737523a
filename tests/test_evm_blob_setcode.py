"""Transaction types 3 (EIP-4844) and 4 (EIP-7702) and EIP-7702 authorizations, checked against
an independent implementation (eth-account 0.14: it signs both types, builds the Osaka network
form of a blob transaction and signs authorizations) and mined by a real Anvil."""

from __future__ import annotations

import asyncio
import os

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given, settings, strategies as st

from runtime.rpc import JsonRpc
from signer.evm import authorizations as auth
from signer.evm import blobs
from signer.evm import transactions as txs

KEY = bytes.fromhex("4c0883a69102937d6231471b5decb2243e0e3ad3b0ad39fea4d99bb1b1b3c2c7")
ADDRESS = Account.from_key(KEY).address
D = bytes.fromhex("00" * 18 + "de1e")
CHAIN = 31337


def _blob(seed: int) -> bytes:
    # A zero first byte in each 32-byte field element keeps it below the BLS modulus.
    return b"".join(b"\x00" + bytes([(seed + i) % 251]) * 31 for i in range(4096))


def _fields(**overrides) -> dict:
    return dict(chain_id=CHAIN, nonce=4, max_priority_fee_per_gas=1, max_fee_per_gas=10**10, gas=100_000, to=D,
                value=5, data=b"\x01\x02", access_list=()) | overrides


def _theirs(tx, **extra) -> dict:
    """The same transaction as eth-account's dict."""
    return {"chainId": tx.chain_id, "nonce": tx.nonce, "maxPriorityFeePerGas": tx.max_priority_fee_per_gas,
            "maxFeePerGas": tx.max_fee_per_gas, "gas": tx.gas, "to": to_checksum_address(tx.to), "value": tx.value,
            "data": "0x" + tx.data.hex(), "accessList": [], **extra}


def test_an_authorization_is_the_one_eth_account_signs_and_recovers_to_its_authority():
    for chain_id, nonce in ((CHAIN, 0), (0, 7), (1, 2**64 - 2)):
        mine = auth.sign_authorization(auth.Authorization(chain_id, D, nonce), KEY)
        theirs = Account.sign_authorization({"chainId": chain_id, "address": to_checksum_address(D),
                                             "nonce": nonce}, KEY)
        assert (mine.y_parity, mine.r, mine.s) == (theirs.y_parity, theirs.r, theirs.s)
        assert auth.authorization_hash(mine) == bytes(theirs.authorization_hash)
        assert to_checksum_address(auth.recover_authority(mine)) == ADDRESS
    high_s = auth.SignedAuthorization(mine.chain_id, mine.address, mine.nonce, 1 - mine.y_parity, mine.r,
                                      auth.SECP256K1N - mine.s)
    with pytest.raises(auth.InvalidAuthorization, match="lower half"):
        auth.recover_authority(high_s)
    with pytest.raises(auth.InvalidAuthorization, match="nonce"):
        auth.Authorization(CHAIN, D, 2**64 - 1)


def test_a_set_code_transaction_is_byte_for_byte_eth_accounts():
    signed_auth = auth.sign_authorization(auth.Authorization(CHAIN, D, 5), KEY)
    tx = txs.SetCodeTransaction(**_fields(), authorization_list=(signed_auth,))
    mine = txs.sign_transaction(tx, KEY, CHAIN)
    theirs_auth = Account.sign_authorization({"chainId": CHAIN, "address": to_checksum_address(D), "nonce": 5}, KEY)
    theirs = Account.sign_transaction({"type": 4, **_theirs(tx, authorizationList=[theirs_auth])}, KEY)
    assert mine.raw == bytes(theirs.raw_transaction) and mine.tx_hash == bytes(theirs.hash)
    assert Account.recover_transaction(mine.raw) == ADDRESS
    assert txs.decode_signed(mine.raw)[0] == tx and txs.recover_sender(mine.raw) == bytes.fromhex(ADDRESS[2:])
    with pytest.raises(txs.InvalidTransaction, match="non-empty"):
        txs.SetCodeTransaction(**_fields(), authorization_list=())
    with pytest.raises(txs.InvalidTransaction, match="cannot create a contract"):
        txs.SetCodeTransaction(**_fields(to=b""), authorization_list=(signed_auth,))


def test_a_blob_transaction_and_its_network_form_are_byte_for_byte_eth_accounts():
    blob_list = (_blob(1), _blob(2))
    sidecar = blobs.make_sidecar(blob_list)
    tx = txs.BlobTransaction(**_fields(), max_fee_per_blob_gas=7, blob_versioned_hashes=sidecar.versioned_hashes)
    mine = txs.sign_transaction(tx, KEY, CHAIN)
    theirs = Account.sign_transaction({"type": 3, **_theirs(tx, maxFeePerBlobGas=7)}, KEY, blobs=list(blob_list))
    # eth-account returns the network form (Osaka: version 1, cell proofs), and hashes it whole.
    assert blobs.network_encoding(mine.raw, sidecar) == bytes(theirs.raw_transaction)
    assert Account.recover_transaction(mine.raw) == ADDRESS
    assert txs.decode_signed(mine.raw)[0] == tx
    assert all(h[0] == 1 for h in sidecar.versioned_hashes) and len(sidecar.cell_proofs) == 2 * 128
    # The canonical form's hash is the transaction hash; the signed payload is inside the network form.
    assert bytes(theirs.raw_transaction).find(mine.raw[1:]) > 0


@pytest.mark.parametrize("blob_list, error", [
    ((), "1 to 6 blobs"),
    ((bytes(10),), "blobs[0] is 10 bytes"),
    ((_blob(0), b"\xff" * 131_072), "blobs[1]: field element 0"),
    (tuple(_blob(i) for i in range(7)), "1 to 6 blobs"),
])
def test_blobs_that_cannot_be_committed_are_refused_with_the_reason(blob_list, error):
    with pytest.raises(blobs.InvalidBlob) as caught:
        blobs.make_sidecar(blob_list)
    assert error in str(caught.value)


def test_blob_hashes_must_be_kzg_versioned():
    with pytest.raises(txs.InvalidTransaction, match=r"blob_versioned_hashes\[0\] must be 32 bytes starting with 0x01"):
        txs.BlobTransaction(**_fields(), max_fee_per_blob_gas=1, blob_versioned_hashes=(b"\x02" + bytes(31),))
    with pytest.raises(txs.InvalidTransaction, match="1 to 6"):
        txs.BlobTransaction(**_fields(), max_fee_per_blob_gas=1, blob_versioned_hashes=())


@settings(max_examples=40, deadline=None)
@given(nonce=st.integers(0, 2**64 - 1), value=st.integers(0, 2**256 - 1), data=st.binary(max_size=64),
       hashes=st.lists(st.binary(min_size=31, max_size=31), min_size=1, max_size=6),
       auth_chain=st.integers(0, 2**64), auth_nonce=st.integers(0, 2**64 - 2))
def test_types_3_and_4_round_trip_and_recover(nonce, value, data, hashes, auth_chain, auth_nonce):
    blob_tx = txs.BlobTransaction(**_fields(nonce=nonce, value=value, data=data), max_fee_per_blob_gas=3,
                                  blob_versioned_hashes=tuple(b"\x01" + h for h in hashes))
    signed_auth = auth.sign_authorization(auth.Authorization(auth_chain, D, auth_nonce), KEY)
    code_tx = txs.SetCodeTransaction(**_fields(nonce=nonce, value=value, data=data),
                                     authorization_list=(signed_auth,))
    for tx in (blob_tx, code_tx):
        signed = txs.sign_transaction(tx, KEY, CHAIN)
        assert txs.decode_signed(signed.raw)[0] == tx
        assert txs.recover_sender(signed.raw) == bytes.fromhex(ADDRESS[2:])


# --- Anvil mines them ------------------------------------------------------------------------------

# EVM code that answers every call with 42: PUSH1 42 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN.
ANSWER_42 = "0x602a60005260206000f3"


async def _receipt(node: JsonRpc, tx_hash: str) -> dict | None:
    for _ in range(100):
        receipt = await node.call("eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return receipt
        await asyncio.sleep(0.1)
    return None


def test_anvil_mines_blob_and_set_code_transactions(stack, run):
    url = stack.settings.rpc_url_for("anvil")

    async def scenario():
        node = JsonRpc(url)
        try:
            key = os.urandom(32)
            address = Account.from_key(key).address
            await node.call("anvil_setBalance", address, hex(10**20))
            delegate = "0x" + os.urandom(20).hex()
            await node.call("anvil_setCode", delegate, ANSWER_42)
            base = int((await node.call("eth_getBlockByNumber", "latest", False))["baseFeePerGas"], 16)
            fees = dict(max_priority_fee_per_gas=10**9, max_fee_per_gas=2 * base + 10**9, gas=200_000,
                        access_list=(), data=b"")
            receipts = {}
            nonce = int(await node.call("eth_getTransactionCount", address, "pending"), 16)
            # One blob, then two: each mined with its blob gas.
            for count in (1, 2):
                sidecar = blobs.make_sidecar(tuple(_blob(count + i) for i in range(count)))
                tx = txs.BlobTransaction(CHAIN, nonce, to=D, value=1, max_fee_per_blob_gas=10**9,
                                         blob_versioned_hashes=sidecar.versioned_hashes, **fees)
                signed = txs.sign_transaction(tx, key, CHAIN)
                sent = await node.call("eth_sendRawTransaction", "0x" + blobs.network_encoding(signed.raw, sidecar).hex())
                assert sent == "0x" + signed.tx_hash.hex()
                receipts[f"blob{count}"] = await _receipt(node, sent)
                receipts[f"blob{count}-tx"] = await node.call("eth_getTransactionByHash", sent)
                nonce += 1
            # A self-sponsored delegation: the authorization's nonce is the transaction's + 1.
            good = auth.sign_authorization(auth.Authorization(CHAIN, bytes.fromhex(delegate[2:]), nonce + 1), key)
            tx = txs.SetCodeTransaction(CHAIN, nonce, to=bytes.fromhex(address[2:]), value=0,
                                        authorization_list=(good,), **fees)
            sent = await node.call("eth_sendRawTransaction", "0x" + txs.sign_transaction(tx, key, CHAIN).raw.hex())
            receipts["delegation"] = await _receipt(node, sent)
            code = await node.call("eth_getCode", address, "latest")
            answer = await node.call("eth_call", {"to": address, "data": "0x"}, "latest")

            # An authorization at the transaction's own nonce is skipped by the chain: mined, no code.
            other_key = os.urandom(32)
            other = Account.from_key(other_key).address
            await node.call("anvil_setBalance", other, hex(10**20))
            stale = auth.sign_authorization(auth.Authorization(CHAIN, bytes.fromhex(delegate[2:]), 0), other_key)
            tx = txs.SetCodeTransaction(CHAIN, 0, to=bytes.fromhex(other[2:]), value=0, authorization_list=(stale,),
                                        **fees)
            sent = await node.call("eth_sendRawTransaction",
                                   "0x" + txs.sign_transaction(tx, other_key, CHAIN).raw.hex())
            receipts["stale"] = await _receipt(node, sent)
            stale_code = await node.call("eth_getCode", other, "latest")
            return delegate, receipts, code, answer, stale_code
        finally:
            await node.close()

    delegate, receipts, code, answer, stale_code = run(scenario())
    for count in (1, 2):
        receipt = receipts[f"blob{count}"]
        assert int(receipt["status"], 16) == 1 and int(receipt["blobGasUsed"], 16) == count * blobs.GAS_PER_BLOB
        assert len(receipts[f"blob{count}-tx"]["blobVersionedHashes"]) == count
    assert int(receipts["delegation"]["status"], 16) == 1
    assert code == "0xef0100" + delegate[2:].lower() and int(answer, 16) == 42
    assert int(receipts["stale"]["status"], 16) == 1 and stale_code == "0x"
