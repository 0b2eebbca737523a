"""``warden fund``: native currency for an address on a local development node, so that an agent's
new signing key can pay for what it sends. On an EVM network it adds to the balance through
Anvil's ``anvil_setBalance``; on a Solana network it asks the node for an airdrop (surfpool's, or
a test validator's) and waits until it lands. A node that does neither refuses, and the command
says to send a transfer."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from infra.cli.output import add_json_flag, print_json
from runtime import solana
from runtime.config import Settings, load
from runtime.registry import REGISTRY
from runtime.rpc import JsonRpc, RpcError
from schemas.chains import KEY_CHAIN, Family
from schemas.errors import WardenError
from schemas.families import FORMS
from schemas.fields import format_token_amount, parse_token_amount


class FundError(WardenError):
    """What ``warden fund`` could not do, and what to do instead."""


@dataclass(frozen=True)
class Funded:
    chain: str
    address: str
    rpc_url: str
    # In the network's base unit (`unit`: wei, lamports).
    added: int
    balance: int
    unit: str


def _agent_address(settings: Settings, agent_id: str, family: Family) -> str:
    """The agent's newest active signing address of ``family``, from the key store (public)."""
    from signer.custody_wiring import keystore_from_settings  # custody: only when funding by agent

    key_chain = KEY_CHAIN[family]
    keys = keystore_from_settings(settings).list_keys("admin:local-admin", agent_id=agent_id, chain=key_chain)
    active: list[str] = [k.address for k in keys if k.active]
    if not active:
        raise FundError(
            f"agent {agent_id!r} has no active {key_chain} signing key on this WARDEN_HOME ({settings.home})",
            next_step=f"an admin runs `warden keys provision --agent {agent_id} --chain {key_chain}` first",
        )
    return active[-1]


async def fund(settings: Settings, chain: str, address: str, amount: int) -> Funded:
    """Add ``amount`` (base units) to ``address``'s balance on ``chain``'s local node."""
    family = REGISTRY.get(chain).family
    url = settings.rpc_url_for(chain)
    node = JsonRpc(url, timeout_s=30)
    try:
        after = await _FUNDERS[family](node, chain, address, amount)
    except RpcError as exc:
        raise FundError(
            f"the node of {chain} at {url} refused to add funds ({exc.message}): it is not a local development node",
            next_step=f"send {address} a transfer from an account of yours on {chain}",
        ) from None
    finally:
        await node.close()
    return Funded(chain, address, url, amount, after, FORMS[family].base_unit)


async def _anvil(node: JsonRpc, chain: str, address: str, wei: int) -> int:
    balance = int(await node.call("eth_getBalance", address, "latest"), 16)
    await node.call("anvil_setBalance", address, hex(balance + wei))
    return int(await node.call("eth_getBalance", address, "latest"), 16)


async def _airdrop(node: JsonRpc, chain: str, address: str, lamports: int) -> int:
    status = await solana.landed(node, await node.call("requestAirdrop", address, lamports), "confirmed", 60)
    if status.error is not None:
        raise FundError(f"the airdrop to {address} on {chain} failed: {status.error}")
    return await solana.balance(node, address)


_FUNDERS: dict[Family, Callable[[JsonRpc, str, str, int], Awaitable[int]]] = {
    Family.EVM: _anvil,
    Family.SOLANA: _airdrop,
}


def cmd_fund(args: argparse.Namespace) -> int:
    settings = load()
    network = REGISTRY.get(args.chain)
    form = FORMS[network.family]
    try:
        amount = parse_token_amount(args.value, form.native_decimals, network.currency, form.base_unit)
    except ValueError as exc:
        raise FundError(
            f"--value {args.value!r}: {exc}", next_step=f"give an amount of {network.currency} such as 10 or 0.5"
        ) from None
    try:
        address = form.address(args.address) if args.address else _agent_address(settings, args.agent, form.family)
    except ValueError as exc:
        raise FundError(f"--address {args.address!r}: {exc}") from None
    done = asyncio.run(fund(settings, args.chain, address, amount))
    if args.json:
        print_json({**done.__dict__, "added": str(done.added), "balance": str(done.balance)})
    else:
        print(
            f"funded {done.address} on {done.chain} ({done.rpc_url}): "
            f"+{format_token_amount(done.added, form.native_decimals)} {network.currency}, "
            f"balance {format_token_amount(done.balance, form.native_decimals)} {network.currency}"
        )
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_fund)
    add_json_flag(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--agent", help="fund this agent's signing address of the network's family (`warden keys provision`)"
    )
    who.add_argument("--address", help="fund this address")
    p.add_argument("--value", required=True, help="how much to add, in the network's currency (ETH, SOL), e.g. 10")
    p.add_argument(
        "--chain",
        default="anvil",
        help="a network whose node is local: Anvil for an EVM one (default: anvil), surfpool for solana-local",
    )
