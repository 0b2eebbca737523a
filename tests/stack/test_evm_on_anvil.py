"""The transactions and authorizations Warden encodes, sent to the session stack's Anvil: blob
(EIP-4844) and set-code (EIP-7702) transactions are mined as the specifications say."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account

from evm import authorizations as auth
from evm import blobs
from evm import transactions as txs
from infra.stack.local import LocalStack
from runtime.rpc import JsonRpc, RpcError
from tests.evm_support import CHAIN, TO, blob_of
from tests.support import receipt_of


@pytest.fixture
def chain(stack: LocalStack) -> str:
    """The shared stack's Anvil: these tests use fresh keys and leave automining alone."""
    return stack.settings.rpc_url_for("anvil")


async def _funded_hex(node: JsonRpc) -> tuple[bytes, str]:
    key = os.urandom(32)
    address = Account.from_key(key).address
    await node.call("anvil_setBalance", address, hex(10**20))
    return key, address


async def _blob_tx(node: JsonRpc, address: str, sidecar: blobs.Sidecar) -> txs.BlobTransaction:
    nonce = int(await node.call("eth_getTransactionCount", address, "pending"), 16)
    base = int((await node.call("eth_getBlockByNumber", "latest", False))["baseFeePerGas"], 16)
    return txs.BlobTransaction(
        CHAIN, nonce, 10**9, 2 * base + 10**9, 50_000, TO, 1, b"", (), 10**9, sidecar.versioned_hashes
    )


@pytest.mark.parametrize("count", [1, 2])
def test_anvil_mines_a_blob_transaction_sent_in_its_network_form(
    chain: str, run: Callable[..., Any], count: int
) -> None:
    async def scenario() -> tuple[txs.SignedTx, blobs.Sidecar, str, dict[str, Any], dict[str, Any]]:
        node = JsonRpc(chain, timeout_s=120)
        try:
            assert (await node.call("anvil_nodeInfo"))["hardFork"] == "Bpo1"  # Osaka's rules; see blobs.py
            key, address = await _funded_hex(node)
            sidecar = blobs.make_sidecar(tuple(blob_of(10 * count + i) for i in range(count)))
            signed = txs.sign_transaction(await _blob_tx(node, address, sidecar), key, CHAIN)
            sent = await node.call("eth_sendRawTransaction", "0x" + blobs.network_encoding(signed.raw, sidecar).hex())
            receipt = await receipt_of(node, sent)
            return signed, sidecar, sent, receipt, await node.call("eth_getTransactionByHash", sent)
        finally:
            await node.close()

    signed, sidecar, sent, receipt, tx = run(scenario())
    assert sent == "0x" + signed.tx_hash.hex()  # the hash of the canonical form, not of the network form
    assert int(receipt["status"], 16) == 1 and int(receipt["type"], 16) == 3
    assert int(receipt["blobGasUsed"], 16) == blobs.GAS_PER_BLOB * count == 131_072 * count
    assert tx["blobVersionedHashes"] == ["0x" + h.hex() for h in sidecar.versioned_hashes]
    assert tx["from"].lower() == "0x" + signed.sender.hex() and int(tx["maxFeePerBlobGas"], 16) == 10**9


def test_anvil_checks_the_proofs_it_is_sent_and_takes_the_pre_osaka_form_too(
    chain: str, run: Callable[..., Any]
) -> None:
    """Anvil 1.7.1 verifies the proofs in either wrapper (so the mined transactions above are evidence
    that ours are right) and still takes the EIP-4844 wrapper on Bpo1; a post-Osaka mainnet node
    expects the EIP-7594 one, which is why that is the default."""

    async def scenario() -> tuple[list[str], txs.SignedTx, str, dict[str, Any]]:
        node = JsonRpc(chain, timeout_s=120)
        try:
            key, address = await _funded_hex(node)
            sidecar = blobs.make_sidecar((blob_of(40),))
            signed = txs.sign_transaction(await _blob_tx(node, address, sidecar), key, CHAIN)
            swapped = blobs.Sidecar(
                sidecar.blobs,
                sidecar.commitments,
                (sidecar.cell_proofs[3],),
                sidecar.versioned_hashes,
                sidecar.cell_proofs[::-1],
            )
            errors: list[str] = []
            for osaka in (True, False):
                with pytest.raises(RpcError) as refused:
                    await node.call(
                        "eth_sendRawTransaction", "0x" + blobs.network_encoding(signed.raw, swapped, osaka=osaka).hex()
                    )
                errors.append(str(refused.value))
            sent = await node.call(
                "eth_sendRawTransaction", "0x" + blobs.network_encoding(signed.raw, sidecar, osaka=False).hex()
            )
            return errors, signed, sent, await receipt_of(node, sent)
        finally:
            await node.close()

    errors, signed, sent, receipt = run(scenario())
    assert all("invalid KZG proof" in error for error in errors), errors
    assert sent == "0x" + signed.tx_hash.hex() and int(receipt["status"], 16) == 1
    assert int(receipt["blobGasUsed"], 16) == blobs.GAS_PER_BLOB


# EVM code that answers every call with 42: PUSH1 42 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN.
ANSWER_42 = "0x602a60005260206000f3"


async def _funded_bytes(node: JsonRpc) -> tuple[bytes, bytes]:
    key = os.urandom(32)
    address = txs.address_of(key)
    await node.call("anvil_setBalance", "0x" + address.hex(), hex(10**20))
    return key, address


async def _delegate(node: JsonRpc) -> bytes:
    """A fresh address D holding the answer-42 code."""
    delegate = os.urandom(20)
    await node.call("anvil_setCode", "0x" + delegate.hex(), ANSWER_42)
    return delegate


async def _nonce(node: JsonRpc, address: bytes) -> int:
    return int(await node.call("eth_getTransactionCount", "0x" + address.hex(), "latest"), 16)


async def _send_set_code(
    node: JsonRpc, key: bytes, sender: bytes, to: bytes, authorization_list: tuple[auth.SignedAuthorization, ...]
) -> tuple[txs.SignedTx, dict[str, Any]]:
    base = int((await node.call("eth_getBlockByNumber", "latest", False))["baseFeePerGas"], 16)
    tx = txs.SetCodeTransaction(
        CHAIN, await _nonce(node, sender), 10**9, 2 * base + 10**9, 200_000, to, 0, b"", (), authorization_list
    )
    signed = txs.sign_transaction(tx, key, CHAIN)
    sent = await node.call("eth_sendRawTransaction", "0x" + signed.raw.hex())
    assert sent == "0x" + signed.tx_hash.hex()
    return signed, await receipt_of(node, sent)


def test_anvil_applies_a_self_sponsored_delegation(chain: str, run: Callable[..., Any]) -> None:
    async def scenario() -> tuple[
        bytes, bytes, int, auth.SignedAuthorization, dict[str, Any], dict[str, Any], str, str, int
    ]:
        node = JsonRpc(chain, timeout_s=120)
        try:
            assert (await node.call("anvil_nodeInfo"))["hardFork"] == "Bpo1"  # Prague's EIP-7702 and later
            key, a = await _funded_bytes(node)
            d = await _delegate(node)
            nonce = await _nonce(node, a)
            # The sender's nonce is raised before the authorization list is processed: + 1.
            good = auth.sign_authorization(auth.Authorization(CHAIN, d, nonce + 1), key)
            signed, receipt = await _send_set_code(node, key, a, a, (good,))
            mined = await node.call("eth_getTransactionByHash", "0x" + signed.tx_hash.hex())
            code = await node.call("eth_getCode", "0x" + a.hex(), "latest")
            answer = await node.call("eth_call", {"to": "0x" + a.hex(), "data": "0x"}, "latest")
            return a, d, nonce, good, receipt, mined, code, answer, await _nonce(node, a)
        finally:
            await node.close()

    a, d, nonce, good, receipt, mined, code, answer, nonce_after = run(scenario())
    assert int(receipt["status"], 16) == 1 and int(receipt["type"], 16) == 4
    assert code == "0xef0100" + d.hex() and int(answer, 16) == 42
    assert nonce_after == nonce + 2  # once for the transaction, once for the authorization
    [listed] = mined["authorizationList"]
    assert (
        int(listed["chainId"], 16),
        listed["address"].lower(),
        int(listed["nonce"], 16),
        int(listed["yParity"], 16),
        int(listed["r"], 16),
        int(listed["s"], 16),
    ) == (CHAIN, "0x" + d.hex(), nonce + 1, good.y_parity, good.r, good.s)


def test_anvil_mines_an_authorization_with_the_wrong_nonce_but_sets_no_code(
    chain: str, run: Callable[..., Any]
) -> None:
    async def scenario() -> tuple[int, dict[str, Any], str, int]:
        node = JsonRpc(chain, timeout_s=120)
        try:
            key, a = await _funded_bytes(node)
            d = await _delegate(node)
            nonce = await _nonce(node, a)
            # The transaction's own nonce: stale by the time the list is processed, so the tuple is skipped.
            stale = auth.sign_authorization(auth.Authorization(CHAIN, d, nonce), key)
            _, receipt = await _send_set_code(node, key, a, a, (stale,))
            return nonce, receipt, await node.call("eth_getCode", "0x" + a.hex(), "latest"), await _nonce(node, a)
        finally:
            await node.close()

    nonce, receipt, code, nonce_after = run(scenario())
    assert int(receipt["status"], 16) == 1
    assert code == "0x" and nonce_after == nonce + 1


def test_anvil_applies_a_sponsored_delegation_for_chain_id_0(chain: str, run: Callable[..., Any]) -> None:
    """A sponsor S pays for an authority A's delegation; A's tuple names chain id 0 (every chain)
    and A's own current nonce, since A sends nothing."""

    async def scenario() -> tuple[txs.SignedTx, dict[str, Any], bytes, str, bytes]:
        node = JsonRpc(chain, timeout_s=120)
        try:
            sponsor_key, s = await _funded_bytes(node)
            a_key, a = await _funded_bytes(node)
            d = await _delegate(node)
            signed_by_a = auth.sign_authorization(auth.Authorization(0, d, await _nonce(node, a)), a_key)
            assert auth.recover_authority(signed_by_a) == a
            signed, receipt = await _send_set_code(node, sponsor_key, s, a, (signed_by_a,))
            return signed, receipt, d, await node.call("eth_getCode", "0x" + a.hex(), "latest"), s
        finally:
            await node.close()

    signed, receipt, d, code, s = run(scenario())
    assert int(receipt["status"], 16) == 1 and receipt["from"].lower() == "0x" + s.hex() == "0x" + signed.sender.hex()
    assert code == "0xef0100" + d.hex()
