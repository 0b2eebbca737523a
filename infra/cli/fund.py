"""``warden fund``: native currency for an address on a local development node, so that an agent's
new signing key can pay for what it sends. On an EVM network it adds to the balance through
Anvil's ``anvil_setBalance``; on a Solana network it asks the node for an airdrop (surfpool's, or
a test validator's) and waits until it lands; on the local Bitcoin regtest node it pays from the
funder key that node mines to (`infra.stack.bitcoin`) and mines the payment into a block. A node
that does none of these refuses, and the command says to send a transfer."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from btc import addresses, payments, signing, wallet
from infra.cli.output import add_json_flag, print_json
from runtime import bitcoin, solana
from runtime.config import Settings, load
from runtime.registry import REGISTRY
from runtime.rpc import JsonRpc, NoRpc, RpcError, redacted
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
    rpc_url: str  # without the user and password it may carry (btcd's)
    # In the network's base unit (`unit`: wei, lamports, satoshis).
    added: int
    balance: int
    unit: str


def _agent_address(settings: Settings, agent_id: str, chain: str) -> str:
    """The agent's newest active signing address on ``chain``, from the key store (public). A
    Bitcoin key's address is per network: its P2WPKH address on ``chain``'s, from its public key."""
    from signer.custody_wiring import keystore_from_settings  # custody: only when funding by agent

    family = REGISTRY.get(chain).family
    key_chain = KEY_CHAIN[family]
    keys = keystore_from_settings(settings).list_keys("admin:local-admin", agent_id=agent_id, chain=key_chain)
    active = [k for k in keys if k.active]
    if not active:
        raise FundError(
            f"agent {agent_id!r} has no active {key_chain} signing key on this WARDEN_HOME ({settings.home})",
            next_step=f"an admin runs `warden keys provision --agent {agent_id} --chain {key_chain}` first",
        )
    if family is Family.BITCOIN:
        # Where a payment to the agent lands: its P2WPKH address on the chain's network.
        return wallet.addresses(
            bytes.fromhex(active[-1].public_key_hex), addresses.NETWORK_OF_CHAIN.get(chain, "main")
        )[0]
    return active[-1].address


async def fund(settings: Settings, chain: str, address: str, amount: int) -> Funded:
    """Add ``amount`` (base units) to ``address``'s balance on ``chain``'s local node."""
    family = REGISTRY.get(chain).family
    try:
        url = settings.rpc_url_for(chain)
    except NoRpc as exc:  # no RPC configured for it, or the local node is not running
        raise FundError(
            str(exc), next_step=f"or send {address} a transfer from an account of yours on {chain}"
        ) from None
    node = JsonRpc(url, timeout_s=30)
    try:
        after = await _FUNDERS[family](settings, node, chain, address, amount)
    except RpcError as exc:
        raise FundError(
            f"the node of {chain} at {redacted(url)} refused to add funds ({exc.message}): it is not a local "
            "development node",
            next_step=f"send {address} a transfer from an account of yours on {chain}",
        ) from None
    finally:
        await node.close()
    return Funded(chain, address, redacted(url), amount, after, FORMS[family].base_unit)


async def _anvil(settings: Settings, node: JsonRpc, chain: str, address: str, wei: int) -> int:
    balance = int(await node.call("eth_getBalance", address, "latest"), 16)
    await node.call("anvil_setBalance", address, hex(balance + wei))
    return int(await node.call("eth_getBalance", address, "latest"), 16)


async def _airdrop(settings: Settings, node: JsonRpc, chain: str, address: str, lamports: int) -> int:
    status = await solana.landed(node, await node.call("requestAirdrop", address, lamports), "confirmed", 60)
    if status.error is not None:
        raise FundError(f"the airdrop to {address} on {chain} failed: {status.error}")
    return await solana.balance(node, address)


# The funding payment's fee rate, satoshis a vbyte (btcd relays from 1), and what is read of the
# funder's coins beyond the amount, for that fee.
FUND_FEE_RATE = 2
FEE_MARGIN = 100_000


async def _pay_from_funder(settings: Settings, node: JsonRpc, chain: str, address: str, sats: int) -> int:
    """Pay ``sats`` to ``address`` from the local regtest node's funder (its mature coins), mine the
    payment into a block, and return what ``address`` holds then (its unspent outputs)."""
    from infra.stack.bitcoin import funder_address, funder_key_file, load_funder_key

    seed = load_funder_key(settings.home) if chain == "bitcoin-regtest" else None
    if seed is None:
        raise FundError(
            f"{chain}'s node is not the local regtest node of this WARDEN_HOME (no funder key at "
            f"{funder_key_file(settings.home)}): nothing here holds coins to pay {address} from",
            next_step=f"send {address} a payment from a wallet of yours on {chain}",
        )
    recipient = _regtest_script(address)
    coins = await bitcoin.unspent(node, funder_address(seed), enough=sats + FEE_MARGIN)
    try:
        raw = _payment(seed, coins, recipient, sats)
    finally:
        seed[:] = bytes(len(seed))
    try:
        txid = await bitcoin.send_raw(node, raw)
    except RpcError as exc:
        raise FundError(
            f"the node refused the payment of {sats} satoshis to {address}: {exc.message}",
            next_step="fund with another amount (at least a few hundred satoshis), or see the node's log (`warden status`)",
        ) from None
    await bitcoin.mine(node, 1)
    status = await bitcoin.transaction(node, txid)
    if status is None or status.confirmations < 1:
        raise FundError(
            f"the payment {txid} to {address} is not in the block mined after it",
            next_step="see the node's log (`warden status` names it) and fund again",
        )
    return sum(coin.amount for coin in await bitcoin.unspent(node, address))


def _regtest_script(address: str) -> bytes:
    """``address``'s scriptPubKey, if it is an address on regtest; FundError otherwise."""
    try:
        parsed = addresses.parse_address(address)
    except ValueError:
        parsed = None
    if parsed is None or "regtest" not in addresses.networks_of(parsed):
        raise FundError(
            f"{address!r} is not an address on regtest",
            next_step="give a regtest address (bcrt1q…, bcrt1p…; m…, n…, 2… in base58)",
        )
    return addresses.script_of(parsed)


def _payment(seed: bytearray, coins: Sequence[bitcoin.Utxo], recipient: bytes, sats: int) -> bytes:
    """A signed transaction paying ``sats`` to ``recipient`` from the funder's ``coins`` at
    `FUND_FEE_RATE`, its change back to the funder: written and signed as an agent's payment is."""
    own = wallet.own_scripts(wallet.public_key(seed))
    mine = [payments.Coin(c.txid, c.vout, c.amount, c.script) for c in coins if own.owns(c.script) and c.amount]
    try:
        psbt = payments.payment(mine, recipient, sats, own, FUND_FEE_RATE)
    except payments.PaymentImpossible as exc:
        raise FundError(
            f"the funder cannot pay {format_token_amount(sats, 8)} BTC: {exc}",
            next_step="fund a smaller amount, or wait: the stack mines a block a second, and each block's coin "
            "matures 100 blocks later",
        ) from None
    return signing.sign(psbt, seed).raw


_FUNDERS: dict[Family, Callable[[Settings, JsonRpc, str, str, int], Awaitable[int]]] = {
    Family.EVM: _anvil,
    Family.SOLANA: _airdrop,
    Family.BITCOIN: _pay_from_funder,
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
        address = form.address(args.address) if args.address else _agent_address(settings, args.agent, args.chain)
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
    p.add_argument("--value", required=True, help="how much to add, in the network's currency (ETH, SOL, BTC), e.g. 10")
    p.add_argument(
        "--chain",
        default="anvil",
        help="a network whose node is local: Anvil for an EVM one (default: anvil), surfpool for solana-local, "
        "btcd for bitcoin-regtest",
    )
