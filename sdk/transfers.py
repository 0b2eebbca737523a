"""A plain transfer, ``to`` and ``value`` in the network's currency, as each chain family writes
one, so an agent asks for it the same way on every network: an EVM network's intent carries the
two fields and the signer builds the transaction; a Solana network's carries a System transfer of
lamports from the agent's address, built here over a recent blockhash of the network's node, and
the judge reads it like any Solana transaction; a Bitcoin network's carries a PSBT paying from the
agent's unspent outputs on the network's node (`btc.payments`) that no open payment of the agent
spends already, its change back to the agent."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from solders.hash import Hash
from solders.pubkey import Pubkey

from btc import addresses, payments, wallet
from runtime import bitcoin as bitcoin_node
from runtime import solana as solana_node
from runtime.config import Settings
from runtime.registry import REGISTRY
from runtime.rpc import JsonRpc
from schemas.amounts import SATOSHIS, U64, checked
from schemas.chains import Family
from schemas.codes import Code
from schemas.errors import WardenError
from schemas.families import FORMS
from schemas.fields import parse_bitcoin_address, parse_solana_address, parse_token_amount
from schemas.outcomes import IntentRejected
from schemas.policy import AgentPolicy
from sdk import solana
from sdk.records import open_bitcoin_inputs


class TransferInvalid(WardenError, ValueError):
    """The transfer cannot be written: the message names the field and what it takes."""


async def transfer_fields(
    settings: Settings, chain: str, policy: AgentPolicy | None, to: str, value: str, taken: Iterable[str] = ()
) -> dict[str, Any]:
    """The intent fields of a transfer of ``value`` (a decimal in ``chain``'s currency) to ``to``
    from the agent whose policy in force is ``policy`` (None: it has none). ``taken``: Bitcoin
    outputs (``txid:vout``) to leave out besides those the agent's open payments spend (what a
    refusal BITCOIN_INPUT_CLAIMED named: `claimed_inputs`)."""
    return await _WRITERS[REGISTRY.get(chain).family](settings, chain, policy, to, value, frozenset(taken))


def claimed_inputs(outcome: object) -> frozenset[str]:
    """The outputs a refusal BITCOIN_INPUT_CLAIMED names as spent by another open intent of the
    agent (none for any other outcome): a payment written again leaves them out. Two payments
    written at once from the same coins: the judge approves one, refuses the other this way."""
    if not isinstance(outcome, IntentRejected) or outcome.code != Code.BITCOIN_INPUT_CLAIMED or not outcome.verdicts:
        return frozenset()
    claimed = outcome.verdicts[-1].facts.get("claimed")
    return frozenset(claimed) if isinstance(claimed, dict) else frozenset()


async def _evm(
    _settings: Settings, _chain: str, _policy: AgentPolicy | None, to: str, value: str, _taken: frozenset[str]
) -> dict[str, Any]:
    # The signer writes the transaction from these, with the agent's key it opens.
    return {"to": to, "value": value}


async def _solana(
    settings: Settings, chain: str, policy: AgentPolicy | None, to: str, value: str, _taken: frozenset[str]
) -> dict[str, Any]:
    # The transfer is from the address the signer signs for: the policy's, whose key it checks.
    if policy is None or policy.solana is None:
        raise TransferInvalid(
            f"chain {chain!r}: the agent's policy names no Solana address (solana.address); an admin sets it "
            "with `warden agents update` once the agent has a Solana key"
        )
    sender = policy.solana.address
    form = FORMS[Family.SOLANA]
    try:
        recipient = parse_solana_address(to)
    except ValueError as exc:
        raise TransferInvalid(f"to: {exc}") from None
    try:
        lamports = parse_token_amount(value, form.native_decimals, REGISTRY.get(chain).currency, form.base_unit)
        checked(U64, lamports, "the lamports of the transfer")
    except ValueError as exc:
        raise TransferInvalid(f"value: {exc}") from None
    node = JsonRpc(settings.rpc_url_for(chain), timeout_s=30)
    try:
        recent = Hash.from_string(await solana_node.latest_blockhash(node))
    finally:
        await node.close()
    payer = Pubkey.from_string(sender)
    raw = solana.unsigned(payer, [solana.sol_transfer(payer, Pubkey.from_string(recipient), lamports)], recent)
    return {"intent_type": "solana_transaction", "solana_transaction": base64.b64encode(raw).decode()}


# The fee rate a plain Bitcoin payment offers, satoshis per virtual byte: the policy bounds what it
# may be (bitcoin.max_fee_rate_sat_vb); a PSBT written elsewhere names its own.
BITCOIN_FEE_RATE = 2


async def _bitcoin(
    settings: Settings, chain: str, policy: AgentPolicy | None, to: str, value: str, taken: frozenset[str]
) -> dict[str, Any]:
    # Paid from the wallet of the key the signer signs with: the policy's, which it checks.
    if policy is None or policy.bitcoin is None:
        raise TransferInvalid(
            f"chain {chain!r}: the agent's policy names no Bitcoin key (bitcoin.public_key); an admin sets it "
            "with `warden agents update` once the agent has a Bitcoin key"
        )
    network = addresses.NETWORK_OF_CHAIN.get(chain)
    if network is None:
        raise TransferInvalid(f"chain {chain!r}: Warden writes payments on {', '.join(addresses.NETWORK_OF_CHAIN)}")
    try:
        recipient = parse_bitcoin_address(to)
    except ValueError as exc:
        raise TransferInvalid(f"to: {exc}") from None
    if network not in addresses.networks_of(recipient):
        raise TransferInvalid(f"to: {recipient} is an address of another Bitcoin network than {chain}")
    form = FORMS[Family.BITCOIN]
    try:
        sats = parse_token_amount(value, form.native_decimals, REGISTRY.get(chain).currency, form.base_unit)
        checked(SATOSHIS, sats, "the satoshis of the payment")
    except ValueError as exc:
        raise TransferInvalid(f"value: {exc}") from None
    key = bytes.fromhex(policy.bitcoin.public_key)
    # An output another payment of the agent's spends is no coin to pay from: the judge refuses a
    # second intent spending it, so that no two intents ever claim one transaction.
    taken = taken | await open_bitcoin_inputs(settings, policy.agent_id, chain)
    node = JsonRpc(settings.rpc_url_for(chain), timeout_s=30)
    try:
        # Outputs in a block only: the judge signs nothing that spends one not mined yet.
        coins = [
            payments.Coin(utxo.txid, utxo.vout, utxo.amount, utxo.script)
            for address in wallet.addresses(key, network)
            for utxo in await bitcoin_node.unspent(node, address)
            if utxo.confirmations >= 1 and f"{utxo.txid}:{utxo.vout}" not in taken
        ]
    finally:
        await node.close()
    try:
        raw = payments.payment(coins, addresses.script_of(recipient), sats, wallet.own_scripts(key), BITCOIN_FEE_RATE)
    except payments.PaymentImpossible as exc:
        raise TransferInvalid(
            f"value: {exc} (outputs in a block only, and none another open payment of the agent spends: wait for "
            "the next block, or for those payments to be final)"
        ) from None
    return {"intent_type": "bitcoin_psbt", "bitcoin_psbt": base64.b64encode(raw).decode()}


_Writer = Callable[[Settings, str, AgentPolicy | None, str, str, frozenset[str]], Awaitable[dict[str, Any]]]
_WRITERS: dict[Family, _Writer] = {
    Family.EVM: _evm,
    Family.SOLANA: _solana,
    Family.BITCOIN: _bitcoin,
}
