"""``warden fund``: native currency for an address on a local development node (Anvil), so that an
agent's new signing key can pay for what it sends. It adds to the balance through Anvil's
``anvil_setBalance``; a node that is not Anvil refuses, and the command says to send a transfer."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from infra.cli.output import add_json_flag, print_json
from runtime.config import Settings, load
from runtime.registry import REGISTRY
from runtime.rpc import JsonRpc, RpcError
from schemas.chains import Family
from schemas.errors import WardenError
from schemas.fields import format_native_amount, parse_address, parse_native_amount


class FundError(WardenError):
    """What ``warden fund`` could not do, and what to do instead."""


@dataclass(frozen=True)
class Funded:
    chain: str
    address: str
    rpc_url: str
    added_wei: int
    balance_wei: int


def _agent_address(settings: Settings, agent_id: str) -> str:
    """The agent's newest active ethereum signing address, from the key store (public)."""
    from signer.custody_wiring import keystore_from_settings  # custody: only when funding by agent

    keys = keystore_from_settings(settings).list_keys("admin:local-admin", agent_id=agent_id, chain="ethereum")
    active: list[str] = [k.address for k in keys if k.active]
    if not active:
        raise FundError(
            f"agent {agent_id!r} has no active ethereum signing key on this WARDEN_HOME ({settings.home})",
            next_step=f"an admin runs `warden keys provision --agent {agent_id} --chain ethereum` first",
        )
    return active[-1]


async def fund(settings: Settings, chain: str, address: str, wei: int) -> Funded:
    """Add ``wei`` to ``address``'s balance on ``chain``'s node, which must be Anvil."""
    network = REGISTRY.get(chain)
    if network.family is not Family.EVM:
        raise FundError(
            f"{chain!r} is {network.family.a_network}; warden fund funds an EVM address on Anvil",
            next_step="on the local Solana node, ask for an airdrop (`requestAirdrop`, docs/solana.md)",
        )
    url = settings.rpc_url_for(chain)
    node = JsonRpc(url, timeout_s=30)
    try:
        balance = int(await node.call("eth_getBalance", address, "latest"), 16)
        try:
            await node.call("anvil_setBalance", address, hex(balance + wei))
        except RpcError as exc:
            raise FundError(
                f"the node of {chain} at {url} refused anvil_setBalance ({exc.message}): it is not Anvil",
                next_step=f"send {address} a transfer from an account of yours on {chain}",
            ) from None
        after = int(await node.call("eth_getBalance", address, "latest"), 16)
    finally:
        await node.close()
    return Funded(chain, address, url, wei, after)


def cmd_fund(args: argparse.Namespace) -> int:
    settings = load()
    try:
        wei = parse_native_amount(args.value)
    except ValueError as exc:
        raise FundError(f"--value {args.value!r}: {exc}", next_step="give an amount of ETH such as 10 or 0.5") from None
    try:
        address = parse_address(args.address) if args.address else _agent_address(settings, args.agent)
    except ValueError as exc:
        raise FundError(f"--address {args.address!r}: {exc}") from None
    done = asyncio.run(fund(settings, args.chain, address, wei))
    if args.json:
        print_json({**done.__dict__, "added_wei": str(done.added_wei), "balance_wei": str(done.balance_wei)})
    else:
        print(
            f"funded {done.address} on {done.chain} ({done.rpc_url}): +{format_native_amount(done.added_wei)}, "
            f"balance {format_native_amount(done.balance_wei)}"
        )
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_fund)
    add_json_flag(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent", help="fund this agent's ethereum signing address (from `warden keys provision`)")
    who.add_argument("--address", help="fund this address")
    p.add_argument("--value", required=True, help="how much to add, in the native unit (ETH), e.g. 10")
    p.add_argument("--chain", default="anvil", help="an EVM network whose node is Anvil (default: anvil)")
