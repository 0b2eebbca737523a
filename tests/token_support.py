"""What the token guardrail tests share: the test tokens deployed and minted on the session's Anvil,
the asset limits a policy gives them, and a holder's balance."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from eth_abi import decode as abi_decode

from infra import contracts
from runtime.config import Settings
from runtime.rpc import JsonRpc

DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # Anvil's first unlocked dev account
UNIT = 10**6  # the test tokens have 6 decimals
ALICE = "0x00000000000000000000000000000000000A11cE"
COLLECTOR = "0x000000000000000000000000000000000000C011"


T = TypeVar("T")


async def on_anvil(settings: Settings, work: Callable[[JsonRpc], Awaitable[T]]) -> T:
    """``await work(node)`` with a client of the stack's Anvil, closed afterwards."""
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
    try:
        return await work(node)
    finally:
        await node.close()


async def deploy_tokens(settings: Settings) -> dict[str, str]:
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
    try:
        return {
            "token": await contracts.deploy(node, "WardenToken", "Warden USD", "WUSD", 6, sender=DEPLOYER),
            "greedy": await contracts.deploy(node, "GreedyToken", "Greedy", "GRD", 6, COLLECTOR, sender=DEPLOYER),
            "router": await contracts.deploy(node, "PullRouter", sender=DEPLOYER),
        }
    finally:
        await node.close()


async def mint_tokens(settings: Settings, token: str, to: str, units: int) -> None:
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
    try:
        await contracts.send(node, DEPLOYER, token, contracts.calldata("mint(address,uint256)", to, units))
    finally:
        await node.close()


async def balance_of(settings: Settings, token: str, who: str) -> int:
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
    try:
        (balance,) = abi_decode(
            ["uint256"], await contracts.call(node, token, contracts.calldata("balanceOf(address)", who))
        )
        return int(balance)
    finally:
        await node.close()


def token_assets(deployed: dict[str, str], **limits: Any) -> tuple[dict[str, Any], ...]:
    token = {"chain": "anvil", "token": deployed["token"], "symbol": "WUSD", "decimals": 6, **limits}
    greedy = {"chain": "anvil", "token": deployed["greedy"], "symbol": "GRD", "decimals": 6, "max_per_tx": "100"}
    return token, greedy
