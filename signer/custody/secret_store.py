"""Secrets in vaults: sealing a new version, opening one for its reader, and deactivating versions.

Each version has its own DEK, which encrypts the value; the vault's KEK wraps the
DEK; a customer-managed key, when the vault has one, wraps that again (``cmek``).
Associated data binds org, vault, path and version at every layer, so a ciphertext
copied into another slot does not decrypt, and every failure to authenticate is the
one opaque ``InvalidKey``. Keys and plaintexts live in bytearrays that are wiped as
soon as they are used; the caller of ``read_secret`` owns and wipes what it returns.

Every read is judged (``access``) before anything is decrypted, and audited.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.actions import AuditAction
from signer.custody import access
from signer.custody._crypto import aad, from_b64, open_into, random_key, seal, wipe
from signer.custody.access import parse_actor
from signer.custody.book import SecretInfo, VaultBook, VaultState
from signer.custody.cmek import CmekLayer
from signer.custody.errors import CustodyError, InvalidKey, NotFound
from signer.custody.events import SECRET_TYPES, ModeSet, SecretDeactivated, SecretType, SecretVersionWritten, utc
from signer.custody.keks import Keks
from signer.custody.names import check_path

MAX_SECRET_BYTES = 64 * 1024


class SecretStore:
    """The secrets of the vaults in ``book``, sealed and opened with ``keks`` and ``cmeks``.

    ``intents_api_enabled(agent_id)`` answers from the agent's signed policy; unknown
    agents are treated as enabled, the stricter case."""

    def __init__(
        self,
        book: VaultBook,
        keks: Keks,
        cmeks: CmekLayer,
        auditor: access.Auditor,
        clock: Callable[[], float],
        intents_api_enabled: Callable[[str], bool] | None = None,
    ):
        self._book = book
        self._keks = keks
        self._cmeks = cmeks
        self._auditor = auditor
        self._clock = clock
        self.intents_api_enabled = intents_api_enabled or (lambda _agent_id: True)

    def _kek(self, state: VaultState, client_share: str | bytes | bytearray | None, now: float) -> AESGCM:
        return self._keks.aead(
            state.org, state.vault, _mode(state), client_share, now, attested=state.attestation is not None
        )

    # ---- writing -------------------------------------------------------------

    def write_secret(
        self,
        org: str,
        vault: str,
        path: str,
        value: bytes | bytearray,
        secret_type: SecretType,
        *,
        actor: str,
        client_share: str | bytes | bytearray | None = None,
        public: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> int:
        """Store ``value`` as the next version of ``path``; returns that version.
        ``public`` is metadata stored in the clear (e.g. a key's address)."""
        access.require_admin(actor, "writing a secret")
        check_path(path)
        if secret_type not in SECRET_TYPES:
            raise CustodyError(f"unknown secret type {secret_type!r}; choose one of {', '.join(SECRET_TYPES)}")
        if not 0 < len(value) <= MAX_SECRET_BYTES:
            raise CustodyError(f"a secret is 1..{MAX_SECRET_BYTES} bytes")
        now = self._clock() if now is None else now
        book = self._book
        with book.log.write_lock():
            book.refresh()
            state = book.state(org, vault)
            kek = self._kek(state, client_share, now)
            mode = _mode(state)
            version = max(state.secrets.get(path, {}), default=0) + 1
            dek = random_key()
            try:
                ciphertext = seal(AESGCM(dek), value, _secret_aad(org, vault, path, version, secret_type))
                wrapped = seal(kek, dek, _dek_aad(org, vault, path, version, mode.kek_id))
            finally:
                wipe(dek)
            with book.lock:
                cmek_fp = state.cmek.fingerprint if state.cmek is not None else None
            if cmek_fp is not None:
                wrapped = self._cmeks.seal(cmek_fp, wrapped, (org, vault, path, version))
            written = SecretVersionWritten.new(
                org=org,
                vault=vault,
                actor=actor,
                ts=utc(now),
                path=path,
                version=version,
                secret_type=secret_type,
                kek_id=mode.kek_id,
                wrapped_dek=base64.b64encode(wrapped).decode(),
                ciphertext=base64.b64encode(ciphertext).decode(),
                cmek_fingerprint=cmek_fp,
                development=mode.development,
                public=dict(public or {}),
            )
            book.emit([written])
        self._auditor.record(
            actor,
            AuditAction.SECRET_WRITTEN,
            f"vault:{org}/{vault}/{path}@{version}",
            now,
            written.event_id,
            secret_type=secret_type,
        )
        return version

    def deactivate(
        self, org: str, vault: str, path: str, version: int | None = None, *, actor: str, now: float | None = None
    ) -> list[int]:
        """Deactivate one version, or every active version when ``version`` is None. Returns the versions deactivated."""
        access.require_admin(actor, "deactivating a secret")
        now = self._clock() if now is None else now
        book = self._book
        with book.log.write_lock():
            book.refresh()
            state = book.state(org, vault)
            versions = state.secrets.get(path, {})
            if version is not None and version not in versions:
                raise NotFound(f"no version {version} of {path!r} in vault {vault!r}")
            targets = [
                v
                for v in ([version] if version is not None else sorted(versions))
                if (path, v) not in state.deactivated
            ]
            events = [
                SecretDeactivated.new(org=org, vault=vault, actor=actor, ts=utc(now), path=path, version=v)
                for v in targets
            ]
            book.emit(events)
        for event in events:
            self._auditor.record(
                actor,
                AuditAction.SECRET_DEACTIVATED,
                f"vault:{org}/{vault}/{path}@{event.version}",
                now,
                event.event_id,
            )
        return targets

    # ---- reading -------------------------------------------------------------

    def read_secret(
        self,
        org: str,
        vault: str,
        path: str,
        version: int | None = None,
        *,
        actor: str,
        client_share: str | bytes | bytearray | None = None,
        cmek: bytes | bytearray | None = None,
        now: float | None = None,
    ) -> bytearray:
        """Decrypt one version (the newest active one by default). The caller owns
        the returned bytearray and must wipe it; prefer ``open_secret``. ``cmek``:
        the vault's customer-managed key for this read only (else the one loaded
        with ``load_cmek``); one that is not the version's is ``InvalidKey``."""
        _, plaintext = self._read(
            org, vault, path, version, actor=actor, client_share=client_share, cmek=cmek, now=now, shown=False
        )
        return plaintext

    @contextlib.contextmanager
    def open_secret(
        self, org: str, vault: str, path: str, version: int | None = None, **kwargs: Any
    ) -> Iterator[bytearray]:
        """``read_secret`` as a context manager: the bytearray is wiped on exit, exceptions included."""
        plaintext = self.read_secret(org, vault, path, version, **kwargs)
        try:
            yield plaintext
        finally:
            wipe(plaintext)

    @contextlib.contextmanager
    def reveal(
        self,
        org: str,
        vault: str,
        path: str,
        version: int | None = None,
        *,
        actor: str,
        client_share: str | bytes | bytearray | None = None,
        now: float | None = None,
    ) -> Iterator[tuple[SecretInfo, bytearray]]:
        """Open a secret to show it to a person (``warden vault get``): its listing and
        its value, wiped on exit. Key material is refused to everyone, admins
        included, and audited, before anything is decrypted."""
        secret, plaintext = self._read(
            org, vault, path, version, actor=actor, client_share=client_share, cmek=None, now=now, shown=True
        )
        try:
            with self._book.lock:
                info = self._book.info(self._book.state(org, vault), secret)
            yield info, plaintext
        finally:
            wipe(plaintext)

    def _read(
        self,
        org: str,
        vault: str,
        path: str,
        version: int | None,
        *,
        actor: str,
        client_share: str | bytes | bytearray | None,
        cmek: bytes | bytearray | None,
        now: float | None,
        shown: bool,
    ) -> tuple[SecretVersionWritten, bytearray]:
        now = self._clock() if now is None else now
        parse_actor(actor)
        book = self._book
        book.refresh()
        check_path(path)
        state = book.state(org, vault)
        with book.lock:
            grants = {slot: allowed for slot, (_, allowed) in state.grants.items()}
        self._auditor.enforce(
            access.refuse_before_lookup(vault, path, actor, grants, self.intents_api_enabled),
            actor,
            f"vault:{org}/{vault}/{path}" + (f"@{version}" if version is not None else ""),
            now,
        )
        with book.lock:
            # The version and the CMEK that wraps it are taken together, so a
            # rotation finishing in between cannot strand this read.
            secret = book.version(state, path, version)
            layer = self._cmeks.key(secret.cmek_fingerprint, cmek) if secret.cmek_fingerprint else None
        resource = f"vault:{org}/{vault}/{path}@{secret.version}"
        self._auditor.enforce(
            access.refuse_after_lookup(actor, secret.secret_type, self.intents_api_enabled), actor, resource, now
        )
        if shown:
            self._auditor.enforce(access.refuse_to_show(path, secret.version, secret.secret_type), actor, resource, now)
        plaintext = self._decrypt(state, secret, layer, client_share, now)
        self._auditor.record(
            actor,
            AuditAction.SECRET_READ,
            resource,
            now,
            actor,
            resource,
            utc(now).isoformat(),
            secret_type=secret.secret_type,
        )
        return secret, plaintext

    def _decrypt(
        self, state: VaultState, secret: SecretVersionWritten, cmek: AESGCM | None, client_share: Any, now: float
    ) -> bytearray:
        if secret.kek_id != _mode(state).kek_id:
            raise InvalidKey()
        kek = self._kek(state, client_share, now)
        sealed_dek = self._cmeks.open(
            cmek,
            secret.cmek_fingerprint,
            from_b64(secret.wrapped_dek),
            (state.org, state.vault, secret.path, secret.version),
        )
        dek: bytearray | None = None
        try:
            dek = open_into(
                kek, bytes(sealed_dek), _dek_aad(state.org, state.vault, secret.path, secret.version, secret.kek_id)
            )
            aead = AESGCM(dek)
        finally:
            wipe(sealed_dek)
            wipe(dek)
        return open_into(
            aead,
            from_b64(secret.ciphertext),
            _secret_aad(state.org, state.vault, secret.path, secret.version, secret.secret_type),
        )


# Associated data of the two layers this module seals; the KEK's is in ``keks``, the CMEK's in ``cmek``.


def _dek_aad(org: str, vault: str, path: str, version: int, kek_id: str) -> bytes:
    return aad("warden/dek/v1", org, vault, path, version, kek_id)


def _secret_aad(org: str, vault: str, path: str, version: int, secret_type: str) -> bytes:
    return aad("warden/secret/v1", org, vault, path, version, secret_type)


def _mode(state: VaultState) -> ModeSet:
    """The vault's custody mode: a vault without one has no KEK to write or open a secret with
    (a signer never applies a secret to such a vault; a home's file log may hold one)."""
    if state.mode is None:
        raise CustodyError(f"vault {state.vault!r} has no custody mode yet; an admin sets one with `warden vault mode`")
    return state.mode
