"""A signer applies a vault event from ``warden.vault`` only when a pinned admin signed it.

The topic is how vault changes reach signers on other machines, and every signer that replays
it applies what it holds again. Unsigned, anyone who can write to the topic could deactivate an
agent's signing key (or name a customer-managed key nobody holds, or require an attestation the
signer cannot give) and stop that agent's signing for good. These tests write such events on the
session stack's broker, then ask its signer to sign.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets, read_to_quiet
from runtime.trust import LOCAL_ADMIN_ID
from schemas import topics
from schemas.actions import AuditAction
from schemas.admins import VaultChange
from schemas.audit import audit_events_of
from schemas.auth import AuditSigner, sign_vault_change, vault_change_headers
from schemas.codes import Code
from schemas.outcomes import IntentRejected, SignedTransaction
from schemas.stages import Stage
from sdk.admin import load_or_create_admin_key
from sdk.client import Client, Outcome, new_intent, wait_outcomes
from signer.custody import AGENT_KEYS_VAULT
from signer.custody.events import SecretDeactivated
from signer.custody_wiring import keystore_from_settings
from tests.support import make_agent

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def _deactivation(settings: Settings, agent_id: str) -> SecretDeactivated:
    """The vault event that would end the agent's current signing key."""
    store = keystore_from_settings(settings)
    key = next(k for k in store.list_keys("admin:local-admin", agent_id=agent_id, chain="ethereum") if k.active)
    return SecretDeactivated.new(
        org="default",
        vault=AGENT_KEYS_VAULT,
        actor="admin:local-admin",
        ts=utcnow(),
        path=key.path,
        version=key.version,
    )


async def _write(settings: Settings, event: SecretDeactivated, headers: list[tuple[str, bytes]] | None) -> str:
    """Writes the event on warden.vault as a topic writer would; returns where it landed."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker, acks="all")
    await producer.start()
    try:
        meta = await (await producer.send(topics.VAULT, event.to_bytes(), key=event.key.encode(), headers=headers))
    finally:
        await producer.stop()
    return f"record:{topics.VAULT}/{meta.partition}/{meta.offset}"


async def _refusals(
    settings: Settings, resources: set[str], start: dict[TopicPartition, int], timeout_s: float = 30
) -> dict[str, dict[str, Any]]:
    """The signer's vault.event_refused audit events written after ``start``, waited for until
    those of ``resources`` are among them."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not resources <= set(found):
        async for _, value in read_to_quiet(settings, (topics.AUDIT_EVENTS,), start=start):
            for event in audit_events_of(value):
                if event.action == AuditAction.VAULT_EVENT_REFUSED:
                    found[event.resource] = {"actor": event.actor, **event.details}
        await asyncio.sleep(0.5)
    return found


async def _sign(settings: Settings, key: Ed25519PrivateKey, agent_id: str) -> Outcome:
    intent = new_intent(key, agent_id=agent_id, chain="anvil", to=DEST, value="0.001")
    start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
    async with Client(settings) as client:
        await client.submit(intent)
        await client.flush()
    return (await wait_outcomes(settings, [intent], 60, start, final=False))[intent.intent_id]


def test_a_vault_event_no_pinned_admin_signed_is_refused_recorded_and_signing_goes_on(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """Unsigned, signed by a key nobody pinned, and signed by the pinned admin as an audit record
    (the right key, the wrong context): each is refused with its reason on the ledger, and the
    agent whose key they would deactivate is still signed for."""
    settings = stack.settings
    agent = f"agent-vault-forged-{os.urandom(3).hex()}"
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1", tx_daily_limit_eth="1"))
    event = _deactivation(settings, agent)
    admin = load_or_create_admin_key(settings.home)
    change = VaultChange.of([(event.key, event.to_bytes())], utcnow())
    attempts = {
        "unsigned": None,
        "an unpinned key": vault_change_headers(
            sign_vault_change(change, Ed25519PrivateKey.generate(), LOCAL_ADMIN_ID)
        ),
        "an audit signature": AuditSigner("admin", LOCAL_ADMIN_ID, admin).headers(event.to_bytes()),
    }
    start = run(end_offsets(settings, (topics.AUDIT_EVENTS,)))
    where = {run(_write(settings, event, headers)): name for name, headers in attempts.items()}

    refused = run(_refusals(settings, set(where), start))
    refused = {resource: doc for resource, doc in refused.items() if resource in where}
    reasons = {where[resource]: doc["reason"] for resource, doc in refused.items()}
    assert reasons.keys() == attempts.keys()
    assert reasons["unsigned"].startswith("unsigned: the record has no warden-vault-change")
    assert "local-admin's signature does not verify over this record's bytes" in reasons["an unpinned key"]
    assert reasons["an audit signature"].startswith("unsigned")  # audit headers are not vault headers
    digest = hashlib.sha256(event.to_bytes()).hexdigest()
    assert all(doc["actor"] == "service:signer" and doc["payload_sha256"] == digest for doc in refused.values())

    outcome = run(_sign(settings, key, agent))
    assert isinstance(outcome, SignedTransaction), outcome


def test_a_vault_event_the_pinned_admin_signed_is_applied_from_the_topic(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    """The topic is where the signer's keys come from: the events provisioning published (signed by
    the admin's command) are applied without a refusal, and a deactivation the pinned admin signed,
    written only to the topic (not to the home's file log, which the signer does not read), ends
    the key."""
    settings = stack.settings
    agent = f"agent-vault-signed-{os.urandom(3).hex()}"
    start = run(end_offsets(settings, (topics.AUDIT_EVENTS,)))
    key, _, _ = run(make_agent(settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1", tx_daily_limit_eth="1"))
    event = _deactivation(settings, agent)
    change = VaultChange.of([(event.key, event.to_bytes())], utcnow())
    signed = sign_vault_change(change, load_or_create_admin_key(settings.home), LOCAL_ADMIN_ID)
    run(_write(settings, event, vault_change_headers(signed)))
    # A refused record after it, on the same partition (same key): once its refusal is on the
    # ledger, the signer has read past the signed one. No other refusal since provisioning began.
    marker = run(_write(settings, event, None))
    assert run(_refusals(settings, {marker}, start)).keys() == {marker}

    outcome = run(_sign(settings, key, agent))
    assert isinstance(outcome, IntentRejected), outcome
    assert (outcome.stage, outcome.code) == (Stage.SIGNING, Code.SIGNING_KEY_UNAVAILABLE)
