"""The test contracts of infra/contracts that move value past a calldata check, on the session's
Anvil: an EIP-3009 authorization moves tokens once and only for its payee, a forwarder delivers
to whoever is named, and a multicall spends an allowance given to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from infra.contracts import Reverted, call, calldata, deploy, send
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


async def _ether(node: JsonRpc, holder: str) -> int:
    return int(await node.call("eth_getBalance", holder, "latest"), 16)


def _transfers(receipt: dict[str, Any], token: str) -> list[tuple[str, str, int]]:
    """The receipt's ERC-20 Transfer logs emitted by ``token``, as (from, to, amount)."""
    return [
        (to_checksum_address(log["topics"][1][-40:]), to_checksum_address(log["topics"][2][-40:]), int(log["data"], 16))
        for log in receipt["logs"]
        if log["topics"][0] == TRANSFER_TOPIC and log["address"].lower() == token.lower()
    ]


def test_an_eip3009_authorization_signed_by_eth_account_moves_tokens_once_and_only_for_its_payee(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    async def scenario(node: JsonRpc) -> None:
        deployer, relayer = await unlocked_role(node, "deployer"), await unlocked_role(node, "relayer")
        holder, payee = role_address("authorizer"), await unlocked_role(node, "payee")
        token = await deploy(node, "AuthToken", "Warden Auth Token", "WAT", 6, sender=deployer)
        await send(node, relayer, token, calldata("mint(address,uint256)", holder, 1_000))
        chain_id = int(await node.call("eth_chainId"), 16)
        now = int((await node.call("eth_getBlockByNumber", "latest", False))["timestamp"], 16)

        def document(primary: str, to: str, value: int, nonce: bytes, valid_after: int = 0) -> dict[str, Any]:
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

        def authorized(function: str, signed: dict[str, Any], v: int, r: int, s: int, value: int | None = None) -> str:
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
        signed = Account.sign_typed_data(role_key("authorizer"), full_message=transfer)

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
        assert await call_uint(node, token, "authorizationState(address,bytes32)", holder, nonce) == 0

        # A third party submits it: the holder sends no transaction and the tokens move.
        receipt = await send(
            node, relayer, token, authorized("transferWithAuthorization", transfer, signed.v, signed.r, signed.s)
        )
        assert (await token_balance(node, token, holder), await token_balance(node, token, payee)) == (700, 300)
        assert _transfers(receipt, token) == [(holder, payee, 300)]
        [used] = [log for log in receipt["logs"] if log["topics"][0] == AUTHORIZATION_USED_TOPIC]
        assert used["topics"][1:] == ["0x" + bytes(12).hex() + holder[2:].lower(), "0x" + nonce.hex()]
        assert await call_uint(node, token, "authorizationState(address,bytes32)", holder, nonce) == 1
        with pytest.raises(Reverted, match="authorization is used"):  # the nonce works once
            await send(
                node, relayer, token, authorized("transferWithAuthorization", transfer, signed.v, signed.r, signed.s)
            )

        # Not yet valid: the chain's clock must be past validAfter.
        early = document("TransferWithAuthorization", payee, 1, keccak(text="early"), valid_after=now + 1800)
        signed = Account.sign_typed_data(role_key("authorizer"), full_message=early)
        with pytest.raises(Reverted, match="not yet valid"):
            await send(
                node, relayer, token, authorized("transferWithAuthorization", early, signed.v, signed.r, signed.s)
            )

        # ReceiveWithAuthorization: only its payee may submit it, and a Transfer signature is not one.
        receive = document("ReceiveWithAuthorization", payee, 200, keccak(text="authorization 2"))
        signed = Account.sign_typed_data(role_key("authorizer"), full_message=receive)
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
        assert (await token_balance(node, token, holder), await token_balance(node, token, payee)) == (500, 500)
        assert _transfers(receipt, token) == [(holder, payee, 200)]

    run_on_chain(stack, run, scenario)


def test_a_forwarder_delivers_tokens_and_value_to_whoever_is_named(stack: LocalStack, run: Callable[..., Any]) -> None:
    async def scenario(node: JsonRpc) -> None:
        deployer, alice = await unlocked_role(node, "deployer"), await unlocked_role(node, "alice")
        beneficiary, anyone = role_address("forwarder beneficiary"), role_address("forwarder recipient")
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
            await token_balance(node, token, alice),
            await token_balance(node, token, anyone),
            await token_balance(node, token, forwarder),
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

    run_on_chain(stack, run, scenario)


def test_a_multicall_spends_an_allowance_given_to_it_and_routes_value_to_a_third_address(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    async def scenario(node: JsonRpc) -> None:
        deployer, agent = await unlocked_role(node, "deployer"), await unlocked_role(node, "agent")
        taker, payee = role_address("multicall taker"), role_address("multicall payee")
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
        assert (await token_balance(node, token, agent), await token_balance(node, token, taker)) == (750, 250)
        assert await call_uint(node, token, "allowance(address,address)", agent, multicall) == 150
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
        assert (await token_balance(node, token, agent), await token_balance(node, token, taker)) == (750, 250)

    run_on_chain(stack, run, scenario)
