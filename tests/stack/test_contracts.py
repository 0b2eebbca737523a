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
from pathlib import Path

import pytest
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from evm.messages import sign_digest
from evm.typed_data import hash_typed_data
from infra.contracts import Reverted, artifact, call, calldata, deploy, send
from runtime.rpc import JsonRpc

REPO = Path(__file__).resolve().parents[2]
SECP256K1N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_UINT256 = 2**256 - 1
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
PULLED_TOPIC = "0x" + keccak(text="Pulled(address,address,uint256)").hex()
AUTHORIZATION_USED_TOPIC = "0x" + keccak(text="AuthorizationUsed(address,bytes32)").hex()
EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
AUTHORIZATION_FIELDS = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
AUTHORIZATION_ARGS = "(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"


def _key(role: str) -> bytes:
    """A fixed private key per role, so a failure reproduces with the same addresses."""
    return keccak(text=f"warden tests/test_contracts.py {role}")


def _address(role: str) -> str:
    return Account.from_key(_key(role)).address


async def _unlocked(node, role: str) -> str:
    """The role's address, funded and unlocked on Anvil so it can send transactions."""
    address = _address(role)
    await node.call("anvil_setBalance", address, hex(10**20))
    await node.call("anvil_impersonateAccount", address)
    return address


async def _uint(node, to: str, signature: str, *args) -> int:
    return int.from_bytes(await call(node, to, calldata(signature, *args)), "big")


async def _balance(node, token: str, holder: str) -> int:
    return await _uint(node, token, "balanceOf(address)", holder)


async def _ether(node, holder: str) -> int:
    return int(await node.call("eth_getBalance", holder, "latest"), 16)


def _transfers(receipt: dict, token: str) -> list[tuple[str, str, int]]:
    """The receipt's ERC-20 Transfer logs emitted by ``token``, as (from, to, amount)."""
    return [
        (to_checksum_address(log["topics"][1][-40:]), to_checksum_address(log["topics"][2][-40:]), int(log["data"], 16))
        for log in receipt["logs"]
        if log["topics"][0] == TRANSFER_TOPIC and log["address"].lower() == token.lower()
    ]


def _on_chain(stack, run, scenario) -> None:
    """Run ``scenario(node)`` against the session's Anvil, closing the client afterwards."""

    async def go():
        node = JsonRpc(stack.settings.rpc_url)
        try:
            await scenario(node)
        finally:
            await node.close()

    run(go())


# --- the artifacts ------------------------------------------------------------------------------


def test_the_committed_artifacts_are_what_the_sources_compile_to():
    done = subprocess.run(
        [sys.executable, "-m", "infra.contracts.build", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
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


def test_a_token_mints_transfers_and_a_router_pulls_what_it_says_or_twice_that(stack, run):
    async def scenario(node):
        deployer, alice, bob = [await _unlocked(node, r) for r in ("deployer", "alice", "bob")]
        token = await deploy(node, "WardenToken", "Warden Test Token", "WTT", 6, sender=deployer)
        assert await _uint(node, token, "decimals()") == 6

        await send(node, bob, token, calldata("mint(address,uint256)", alice, 1_000))  # anyone may mint
        assert await _balance(node, token, alice) == 1_000
        assert await _uint(node, token, "totalSupply()") == 1_000

        await send(node, alice, token, calldata("transfer(address,uint256)", bob, 100))
        assert (await _balance(node, token, alice), await _balance(node, token, bob)) == (900, 100)
        with pytest.raises(Reverted, match="exceeds balance"):
            await send(node, bob, token, calldata("transfer(address,uint256)", alice, 101))

        router = await deploy(node, "PullRouter", sender=deployer)
        await send(node, alice, token, calldata("approve(address,uint256)", router, 300))
        await send(node, alice, router, calldata("pull(address,uint256)", token, 120))
        assert (await _balance(node, token, alice), await _balance(node, token, router)) == (780, 120)
        assert await _uint(node, token, "allowance(address,address)", alice, router) == 180

        # pullMore declares 50 and takes 100: the balance, the allowance and its own event say so.
        receipt = await send(node, alice, router, calldata("pullMore(address,uint256)", token, 50))
        assert (await _balance(node, token, alice), await _balance(node, token, router)) == (680, 220)
        assert await _uint(node, token, "allowance(address,address)", alice, router) == 80
        [pulled] = [log for log in receipt["logs"] if log["topics"][0] == PULLED_TOPIC]
        assert int(pulled["data"], 16) == 100

        with pytest.raises(Reverted, match="insufficient allowance"):
            await send(node, alice, router, calldata("pull(address,uint256)", token, 81))

        # An unlimited allowance stays unlimited (as most deployed tokens do); increaseAllowance adds.
        await send(node, alice, token, calldata("approve(address,uint256)", router, MAX_UINT256))
        await send(node, alice, router, calldata("pull(address,uint256)", token, 10))
        assert await _uint(node, token, "allowance(address,address)", alice, router) == MAX_UINT256
        await send(node, alice, token, calldata("approve(address,uint256)", bob, 5))
        await send(node, alice, token, calldata("increaseAllowance(address,uint256)", bob, 7))
        assert await _uint(node, token, "allowance(address,address)", alice, bob) == 12

    _on_chain(stack, run, scenario)


def test_a_permit_signed_by_wardens_eip712_code_sets_the_allowance_and_a_tampered_one_is_refused(stack, run):
    async def scenario(node):
        deployer, relayer = await _unlocked(node, "deployer"), await _unlocked(node, "relayer")
        owner, spender = _address("permit owner"), await _unlocked(node, "permit spender")
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
        signature = sign_digest(hashes.digest, _key("permit owner"))
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
        assert await _uint(node, token, "allowance(address,address)", owner, spender) == 0

        await send(node, relayer, token, permit(500, v, s))
        assert await _uint(node, token, "allowance(address,address)", owner, spender) == 500
        assert await _uint(node, token, "nonces(address)", owner) == 1
        with pytest.raises(Reverted, match="invalid permit signature"):
            await send(node, relayer, token, permit(500, v, s))  # nonce 0 is spent: no replay

        # The spender uses the allowance the permit granted.
        await send(node, relayer, token, calldata("mint(address,uint256)", owner, 800))
        await send(node, spender, token, calldata("transferFrom(address,address,uint256)", owner, spender, 200))
        assert (await _balance(node, token, owner), await _balance(node, token, spender)) == (600, 200)
        assert await _uint(node, token, "allowance(address,address)", owner, spender) == 300

    _on_chain(stack, run, scenario)


# --- WardenNFT ----------------------------------------------------------------------------------


def test_an_nft_mints_transfers_and_honours_operator_approval(stack, run):
    async def scenario(node):
        deployer, alice, bob = [await _unlocked(node, r) for r in ("deployer", "alice", "bob")]
        nft = await deploy(node, "WardenNFT", sender=deployer)
        answer = await deploy(node, "Answer42", sender=deployer)
        paused = await deploy(node, "Paused", sender=deployer)

        async def owner_of(token_id: int) -> str:
            return to_checksum_address((await call(node, nft, calldata("ownerOf(uint256)", token_id)))[12:])

        await send(node, bob, nft, calldata("mint(address,uint256)", alice, 7))
        assert await owner_of(7) == alice
        assert await _balance(node, nft, alice) == 1
        with pytest.raises(Reverted, match="already minted"):
            await send(node, bob, nft, calldata("mint(address,uint256)", bob, 7))

        await send(node, alice, nft, calldata("transferFrom(address,address,uint256)", alice, bob, 7))
        assert await owner_of(7) == bob
        assert (await _balance(node, nft, alice), await _balance(node, nft, bob)) == (0, 1)
        with pytest.raises(Reverted, match="not owner nor approved"):
            await send(node, alice, nft, calldata("transferFrom(address,address,uint256)", bob, alice, 7))

        await send(node, bob, nft, calldata("setApprovalForAll(address,bool)", alice, True))
        assert await _uint(node, nft, "isApprovedForAll(address,address)", bob, alice) == 1
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

        assert await _uint(node, nft, "supportsInterface(bytes4)", bytes.fromhex("80ac58cd")) == 1
        assert await _uint(node, nft, "supportsInterface(bytes4)", bytes.fromhex("ffffffff")) == 0

    _on_chain(stack, run, scenario)


# --- the contracts that misbehave on purpose ----------------------------------------------------


def test_a_greedy_token_takes_twice_the_declared_amount_from_the_sender(stack, run):
    async def scenario(node):
        deployer, alice, bob = [await _unlocked(node, r) for r in ("deployer", "alice", "bob")]
        collector = _address("collector")
        token = await deploy(node, "GreedyToken", "Greedy", "GRD", 18, collector, sender=deployer)
        await send(node, alice, token, calldata("mint(address,uint256)", alice, 1_000))

        receipt = await send(node, alice, token, calldata("transfer(address,uint256)", bob, 100))
        assert await _balance(node, token, alice) == 800
        assert (await _balance(node, token, bob), await _balance(node, token, collector)) == (100, 100)
        transfers = [log for log in receipt["logs"] if log["topics"][0] == TRANSFER_TOPIC]
        assert [int(log["data"], 16) for log in transfers] == [100, 100]

    _on_chain(stack, run, scenario)


def test_paused_reverts_every_call_with_its_reason_and_answer42_answers_42(stack, run):
    async def scenario(node):
        deployer = await _unlocked(node, "deployer")
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

    _on_chain(stack, run, scenario)


# --- the contracts that move value past a calldata check ----------------------------------------


def test_an_eip3009_authorization_signed_by_eth_account_moves_tokens_once_and_only_for_its_payee(stack, run):
    async def scenario(node):
        deployer, relayer = await _unlocked(node, "deployer"), await _unlocked(node, "relayer")
        holder, payee = _address("authorizer"), await _unlocked(node, "payee")
        token = await deploy(node, "AuthToken", "Warden Auth Token", "WAT", 6, sender=deployer)
        await send(node, relayer, token, calldata("mint(address,uint256)", holder, 1_000))
        chain_id = int(await node.call("eth_chainId"), 16)
        now = int((await node.call("eth_getBlockByNumber", "latest", False))["timestamp"], 16)

        def document(primary: str, to: str, value: int, nonce: bytes, valid_after: int = 0) -> dict:
            return {
                "types": {"EIP712Domain": EIP712_DOMAIN, primary: AUTHORIZATION_FIELDS},
                "primaryType": primary,
                "domain": {
                    "name": "Warden Auth Token",
                    "version": "1",
                    "chainId": chain_id,
                    "verifyingContract": token,
                },
                "message": {
                    "from": holder,
                    "to": to,
                    "value": value,
                    "validAfter": valid_after,
                    "validBefore": now + 3600,
                    "nonce": nonce,
                },
            }

        def authorized(function: str, signed: dict, v: int, r: int, s: int, value: int | None = None) -> str:
            m = signed["message"]
            return calldata(
                function + AUTHORIZATION_ARGS,
                m["from"],
                m["to"],
                m["value"] if value is None else value,
                m["validAfter"],
                m["validBefore"],
                m["nonce"],
                v,
                r.to_bytes(32, "big"),
                s.to_bytes(32, "big"),
            )

        nonce = keccak(text="authorization 1")
        transfer = document("TransferWithAuthorization", payee, 300, nonce)
        # The contract's domain is the one eth-account hashes, and its type hashes are EIP-3009's.
        domain_separator = encode_typed_data(full_message=transfer).header
        assert await call(node, token, calldata("DOMAIN_SEPARATOR()")) == domain_separator
        fields = "(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
        for constant, kind in (
            ("TRANSFER_WITH_AUTHORIZATION_TYPEHASH()", "TransferWithAuthorization"),
            ("RECEIVE_WITH_AUTHORIZATION_TYPEHASH()", "ReceiveWithAuthorization"),
        ):
            assert await call(node, token, calldata(constant)) == keccak(text=kind + fields)
        signed = Account.sign_typed_data(_key("authorizer"), full_message=transfer)

        with pytest.raises(Reverted, match="invalid signature"):  # a value the holder did not sign
            await send(
                node,
                relayer,
                token,
                authorized("transferWithAuthorization", transfer, signed.v, signed.r, signed.s, value=301),
            )
        with pytest.raises(Reverted, match="upper half"):  # the signature's malleable twin (EIP-2)
            await send(
                node,
                relayer,
                token,
                authorized("transferWithAuthorization", transfer, 55 - signed.v, signed.r, SECP256K1N - signed.s),
            )
        with pytest.raises(Reverted, match="not 27 or 28"):
            await send(
                node,
                relayer,
                token,
                authorized("transferWithAuthorization", transfer, signed.v - 27, signed.r, signed.s),
            )
        assert await _uint(node, token, "authorizationState(address,bytes32)", holder, nonce) == 0

        # A third party submits it: the holder sends no transaction and the tokens move.
        receipt = await send(
            node, relayer, token, authorized("transferWithAuthorization", transfer, signed.v, signed.r, signed.s)
        )
        assert (await _balance(node, token, holder), await _balance(node, token, payee)) == (700, 300)
        assert _transfers(receipt, token) == [(holder, payee, 300)]
        [used] = [log for log in receipt["logs"] if log["topics"][0] == AUTHORIZATION_USED_TOPIC]
        assert used["topics"][1:] == ["0x" + bytes(12).hex() + holder[2:].lower(), "0x" + nonce.hex()]
        assert await _uint(node, token, "authorizationState(address,bytes32)", holder, nonce) == 1
        with pytest.raises(Reverted, match="authorization is used"):  # the nonce works once
            await send(
                node, relayer, token, authorized("transferWithAuthorization", transfer, signed.v, signed.r, signed.s)
            )

        # Not yet valid: the chain's clock must be past validAfter.
        early = document("TransferWithAuthorization", payee, 1, keccak(text="early"), valid_after=now + 1800)
        signed = Account.sign_typed_data(_key("authorizer"), full_message=early)
        with pytest.raises(Reverted, match="not yet valid"):
            await send(
                node, relayer, token, authorized("transferWithAuthorization", early, signed.v, signed.r, signed.s)
            )

        # ReceiveWithAuthorization: only its payee may submit it, and a Transfer signature is not one.
        receive = document("ReceiveWithAuthorization", payee, 200, keccak(text="authorization 2"))
        signed = Account.sign_typed_data(_key("authorizer"), full_message=receive)
        with pytest.raises(Reverted, match="caller must be the payee"):
            await send(
                node, relayer, token, authorized("receiveWithAuthorization", receive, signed.v, signed.r, signed.s)
            )
        with pytest.raises(Reverted, match="invalid signature"):
            await send(
                node, payee, token, authorized("transferWithAuthorization", receive, signed.v, signed.r, signed.s)
            )
        receipt = await send(
            node, payee, token, authorized("receiveWithAuthorization", receive, signed.v, signed.r, signed.s)
        )
        assert (await _balance(node, token, holder), await _balance(node, token, payee)) == (500, 500)
        assert _transfers(receipt, token) == [(holder, payee, 200)]

    _on_chain(stack, run, scenario)


def test_a_forwarder_delivers_tokens_and_value_to_whoever_is_named(stack, run):
    async def scenario(node):
        deployer, alice = await _unlocked(node, "deployer"), await _unlocked(node, "alice")
        beneficiary, anyone = _address("forwarder beneficiary"), _address("forwarder recipient")
        token = await deploy(node, "WardenToken", "Forwarded", "FWD", 18, sender=deployer)
        forwarder = await deploy(node, "Forwarder", beneficiary, sender=deployer)
        paused = await deploy(node, "Paused", sender=deployer)
        await send(node, alice, token, calldata("mint(address,uint256)", alice, 1_000))
        await send(node, alice, token, calldata("approve(address,uint256)", forwarder, 500))

        # forward: one hop, straight from the caller to the recipient.
        receipt = await send(node, alice, forwarder, calldata("forward(address,address,uint256)", token, anyone, 100))
        assert _transfers(receipt, token) == [(alice, anyone, 100)]
        # forwardVia: two hops, through the forwarder, which keeps nothing.
        receipt = await send(
            node, alice, forwarder, calldata("forwardVia(address,address,uint256)", token, anyone, 150)
        )
        assert _transfers(receipt, token) == [(alice, forwarder, 150), (forwarder, anyone, 150)]
        assert (
            await _balance(node, token, alice),
            await _balance(node, token, anyone),
            await _balance(node, token, forwarder),
        ) == (750, 250, 0)
        with pytest.raises(Reverted, match="insufficient allowance"):  # the token's own reason comes back
            await send(node, alice, forwarder, calldata("forward(address,address,uint256)", token, anyone, 251))

        # forwardValue: the call's value goes on to `to`; receive(): plain value goes to the beneficiary.
        before = await _ether(node, anyone), await _ether(node, beneficiary)
        await send(node, alice, forwarder, calldata("forwardValue(address)", anyone), value=7 * 10**15)
        await send(node, alice, forwarder, "0x", value=3 * 10**15)
        assert (await _ether(node, anyone) - before[0], await _ether(node, beneficiary) - before[1]) == (
            7 * 10**15,
            3 * 10**15,
        )
        assert await _ether(node, forwarder) == 0
        with pytest.raises(Reverted, match="transfers paused"):  # a refusing recipient's reason comes back
            await send(node, alice, forwarder, calldata("forwardValue(address)", paused), value=1)

    _on_chain(stack, run, scenario)


def test_a_multicall_spends_an_allowance_given_to_it_and_routes_value_to_a_third_address(stack, run):
    async def scenario(node):
        deployer, agent = await _unlocked(node, "deployer"), await _unlocked(node, "agent")
        taker, payee = _address("multicall taker"), _address("multicall payee")
        token = await deploy(node, "WardenToken", "Batched", "BAT", 18, sender=deployer)
        multicall = await deploy(node, "Multicall", sender=deployer)
        await send(node, agent, token, calldata("mint(address,uint256)", agent, 1_000))
        await send(node, agent, token, calldata("approve(address,uint256)", multicall, 400))

        def aggregate(*calls: tuple[str, int, str]) -> str:
            return calldata(
                "aggregate((address,uint256,bytes)[])",
                [(target, value, bytes.fromhex(data.removeprefix("0x"))) for target, value, data in calls],
            )

        batch = aggregate(
            (token, 0, calldata("transferFrom(address,address,uint256)", agent, taker, 250)),
            (payee, 5 * 10**15, "0x"),
            (token, 0, calldata("balanceOf(address)", taker)),
        )
        before = await _ether(node, payee)
        receipt = await send(node, agent, multicall, batch, value=5 * 10**15)
        assert _transfers(receipt, token) == [(agent, taker, 250)]
        assert (await _balance(node, token, agent), await _balance(node, token, taker)) == (750, 250)
        assert await _uint(node, token, "allowance(address,address)", agent, multicall) == 150
        assert await _ether(node, payee) - before == 5 * 10**15
        assert await _ether(node, multicall) == 0

        # What each call returned comes back (read here with a call on the new state).
        [results] = abi_decode(
            ["bytes[]"],
            await call(
                node,
                multicall,
                aggregate((token, 0, calldata("balanceOf(address)", taker)), (token, 0, calldata("decimals()"))),
            ),
        )
        assert [int.from_bytes(result, "big") for result in results] == [250, 18]

        # A failing call reverts the batch with its own reason; the values must add up to msg.value.
        with pytest.raises(Reverted, match="insufficient allowance"):
            await send(
                node,
                agent,
                multicall,
                aggregate((token, 0, calldata("transferFrom(address,address,uint256)", agent, taker, 151))),
            )
        with pytest.raises(Reverted, match="do not add up"):
            await send(node, agent, multicall, aggregate((payee, 1, "0x")), value=2)
        assert (await _balance(node, token, agent), await _balance(node, token, taker)) == (750, 250)

    _on_chain(stack, run, scenario)
