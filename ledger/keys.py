"""The checkpoint signing key (and its key id, `ledger_key_id`): one function to get it, so the custody vault can
replace a file on disk without touching the sink.

Until then the key is an Ed25519 private key (PKCS#8 PEM) at
``$WARDEN_HOME/ledger/checkpoint_ed25519.pem``, created on first use with mode
0600 in a 0700 directory, and refused if anyone else can read it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from schemas.errors import WardenError

KEY_FILE = "checkpoint_ed25519.pem"
WITNESS_KEY_FILE = "witness_ed25519.pem"


class SigningKeyError(WardenError, RuntimeError):
    pass


def key_path(home: Path) -> Path:
    return home / "ledger" / KEY_FILE


def load_or_create_signing_key(home: Path) -> Ed25519PrivateKey:
    return _load_or_create(key_path(home))


def load_or_create_witness_key(directory: Path) -> Ed25519PrivateKey:
    """A witness's cosigning key (`warden witness`), kept like the ledger's, in its own directory."""
    return _load_or_create(directory / WITNESS_KEY_FILE)


def _load_or_create(path: Path) -> Ed25519PrivateKey:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load(path)
    key = Ed25519PrivateKey.generate()
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        out.flush()
        os.fsync(out.fileno())
    return key


def _load(path: Path) -> Ed25519PrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyError(
            f"the signing key {path} is readable by others (mode {mode:04o}); "
            f"run `chmod 600 {path}` and check who may have copied it"
        )
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"{path} holds a {type(key).__name__}, not an Ed25519 key; move it away to create a new one"
        )
    return key


def local_public_key(home: Path) -> bytes:
    """This host's ledger public key, without creating a key: a verifier that
    made a fresh key would call every genuine checkpoint forged."""
    path = key_path(home)
    if not path.exists():
        raise SigningKeyError(
            f"no ledger key at {path}; pass --log-key with the vkey `warden audit log-key` prints on the ledger host"
        )
    return _load(path).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The ledger's raw public key in 64 hex digits, as `warden audit pubkey` prints it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def ledger_key_id(public_hex: str) -> str:
    """The ledger's key id as its notices name it: the first 16 hex digits of its public key."""
    return public_hex.removeprefix("0x")[:16]
