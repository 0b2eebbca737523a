"""The local admin identity: the Ed25519 key that signs policies on the embedded stack.

A deployment keeps its admins' private keys off the workers and pins their public
halves (`runtime.trust`); this key exists so `warden demo` works out of the box.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.trust import local_admin_key_file
from schemas.auth import load_or_create_ed25519


def load_or_create_admin_key(home: Path) -> Ed25519PrivateKey:
    return load_or_create_ed25519(local_admin_key_file(home))
