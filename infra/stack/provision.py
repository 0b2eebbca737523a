"""Provisioning on the embedded stack: an agent with its intent key, an ethereum signing key
funded on Anvil, and an applied admin-signed policy. Used by the demo, tests and benchmarks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from btc import addresses, wallet
from runtime import solana
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.rpc import JsonRpc
from schemas.actions import AuditAction
from schemas.auth import cosign, public_key_hex
from schemas.emit import Emit
from schemas.policy import AgentPolicy, BitcoinPolicy, SolanaPolicy
from sdk.admin import load_or_create_admin_key
from sdk.client import Client, load_or_create_agent_key, signed_policy
from sdk.quorum import publish_custody_change
from signer.custody_wiring import AuditOutbox, VaultOutbox, keystore_from_settings

ADMIN = "admin:local-admin"


@dataclass(frozen=True)
class Agent:
    agent_id: str
    intent_key: Ed25519PrivateKey
    address: str
    policy: AgentPolicy
    # Client-custody modes: the vault's client share (base64), as given or as just created.
    client_share: str | None = field(default=None, repr=False)


async def provision_agent(
    settings: Settings,
    agent_id: str,
    fund_wei: int = 100 * 10**18,
    client_share: str | None = None,
    cosigners: tuple[str, ...] = (),
    **policy_fields: Any,
) -> Agent:
    """``client_share``: needed when the signing-key vault is in a client-custody mode and already
    exists; when this call creates it, the new share comes back in ``Agent.client_share``.
    ``cosigners``: the admins (key files under $WARDEN_HOME/admin) who sign the policy and the key
    change beside ``settings.admin_id``, where the deployment needs a quorum for them."""
    intent_key, key, client_share, custody_events = _signing_key(settings, agent_id, "ethereum", client_share)
    node = JsonRpc(settings.rpc_url_for("anvil"))
    try:
        await node.call("anvil_setBalance", key.address, hex(fund_wei))
    finally:
        await node.close()
    fields = {"tx_allowed_chains": ("anvil",), "sender_address": key.address}
    fields.update(policy_fields)
    policy = await _publish(settings, agent_id, intent_key, fields, cosigners, custody_events)
    return Agent(agent_id, intent_key, key.address, policy, client_share)


async def provision_solana_agent(
    settings: Settings,
    agent_id: str,
    fund_lamports: int = 10 * 10**9,
    client_share: str | None = None,
    chain: str = "solana-local",
    **solana_policy: Any,
) -> Agent:
    """An agent with a Solana signing key from custody, funded on ``chain``'s node (a local
    node's airdrop; none when 0), and a policy allowing ``chain`` whose ``solana`` section is ``solana_policy``
    with the key's address. ``client_share`` as for `provision_agent`."""
    intent_key, key, client_share, custody_events = _signing_key(settings, agent_id, "solana", client_share)
    if fund_lamports:
        node = JsonRpc(settings.rpc_url_for(chain), timeout_s=60)
        try:
            signature = await node.call("requestAirdrop", key.address, fund_lamports)
            await solana.landed(node, signature, "processed", 60)  # landed before anything is judged
        finally:
            await node.close()
    fields = dict(
        tx_allowed_chains=(chain,),
        solana=SolanaPolicy(address=key.address, **solana_policy),
    )
    policy = await _publish(settings, agent_id, intent_key, fields, (), custody_events)
    return Agent(agent_id, intent_key, key.address, policy, client_share)


async def provision_bitcoin_agent(
    settings: Settings,
    agent_id: str,
    client_share: str | None = None,
    chain: str = "bitcoin-regtest",
    **bitcoin_policy: Any,
) -> Agent:
    """An agent with a Bitcoin signing key from custody and a policy allowing ``chain`` whose
    ``bitcoin`` section is ``bitcoin_policy`` with the key's public key. ``address``: its P2WPKH
    address on ``chain``. ``client_share`` as for `provision_agent`."""
    intent_key, key, client_share, custody_events = _signing_key(settings, agent_id, "bitcoin", client_share)
    fields = dict(
        tx_allowed_chains=(chain,),
        bitcoin=BitcoinPolicy(public_key=key.public_key_hex, **bitcoin_policy),
    )
    policy = await _publish(settings, agent_id, intent_key, fields, (), custody_events)
    address = wallet.addresses(bytes.fromhex(key.public_key_hex), addresses.NETWORK_OF_CHAIN[chain])[0]
    return Agent(agent_id, intent_key, address, policy, client_share)


def _signing_key(
    settings: Settings, agent_id: str, chain: str, client_share: str | None
) -> tuple[Ed25519PrivateKey, Any, str | None, list[Emit]]:
    """The agent's intent key and its active signing key for ``chain`` (made if it has none),
    with the custody events that make it known to the signer."""
    intent_key = load_or_create_agent_key(settings.home, agent_id)
    custody_audit, vault_events = AuditOutbox(), VaultOutbox()
    keystore = keystore_from_settings(settings, audit=custody_audit, vault_outbox=vault_events)
    active = [k for k in keystore.list_keys(ADMIN, agent_id=agent_id, chain=chain) if k.active]
    key = active[-1] if active else keystore.provision(agent_id, chain, actor=ADMIN, client_share=client_share)
    client_share = getattr(key, "client_share", None) or client_share
    return intent_key, key, client_share, vault_events.drain() + custody_audit.drain()


async def _publish(
    settings: Settings,
    agent_id: str,
    intent_key: Ed25519PrivateKey,
    fields: dict[str, Any],
    cosigners: tuple[str, ...],
    custody_events: list[Emit],
) -> AgentPolicy:
    """The key change in force at the signer, then the admin-signed policy at the worker."""
    fields = {
        "agent_id": agent_id,
        "version": int(time.time() * 1000),
        "agent_public_key": public_key_hex(intent_key),
        **fields,
    }
    policy = signed_policy(settings, **fields)
    for admin_id in cosigners:
        policy = cosign(policy, load_or_create_admin_key(settings.home, admin_id), admin_id)
    custody = await publish_custody_change(settings, custody_events, utcnow(), cosigners)
    if custody.needed and not (custody.published and custody.applied and not custody.refused):
        raise RuntimeError(
            f"the signing key of {agent_id} is not in force at the signer (signed by {custody.signed_by}, "
            f"{custody.needed} needed; refused: {custody.refused or 'no'}; applied: {custody.applied or 'not yet'})"
        )
    async with Client(settings) as client:
        verdict = await client.publish_policy(policy)
    if verdict != AuditAction.POLICY_UPDATED:
        raise RuntimeError(f"the streams worker refused the policy for {agent_id} ({verdict})")
    return policy


async def balance(settings: Settings, address: str, chain: str = "anvil") -> int:
    node = JsonRpc(settings.rpc_url_for(chain))
    try:
        return int(await node.call("eth_getBalance", address, "latest"), 16)
    finally:
        await node.close()
