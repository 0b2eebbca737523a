"""The admin identities of this machine: the Ed25519 keys that sign policies and decisions.

A deployment keeps its admins' private keys off the workers and pins their public
halves (`runtime.trust`); this key exists so `warden demo` works out of the box.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.trust import LOCAL_ADMIN_ID, admin_key_file
from schemas.auth import load_or_create_ed25519


def load_or_create_admin_key(home: Path, admin_id: str = LOCAL_ADMIN_ID) -> Ed25519PrivateKey:
    """The key of admin ``admin_id`` (``WARDEN_ADMIN_ID``), made on first use."""
    return load_or_create_ed25519(admin_key_file(home, admin_id))
