"""Ed25519 signatures on intents (by agents) and policies (by admins).

Write access to a topic must not let anyone act as an agent or an admin, so
both the streams worker and the signer check these signatures themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat, PublicFormat,
                                                          load_pem_private_key)

from schemas.models import AgentPolicy, TransactionIntent


def load_or_create_ed25519(path: Path) -> Ed25519PrivateKey:
    """A local Ed25519 identity key (PKCS#8 PEM, mode 0600), created on first use."""
    if path.exists():
        return load_pem_private_key(path.read_bytes(), password=None)  # type: ignore[return-value]
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return key


def public_key_hex(private_key: Ed25519PrivateKey) -> str:
    return "0x" + private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign_intent(intent: TransactionIntent, agent_key: Ed25519PrivateKey) -> TransactionIntent:
    return intent.model_copy(update={"signature": agent_key.sign(intent.signing_bytes()).hex()})


def sign_policy(policy: AgentPolicy, admin_key: Ed25519PrivateKey, admin_key_id: str) -> AgentPolicy:
    unsigned = policy.model_copy(update={"admin_key_id": admin_key_id, "signature": ""})
    return unsigned.model_copy(update={"signature": admin_key.sign(unsigned.signing_bytes()).hex()})


def _verify(public_key_hex_: str, signature_hex: str, message: bytes) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex_.removeprefix("0x")))
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def intent_signature_valid(intent: TransactionIntent, policy: AgentPolicy) -> bool:
    return bool(intent.signature) and _verify(policy.agent_public_key, intent.signature, intent.signing_bytes())


def policy_signature_valid(policy: AgentPolicy, admin_public_keys: dict[str, str]) -> bool:
    """True only if the policy is signed by one of the pinned admin keys (key id → public key hex)."""
    key = admin_public_keys.get(policy.admin_key_id)
    return key is not None and bool(policy.signature) and _verify(key, policy.signature, policy.signing_bytes())
