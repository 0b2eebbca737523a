"""Ed25519 signatures on intents and policies (schemas/auth.py): a signed record verifies, and any
changed field, foreign key, unpinned admin or other key id breaks it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.admins import Admins
from schemas.auth import intent_signature_valid, policy_signature_valid, public_key_hex, sign_intent, sign_policy
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy
from sdk.client import new_intent
from tests.schemas_support import CHECKSUMMED, OTHER, T0


@pytest.fixture
def admin_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _policy(agent_key: Ed25519PrivateKey, **fields: Any) -> AgentPolicy:
    return AgentPolicy(
        **{
            "agent_id": "agent-1",
            "version": 1,
            "agent_public_key": public_key_hex(agent_key),
            "issued_at": T0,
            **fields,
        }
    )


def test_a_signed_intent_verifies(agent_key: Ed25519PrivateKey) -> None:
    intent = new_intent(agent_key, agent_id="agent-1", chain="anvil", to=CHECKSUMMED, value="0.5", now=T0)
    assert len(bytes.fromhex(intent.signature)) == 64
    assert intent_signature_valid(intent, _policy(agent_key))


@pytest.mark.parametrize(
    "change",
    [
        {"intent_id": "i-2"},
        {"agent_id": "agent-2"},
        {"chain": "base"},
        {"to": OTHER},
        {"value": "0.50000001"},
        {"data": "0x00"},
        {"tx_type": 0},
        {"gas_limit": 21000},
        {"nonce": 1},
        {"simulate_first": True},
        {"broadcast": True},
        {"idempotency_key": "k"},
        {"signing_key_path": "m/44'/60'/0'/0/1"},
        {"created_at": T0 + timedelta(microseconds=1)},
        {"max_fee_per_gas": 1},
    ],
)
def test_any_changed_field_breaks_the_agent_signature(agent_key: Ed25519PrivateKey, change: dict[str, Any]) -> None:
    intent = new_intent(agent_key, agent_id="agent-1", chain="anvil", to=CHECKSUMMED, value="0.5", now=T0)
    changed = TransactionIntent.model_validate({**intent.model_dump(), **change})
    assert changed.signing_bytes() != intent.signing_bytes()
    assert not intent_signature_valid(changed, _policy(agent_key))


def test_intent_signature_fails_for_unsigned_foreign_or_garbage_signatures(agent_key: Ed25519PrivateKey) -> None:
    intent = new_intent(agent_key, agent_id="agent-1", chain="anvil", to=CHECKSUMMED, value="0.5", now=T0)
    policy = _policy(agent_key)
    assert not intent_signature_valid(intent.model_copy(update={"signature": ""}), policy)
    assert not intent_signature_valid(sign_intent(intent, Ed25519PrivateKey.generate()), policy)
    assert not intent_signature_valid(intent.model_copy(update={"signature": "zz"}), policy)
    assert not intent_signature_valid(intent.model_copy(update={"signature": intent.signature[:-2]}), policy)


def test_a_policy_signed_by_a_pinned_admin_key_verifies(
    agent_key: Ed25519PrivateKey, admin_key: Ed25519PrivateKey
) -> None:
    policy = sign_policy(_policy(agent_key), admin_key, "test-admin")
    assert policy.admin_key_id == "test-admin"
    assert policy_signature_valid(policy, Admins.with_threshold({"test-admin": public_key_hex(admin_key)}, 1))


def test_a_policy_signed_by_an_unpinned_key_fails(agent_key: Ed25519PrivateKey, admin_key: Ed25519PrivateKey) -> None:
    rogue = sign_policy(_policy(agent_key), Ed25519PrivateKey.generate(), "test-admin")
    assert not policy_signature_valid(rogue, Admins.with_threshold({"test-admin": public_key_hex(admin_key)}, 1))


def test_a_policy_under_a_different_key_id_fails(agent_key: Ed25519PrivateKey, admin_key: Ed25519PrivateKey) -> None:
    policy = sign_policy(_policy(agent_key), admin_key, "test-admin")
    assert not policy_signature_valid(policy, Admins.with_threshold({"other-admin": public_key_hex(admin_key)}, 1))
    assert not policy_signature_valid(policy, Admins.with_threshold({}, 1))
    # The key id is itself signed: relabelling a signature under another pinned id does not verify.
    relabelled = policy.model_copy(update={"admin_key_id": "other-admin"})
    assert not policy_signature_valid(relabelled, Admins.with_threshold({"other-admin": public_key_hex(admin_key)}, 1))


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"tx_max_value_eth": "100"},
        {"tx_daily_limit_eth": None},
        {"tx_to_allowlist": (OTHER,)},
        {"tx_allowed_chains": ()},
        {"intents_api_enabled": False},
        {"require_simulation": True},
        {"agent_public_key": "0x" + "22" * 32},
    ],
)
def test_any_changed_policy_field_breaks_the_admin_signature(
    agent_key: Ed25519PrivateKey, admin_key: Ed25519PrivateKey, change: dict[str, Any]
) -> None:
    policy = sign_policy(
        _policy(
            agent_key,
            tx_max_value_eth="1",
            tx_daily_limit_eth="5",
            tx_allowed_chains=("anvil",),
            tx_to_allowlist=(CHECKSUMMED,),
        ),
        admin_key,
        "test-admin",
    )
    changed = AgentPolicy.model_validate({**policy.model_dump(), **change})
    assert not policy_signature_valid(changed, Admins.with_threshold({"test-admin": public_key_hex(admin_key)}, 1))


def test_an_unsigned_policy_fails(agent_key: Ed25519PrivateKey, admin_key: Ed25519PrivateKey) -> None:
    unsigned = _policy(agent_key, admin_key_id="test-admin")
    assert not policy_signature_valid(unsigned, Admins.with_threshold({"test-admin": public_key_hex(admin_key)}, 1))
