"""The Solidity test contracts of infra/contracts, on the session's Anvil.

First that the committed artifacts are what their sources compile to (``build --check``), then that
each contract does on a real chain what the guardrail tests and the demo rely on: a token whose
balances, allowances and ERC-2612 permits work (the permit signed by Warden's own EIP-712 code), a
router that takes what it says and one that takes twice that, an NFT, a token that moves more than
its calldata declares, a contract that always reverts with a reason and one that always answers 42;
then the contracts that move value in ways a calldata check cannot see: a token that executes EIP-3009
authorizations (signed here by eth-account, the independent oracle), a forwarder that pays whoever
its caller names, and a multicall whose calls come from itself.

The accounts are derived from a fixed seed and unlocked with ``anvil_impersonateAccount`` (funded
with ``anvil_setBalance``) rather than borrowed from Anvil's dev accounts, so these tests neither
depend on nor disturb the nonces and balances other tests in the session see; the permit owner's
key is a real key because it signs the permit itself.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak, to_checksum_address

from evm.messages import sign_digest
from evm.typed_data import hash_typed_data
from infra.contracts import Reverted, artifact, call, calldata, deploy, send
from infra.stack.local import LocalStack
from runtime.rpc import JsonRpc
from tests.contracts_support import (
    SECP256K1N,
    TRANSFER_TOPIC,
    call_uint,
    role_address,
    role_key,
    run_on_chain,
    token_balance,
    unlocked_role,
)

REPO = Path(__file__).resolve().parents[2]
MAX_UINT256 = 2**256 - 1
PULLED_TOPIC = "0x" + keccak(text="Pulled(address,address,uint256)").hex()


def test_the_committed_artifacts_are_what_the_sources_compile_to() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.contracts.build", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,  # solcjs under a full suite on two cores took over 120 s
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in (
        "WardenToken",
        "WardenNFT",
        "PullRouter",
        "GreedyToken",
        "Paused",
        "Answer42",
        "AuthToken",
        "Forwarder",
        "Multicall",
    ):
        assert f"{name}.json: ok" in done.stdout


# --- WardenToken and PullRouter -----------------------------------------------------------------


def test_a_token_mints_transfers_and_a_router_pulls_what_it_says_or_twice_that(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    async def scenario(node: JsonRpc) -> None:
        deployer, alice, bob = [await unlocked_role(node, r) for r in ("deployer", "alice", "bob")]
        token = await deploy(node, "WardenToken", "Warden Test Token", "WTT", 6, sender=deployer)
        assert await call_uint(node, token, "decimals()") == 6

        await send(node, bob, token, calldata("mint(address,uint256)", alice, 1_000))  # anyone may mint
        assert await token_balance(node, token, alice) == 1_000
        assert await call_uint(node, token, "totalSupply()") == 1_000

        await send(node, alice, token, calldata("transfer(address,uint256)", bob, 100))
        assert (await token_balance(node, token, alice), await token_balance(node, token, bob)) == (900, 100)
        with pytest.raises(Reverted, match="exceeds balance"):
            await send(node, bob, token, calldata("transfer(address,uint256)", alice, 101))

        router = await deploy(node, "PullRouter", sender=deployer)
        await send(node, alice, token, calldata("approve(address,uint256)", router, 300))
        await send(node, alice, router, calldata("pull(address,uint256)", token, 120))
        assert (await token_balance(node, token, alice), await token_balance(node, token, router)) == (780, 120)
        assert await call_uint(node, token, "allowance(address,address)", alice, router) == 180

        # pullMore declares 50 and takes 100: the balance, the allowance and its own event say so.
        receipt = await send(node, alice, router, calldata("pullMore(address,uint256)", token, 50))
        assert (await token_balance(node, token, alice), await token_balance(node, token, router)) == (680, 220)
        assert await call_uint(node, token, "allowance(address,address)", alice, router) == 80
        [pulled] = [log for log in receipt["logs"] if log["topics"][0] == PULLED_TOPIC]
        assert int(pulled["data"], 16) == 100

        with pytest.raises(Reverted, match="insufficient allowance"):
            await send(node, alice, router, calldata("pull(address,uint256)", token, 81))

        # An unlimited allowance stays unlimited (as most deployed tokens do); increaseAllowance adds.
        await send(node, alice, token, calldata("approve(address,uint256)", router, MAX_UINT256))
        await send(node, alice, router, calldata("pull(address,uint256)", token, 10))
        assert await call_uint(node, token, "allowance(address,address)", alice, router) == MAX_UINT256
        await send(node, alice, token, calldata("approve(address,uint256)", bob, 5))
        await send(node, alice, token, calldata("increaseAllowance(address,uint256)", bob, 7))
        assert await call_uint(node, token, "allowance(address,address)", alice, bob) == 12

    run_on_chain(stack, run, scenario)


def test_a_permit_signed_by_wardens_eip712_code_sets_the_allowance_and_a_tampered_one_is_refused(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    async def scenario(node: JsonRpc) -> None:
        deployer, relayer = await unlocked_role(node, "deployer"), await unlocked_role(node, "relayer")
        owner, spender = role_address("permit owner"), await unlocked_role(node, "permit spender")
        token = await deploy(node, "WardenToken", "Warden Permit Token", "WPT", 18, sender=deployer)
        chain_id = int(await node.call("eth_chainId"), 16)
        now = int((await node.call("eth_getBlockByNumber", "latest", False))["timestamp"], 16)
        deadline = now + 3600
        document = {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Permit",
            "domain": {"name": "Warden Permit Token", "version": "1", "chainId": chain_id, "verifyingContract": token},
            "message": {"owner": owner, "spender": spender, "value": 500, "nonce": 0, "deadline": deadline},
        }
        hashes = hash_typed_data(document)
        assert await call(node, token, calldata("DOMAIN_SEPARATOR()")) == hashes.domain_separator
        signature = sign_digest(hashes.digest, role_key("permit owner"))
        r, s, v = signature[:32], signature[32:64], signature[64]

        def permit(value: int, v: int, s: bytes) -> str:
            return calldata(
                "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
                owner,
                spender,
                value,
                deadline,
                v,
                r,
                s,
            )

        with pytest.raises(Reverted, match="invalid permit signature"):
            await send(node, relayer, token, permit(501, v, s))  # the value the owner did not sign
        # The same signature's malleable twin (n - s, other parity) recovers the owner too; EIP-2 refuses it.
        high_s = (SECP256K1N - int.from_bytes(s, "big")).to_bytes(32, "big")
        with pytest.raises(Reverted, match="upper half"):
            await send(node, relayer, token, permit(500, 55 - v, high_s))
        assert await call_uint(node, token, "allowance(address,address)", owner, spender) == 0

        await send(node, relayer, token, permit(500, v, s))
        assert await call_uint(node, token, "allowance(address,address)", owner, spender) == 500
        assert await call_uint(node, token, "nonces(address)", owner) == 1
        with pytest.raises(Reverted, match="invalid permit signature"):
            await send(node, relayer, token, permit(500, v, s))  # nonce 0 is spent: no replay

        # The spender uses the allowance the permit granted.
        await send(node, relayer, token, calldata("mint(address,uint256)", owner, 800))
        await send(node, spender, token, calldata("transferFrom(address,address,uint256)", owner, spender, 200))
        assert (await token_balance(node, token, owner), await token_balance(node, token, spender)) == (600, 200)
        assert await call_uint(node, token, "allowance(address,address)", owner, spender) == 300

    run_on_chain(stack, run, scenario)


# --- WardenNFT ----------------------------------------------------------------------------------


def test_an_nft_mints_transfers_and_honours_operator_approval(stack: LocalStack, run: Callable[..., Any]) -> None:
    async def scenario(node: JsonRpc) -> None:
        deployer, alice, bob = [await unlocked_role(node, r) for r in ("deployer", "alice", "bob")]
        nft = await deploy(node, "WardenNFT", sender=deployer)
        answer = await deploy(node, "Answer42", sender=deployer)
        paused = await deploy(node, "Paused", sender=deployer)

        async def owner_of(token_id: int) -> str:
            return to_checksum_address((await call(node, nft, calldata("ownerOf(uint256)", token_id)))[12:])

        await send(node, bob, nft, calldata("mint(address,uint256)", alice, 7))
        assert await owner_of(7) == alice
        assert await token_balance(node, nft, alice) == 1
        with pytest.raises(Reverted, match="already minted"):
            await send(node, bob, nft, calldata("mint(address,uint256)", bob, 7))

        await send(node, alice, nft, calldata("transferFrom(address,address,uint256)", alice, bob, 7))
        assert await owner_of(7) == bob
        assert (await token_balance(node, nft, alice), await token_balance(node, nft, bob)) == (0, 1)
        with pytest.raises(Reverted, match="not owner nor approved"):
            await send(node, alice, nft, calldata("transferFrom(address,address,uint256)", bob, alice, 7))

        await send(node, bob, nft, calldata("setApprovalForAll(address,bool)", alice, True))
        assert await call_uint(node, nft, "isApprovedForAll(address,address)", bob, alice) == 1
        await send(node, alice, nft, calldata("safeTransferFrom(address,address,uint256)", bob, alice, 7))
        assert await owner_of(7) == alice

        # A contract recipient is asked (onERC721Received) and must answer with its selector: Paused's
        # refusal comes back as the reason, and Answer42's 42 is no selector.
        with pytest.raises(Reverted, match="transfers paused"):
            await send(node, alice, nft, calldata("safeTransferFrom(address,address,uint256)", alice, paused, 7))
        with pytest.raises(Reverted):
            await send(
                node, alice, nft, calldata("safeTransferFrom(address,address,uint256,bytes)", alice, answer, 7, b"hi")
            )
        assert await owner_of(7) == alice

        assert await call_uint(node, nft, "supportsInterface(bytes4)", bytes.fromhex("80ac58cd")) == 1
        assert await call_uint(node, nft, "supportsInterface(bytes4)", bytes.fromhex("ffffffff")) == 0

    run_on_chain(stack, run, scenario)


# --- the contracts that misbehave on purpose ----------------------------------------------------


def test_a_greedy_token_takes_twice_the_declared_amount_from_the_sender(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    async def scenario(node: JsonRpc) -> None:
        deployer, alice, bob = [await unlocked_role(node, r) for r in ("deployer", "alice", "bob")]
        collector = role_address("collector")
        token = await deploy(node, "GreedyToken", "Greedy", "GRD", 18, collector, sender=deployer)
        await send(node, alice, token, calldata("mint(address,uint256)", alice, 1_000))

        receipt = await send(node, alice, token, calldata("transfer(address,uint256)", bob, 100))
        assert await token_balance(node, token, alice) == 800
        assert (await token_balance(node, token, bob), await token_balance(node, token, collector)) == (100, 100)
        transfers = [log for log in receipt["logs"] if log["topics"][0] == TRANSFER_TOPIC]
        assert [int(log["data"], 16) for log in transfers] == [100, 100]

    run_on_chain(stack, run, scenario)


def test_paused_reverts_every_call_with_its_reason_and_answer42_answers_42(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    async def scenario(node: JsonRpc) -> None:
        deployer = await unlocked_role(node, "deployer")
        paused = await deploy(node, "Paused", sender=deployer)
        answer = await deploy(node, "Answer42", sender=deployer)
        # Neither has immutables, so the chain holds exactly the artifact's runtime code.
        assert await node.call("eth_getCode", paused, "latest") == artifact("Paused").deployed_bytecode
        assert await node.call("eth_getCode", answer, "latest") == artifact("Answer42").deployed_bytecode

        with pytest.raises(Reverted) as refused:
            await call(node, paused, calldata("transfer(address,uint256)", deployer, 1))
        assert refused.value.reason == "Warden demo: transfers paused"
        with pytest.raises(Reverted) as refused:
            await send(node, deployer, paused, "0x", value=1)  # plain ether goes to receive()
        assert refused.value.reason == "Warden demo: transfers paused"

        for data in ("0x", calldata("balanceOf(address)", deployer), "0xdeadbeef"):
            assert await call(node, answer, data) == (42).to_bytes(32, "big")

    run_on_chain(stack, run, scenario)
