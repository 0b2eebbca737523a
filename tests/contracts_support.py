"""What the contract tests share: a fixed key and address per role, funded and unlocked on Anvil,
calls that read a uint or a balance, and a scenario run against the session's Anvil."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from eth_account import Account
from eth_utils import keccak

from infra.contracts import call, calldata
from infra.stack.local import LocalStack
from runtime.rpc import JsonRpc

SECP256K1N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()


def role_key(role: str) -> bytes:
    """A fixed private key per role, so a failure reproduces with the same addresses."""
    return keccak(text=f"warden tests/test_contracts.py {role}")


def role_address(role: str) -> str:
    return str(Account.from_key(role_key(role)).address)


async def unlocked_role(node: JsonRpc, role: str) -> str:
    """The role's address, funded and unlocked on Anvil so it can send transactions."""
    address = role_address(role)
    await node.call("anvil_setBalance", address, hex(10**20))
    await node.call("anvil_impersonateAccount", address)
    return address


async def call_uint(node: JsonRpc, to: str, signature: str, *args: Any) -> int:
    return int.from_bytes(await call(node, to, calldata(signature, *args)), "big")


async def token_balance(node: JsonRpc, token: str, holder: str) -> int:
    return await call_uint(node, token, "balanceOf(address)", holder)


def run_on_chain(
    stack: LocalStack, run: Callable[[Awaitable[None]], None], scenario: Callable[[JsonRpc], Awaitable[None]]
) -> None:
    """Run ``scenario(node)`` against the session's Anvil, closing the client afterwards."""

    async def go() -> None:
        node = JsonRpc(stack.settings.rpc_url, timeout_s=120)
        try:
            await scenario(node)
        finally:
            await node.close()

    run(go())
