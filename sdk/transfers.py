"""A plain transfer, ``to`` and ``value`` in the network's currency, as each chain family writes
one, so an agent asks for it the same way on every network: an EVM network's intent carries the
two fields and the signer builds the transaction; a Solana network's carries a System transfer of
lamports from the agent's address, built here over a recent blockhash of the network's node, and
the judge reads it like any Solana transaction."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

from solders.hash import Hash
from solders.pubkey import Pubkey

from runtime import solana as solana_node
from runtime.config import Settings
from runtime.registry import REGISTRY
from runtime.rpc import JsonRpc
from schemas.chains import Family
from schemas.errors import WardenError
from schemas.families import FORMS
from schemas.fields import parse_solana_address, parse_token_amount
from schemas.policy import AgentPolicy
from sdk import solana


class TransferInvalid(WardenError, ValueError):
    """The transfer cannot be written: the message names the field and what it takes."""


async def transfer_fields(
    settings: Settings, chain: str, policy: AgentPolicy | None, to: str, value: str
) -> dict[str, Any]:
    """The intent fields of a transfer of ``value`` (a decimal in ``chain``'s currency) to ``to``
    from the agent whose policy in force is ``policy`` (None: it has none)."""
    return await _WRITERS[REGISTRY.get(chain).family](settings, chain, policy, to, value)


async def _evm(_settings: Settings, _chain: str, _policy: AgentPolicy | None, to: str, value: str) -> dict[str, Any]:
    # The signer writes the transaction from these, with the agent's key it opens.
    return {"to": to, "value": value}


async def _solana(settings: Settings, chain: str, policy: AgentPolicy | None, to: str, value: str) -> dict[str, Any]:
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


_WRITERS: dict[Family, Callable[[Settings, str, AgentPolicy | None, str, str], Awaitable[dict[str, Any]]]] = {
    Family.EVM: _evm,
    Family.SOLANA: _solana,
}
