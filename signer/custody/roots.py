"""Roots of trust: the top of the key hierarchy.

A root wraps and unwraps small secrets (vault KEKs and their shares) and never
lets its own key out. Production roots live in an HSM-backed service: Google
Cloud KMS, AWS KMS, Azure Key Vault or a PKCS#11 HSM (their modules sit beside
this one and import their client library only when chosen). ``LocalDevRoot`` is
a key in a file for development: it refuses to start unless explicitly allowed,
says so on stderr, and marks every envelope it makes with ``dev:`` so
development material can never pass for production material.

Every root binds the caller's associated data into what it wraps, so a wrapped
KEK copied onto another vault or slot does not unwrap. Every failure to unwrap
is the one opaque ``InvalidKey``; an unreachable provider is ``ProviderUnavailable``.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO, runtime_checkable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from signer.custody._crypto import KEY_BYTES, aad, open_into, seal, wipe
from signer.custody.errors import CustodyError, DevRootRefused, InvalidKey, ProviderUnavailable

if TYPE_CHECKING:
    from runtime.config import Settings

PROVIDERS = ("local-dev", "aws-kms", "gcp-kms", "azure-kv", "pkcs11")

DEV_MARKER = b"dev:"
_DEV_VERSION = b"\x01"


@runtime_checkable
class RootOfTrust(Protocol):
    """What the vault needs from a root: wrap and unwrap, bound to associated data."""

    name: str
    development: bool

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, ciphertext: bytes, aad: bytes) -> bytearray: ...


_WARNED: set[Path] = set()  # the development key files this process has warned about


class LocalDevRoot:
    """A 32-byte AES-256-GCM root key in a 0600 file. Development only."""

    development = True

    def __init__(self, path: Path | str, allow: bool, *, name: str = "local-dev", stderr: TextIO | None = None):
        if not allow:
            raise DevRootRefused(
                "the local development root of trust is disabled: it keeps the root key in a file and is "
                "for development only. Set WARDEN_ALLOW_DEV_ROOT=1 to use it on a development machine, or "
                "choose a production root with WARDEN_ROOT_PROVIDER=aws-kms|gcp-kms|azure-kv|pkcs11."
            )
        self.name = name
        self.path = Path(path)
        key = self._load_or_create(self.path)
        try:
            self._aead = AESGCM(key)
        finally:
            wipe(key)
        # Once per key file and process: a command that opens the root for each of 16 agents
        # printed the same warning 16 times, and a wall of repeats is what gets skimmed.
        if (resolved := self.path.resolve()) not in _WARNED:
            _WARNED.add(resolved)
            print(
                f"WARNING: Warden is using the LOCAL DEVELOPMENT root of trust ({self.path}). "
                "Everything it wraps is marked as development material. Never use it in production.",
                file=stderr if stderr is not None else sys.stderr,
                flush=True,
            )

    @staticmethod
    def _load_or_create(path: Path) -> bytearray:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # Written whole under another name, then linked into place: two processes starting at
            # once must not both write a key, and neither may read one half written (an O_EXCL
            # create is visible, empty, before its bytes are: a signer read 0 bytes and stopped).
            key = bytearray(os.urandom(KEY_BYTES))
            scratch = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(scratch, path)  # fails if another process linked its key first
                return key
            except FileExistsError:
                wipe(key)
            finally:
                scratch.unlink()
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CustodyError(
                f"the development root key {path} is readable by group or others "
                f"(mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`"
            )
        key = bytearray(KEY_BYTES + 1)
        with open(path, "rb", buffering=0) as f:
            n = f.readinto(key)
        if n != KEY_BYTES:
            wipe(key)
            raise CustodyError(
                f"the development root key {path} is not {KEY_BYTES} bytes; move it away to make a new one"
            )
        del key[KEY_BYTES:]
        return key

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        return DEV_MARKER + _DEV_VERSION + seal(self._aead, plaintext, _dev_aad(aad))

    def unwrap(self, ciphertext: bytes, aad: bytes) -> bytearray:
        prefix = DEV_MARKER + _DEV_VERSION
        if not ciphertext.startswith(prefix):
            raise InvalidKey()
        return open_into(self._aead, ciphertext[len(prefix) :], _dev_aad(aad))

    def __repr__(self) -> str:
        return f"LocalDevRoot(name={self.name!r}, path={str(self.path)!r})"


def _dev_aad(associated: bytes) -> bytes:
    # The marker is authenticated too, so stripping "dev:" off an envelope breaks it.
    return aad("warden/dev-root", associated)


def root_from_settings(settings: "Settings", provider: str | None = None) -> RootOfTrust:
    """The root named by ``settings.root_provider`` (or ``provider``).

    Cloud and HSM roots take their coordinates from ``settings.roots`` (docs/custody.md,
    "Root providers", names the variables): WARDEN_AWS_KMS_KEY_ID (+ WARDEN_AWS_KMS_ENDPOINT,
    WARDEN_AWS_REGION), WARDEN_GCP_KMS_KEY (+ WARDEN_GCP_KMS_ENDPOINT, WARDEN_GCP_KMS_INSECURE),
    WARDEN_AZURE_KV_KEY_ID, WARDEN_PKCS11_MODULE / _TOKEN / _PIN / _KEY_LABEL.
    """
    provider = provider or settings.root_provider
    conf = settings.roots
    if provider == "local-dev":
        return LocalDevRoot(settings.home / "keys" / "dev-root.key", settings.allow_dev_root)
    if provider == "aws-kms":
        from signer.custody.aws_kms import AwsKmsRoot

        return AwsKmsRoot(
            _require(conf.aws_kms_key_id, "WARDEN_AWS_KMS_KEY_ID", provider),
            region=conf.aws_region,
            endpoint_url=conf.aws_kms_endpoint,
        )
    if provider == "gcp-kms":
        from signer.custody.gcp_kms import GcpKmsRoot

        return GcpKmsRoot(
            _require(conf.gcp_kms_key, "WARDEN_GCP_KMS_KEY", provider),
            api_endpoint=conf.gcp_kms_endpoint,
            insecure=conf.gcp_kms_insecure,
        )
    if provider == "azure-kv":
        from signer.custody.azure_kv import AzureKeyVaultRoot

        return AzureKeyVaultRoot(_require(conf.azure_kv_key_id, "WARDEN_AZURE_KV_KEY_ID", provider))
    if provider == "pkcs11":
        from signer.custody.pkcs11_hsm import Pkcs11Root

        return Pkcs11Root(
            module=_require(conf.pkcs11_module, "WARDEN_PKCS11_MODULE", provider),
            token_label=_require(conf.pkcs11_token, "WARDEN_PKCS11_TOKEN", provider),
            pin=_require(conf.pkcs11_pin, "WARDEN_PKCS11_PIN", provider),
            key_label=conf.pkcs11_key_label,
        )
    raise CustodyError(
        f"unknown root provider {provider!r}; choose one of {', '.join(PROVIDERS)} (WARDEN_ROOT_PROVIDER)"
    )


def roots_from_settings(settings: "Settings") -> dict[str, RootOfTrust]:
    """Every configured root by name: the primary one plus WARDEN_ROOT_PROVIDERS
    (comma-separated), which the 2-of-3 custody modes spread their shares over."""
    names = [settings.root_provider, *settings.roots.more_providers]
    roots: dict[str, RootOfTrust] = {}
    for name in dict.fromkeys(names):
        root = root_from_settings(settings, name)
        roots[root.name] = root
    return roots


def _require(value: str | None, name: str, provider: str) -> str:
    if not value:
        raise ProviderUnavailable(f"root provider {provider!r} needs {name} set in the environment")
    return value
