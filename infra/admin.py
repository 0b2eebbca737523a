"""Admin identity: the Ed25519 key that signs policies, and the pinned public keys every
worker and the signer trust.

On the embedded stack the admin key is created under ``$WARDEN_HOME/admin`` (mode 0600) so
`warden demo` works out of the box; a deployment pins its admins' public keys with
``WARDEN_ADMIN_KEYS`` ("key_id=0x<hex>,...") and keeps the private keys off the workers.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.auth import load_or_create_ed25519, public_key_hex

LOCAL_ADMIN_ID = "local-admin"


def _key_file(home: Path) -> Path:
    return home / "admin" / f"{LOCAL_ADMIN_ID}.pem"


def load_or_create_admin_key(home: Path) -> Ed25519PrivateKey:
    return load_or_create_ed25519(_key_file(home))


def pinned_admin_keys(home: Path) -> dict[str, str]:
    """key_id → public key hex. WARDEN_ADMIN_KEYS wins; else the local admin key, if one exists."""
    configured = os.environ.get("WARDEN_ADMIN_KEYS")
    if configured:
        pairs = (item.split("=", 1) for item in configured.split(",") if item.strip())
        return {key_id.strip(): pub.strip() for key_id, pub in pairs}
    path = _key_file(home)
    if not path.exists():
        return {}
    return {LOCAL_ADMIN_ID: public_key_hex(load_or_create_admin_key(home))}
