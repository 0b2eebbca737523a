"""Trust anchors: the public keys a Warden process believes, pinned by configuration.

Today these are the admins' policy-signing keys. A deployment pins them with
``WARDEN_ADMIN_KEYS`` ("key_id=0x<hex>,...") and keeps the private keys off the
workers; the embedded stack creates one local admin key under
``$WARDEN_HOME/admin`` (mode 0600) and pins its public half.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from runtime.config import Settings
from schemas.auth import public_key_hex

LOCAL_ADMIN_ID = "local-admin"


def local_admin_key_file(home: Path) -> Path:
    return home / "admin" / f"{LOCAL_ADMIN_ID}.pem"


def pinned_admin_keys(settings: Settings) -> dict[str, str]:
    """key_id → public key hex. WARDEN_ADMIN_KEYS wins; else the local admin key, if one exists."""
    if settings.admin_keys:
        pairs = (item.split("=", 1) for item in settings.admin_keys.split(",") if item.strip())
        return {key_id.strip(): pub.strip() for key_id, pub in pairs}
    path = local_admin_key_file(settings.home)
    if not path.exists():
        return {}
    return {LOCAL_ADMIN_ID: public_key_hex(load_pem_private_key(path.read_bytes(), password=None))}
