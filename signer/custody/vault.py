"""Vaults and secrets, event-sourced: the state machine over vault events.

Key hierarchy (DESIGN §4):

    root of trust ──wraps──► KEK (one AES-256-GCM key per vault, or its shares)
    KEK ──wraps──► DEK (one AES-256-GCM key per secret version)
    DEK ──encrypts──► the secret
    [CMEK ──wraps──► the KEK-wrapped DEK, when the vault has a customer key]

``Vaults`` folds events into state (``apply``: idempotent and order-tolerant),
turns each request into new events, and seals and opens secrets. The layers
beneath have modules of their own: the KEK and its cache (``keks``), how a custody
mode splits and rebuilds it (``modes``), the customer-managed layer (``cmek``),
who may do what (``access``), the events and their logs (``events``). Associated
data binds org, vault, path and version at every layer, so a ciphertext copied
into another slot does not decrypt; each failure to authenticate is the one
opaque ``InvalidKey``.

Time is an argument: every method takes ``now`` (seconds since the epoch), and
falls back to the injected ``clock``.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.emit import Emit
from signer.custody import access
from signer.custody._crypto import aad, from_b64, open_into, random_key, seal, wipe
from signer.custody.access import parse_actor
from signer.custody.cmek import CMEK_BATCH, CmekLayer, check_key, fingerprint
from signer.custody.errors import Conflict, CustodyError, InvalidKey, NotFound, PermissionDenied
from signer.custody.events import (
    SECRET_TYPES,
    AttestationRequirementSet,
    CallbackLog,
    CmekSet,
    FileEventLog,
    ModeSet,
    PolicyGranted,
    SecretDeactivated,
    SecretType,
    SecretVersionWritten,
    VaultCreated,
    VaultEvent,
    VaultLog,
    parse_event,
)
from signer.custody.keks import DEFAULT_KEK_TTL, Keks
from signer.custody.modes import Mode, custody_mode
from signer.custody.names import check_names, check_path, prefix_covers
from signer.custody.roots import RootOfTrust

MAX_SECRET_BYTES = 64 * 1024


@dataclass(frozen=True)
class SecretInfo:
    """What a listing shows about a secret version: never its value."""

    org: str
    vault: str
    path: str
    version: int
    secret_type: str
    active: bool
    created_at: datetime
    created_by: str
    cmek_fingerprint: str | None
    development: bool
    public: dict[str, str]


@dataclass
class _VaultState:
    org: str
    vault: str
    created: VaultCreated
    mode: ModeSet | None = None
    secrets: dict[str, dict[int, SecretVersionWritten]] = field(default_factory=dict)
    deactivated: set[tuple[str, int]] = field(default_factory=set)
    grants: dict[tuple[str, str], tuple[tuple[int, str], bool]] = field(default_factory=dict)
    cmek: CmekSet | None = None
    attestation: AttestationRequirementSet | None = None


class Vaults:
    """The vault state machine: apply events, make new ones, read secrets.

    ``roots`` is one root or a mapping name → root; the first is the primary
    root that ``standard`` vaults use. ``publish`` is a ``VaultLog`` (e.g.
    ``FileEventLog``) or a bare callable. ``intents_api_enabled(agent_id)``
    answers from the agent's signed policy; unknown agents are treated as
    enabled, the stricter case. ``audit`` receives the audit record (an ``Emit``
    for ``warden.audit.events``, from ``schemas.emit.audit``) of every read,
    refusal and change.
    """

    def __init__(
        self,
        roots: RootOfTrust | Mapping[str, RootOfTrust] | Sequence[RootOfTrust],
        publish: VaultLog | Callable[[VaultEvent], None],
        *,
        clock: Callable[[], float] = time.time,
        kek_ttl: float = DEFAULT_KEK_TTL,
        intents_api_enabled: Callable[[str], bool] | None = None,
        audit: Callable[[Emit], None] | None = None,
        release: Callable[..., bytearray] | None = None,
    ):
        if isinstance(roots, Mapping):
            by_name = dict(roots)
        elif isinstance(roots, Sequence):
            by_name = {r.name: r for r in roots}
        else:
            by_name = {roots.name: roots}
        if not by_name:
            raise CustodyError("Vaults needs at least one root of trust")
        self.primary = next(iter(by_name.values()))
        # release: signer.key_release.Attester, for vaults that require attestation.
        self._keks = Keks(by_name, kek_ttl, release)
        self._cmeks = CmekLayer()
        self._log: VaultLog = publish if hasattr(publish, "poll") else CallbackLog(publish)  # type: ignore[arg-type]
        self._clock = clock
        self._intents_api_enabled = intents_api_enabled or (lambda agent_id: True)
        self._audit = audit or (lambda record: None)
        self._lock = threading.RLock()
        self._vaults: dict[tuple[str, str], _VaultState] = {}

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> "Vaults":
        """The embedded default: roots from settings, events in $WARDEN_HOME/vault/events.jsonl."""
        from signer.custody.roots import roots_from_settings

        vaults = cls(
            roots_from_settings(settings), FileEventLog(Path(settings.home) / "vault" / "events.jsonl"), **kwargs
        )
        vaults.refresh()
        return vaults

    def __repr__(self) -> str:
        return f"Vaults(roots={list(self.roots)!r}, vaults={len(self._vaults)}, keks={self._keks!r})"

    @property
    def roots(self) -> dict[str, RootOfTrust]:
        return self._keks.roots

    @property
    def kek_ttl(self) -> float:
        return self._keks.ttl

    # ---- applying events -------------------------------------------------

    def apply(self, event: VaultEvent) -> bool:
        """Fold one event into the state. Idempotent: re-applying any event, or
        applying an older wrap of a secret, changes nothing. Returns whether it changed state."""
        with self._lock:
            key = (event.org, event.vault)
            state = self._vaults.get(key)
            if isinstance(event, VaultCreated):
                if state is not None:
                    return False
                self._vaults[key] = _VaultState(event.org, event.vault, event)
                return True
            if state is None:
                # Out of order (a compacted topic may deliver keys in any order):
                # a vault exists once anything is known about it.
                state = self._vaults[key] = _VaultState(
                    event.org,
                    event.vault,
                    VaultCreated(
                        event_id=event.event_id, org=event.org, vault=event.vault, actor=event.actor, ts=event.ts
                    ),
                )
            if isinstance(event, ModeSet):
                if state.mode is not None:
                    return False  # immutable: the first mode wins
                state.mode = event
                return True
            if isinstance(event, SecretVersionWritten):
                versions = state.secrets.setdefault(event.path, {})
                current = versions.get(event.version)
                if current is not None:
                    # Only a re-wrap of the same ciphertext may replace a version;
                    # a different value claiming a taken version is refused.
                    if current.ciphertext != event.ciphertext or event.wrap_seq <= current.wrap_seq:
                        return False
                versions[event.version] = event
                return True
            if isinstance(event, SecretDeactivated):
                slot = (event.path, event.version)
                if slot in state.deactivated:
                    return False
                state.deactivated.add(slot)
                return True
            if isinstance(event, PolicyGranted):
                # The highest (seq, event_id) wins, so any delivery order of
                # grants and revocations ends in the same state.
                slot = (event.agent_id, event.prefix)
                stamp = (event.seq, event.event_id)
                current = state.grants.get(slot)
                if current is not None and current[0] >= stamp:
                    return False
                state.grants[slot] = (stamp, event.granted)
                return True
            if isinstance(event, AttestationRequirementSet):
                if state.attestation is not None:
                    return False  # set once; no event unsets it
                state.attestation = event
                return True
            if isinstance(event, CmekSet):
                if state.cmek is not None and event.seq <= state.cmek.seq:
                    return False
                state.cmek = event
                return True
            raise CustodyError(f"unknown vault event type {event.type!r}")

    def replay(self, events: Iterable[VaultEvent | bytes | str]) -> int:
        """Apply events from a log or topic (objects or their JSON); returns how many changed state."""
        changed = 0
        for event in events:
            if not isinstance(event, VaultEvent):
                event = parse_event(event)
            changed += self.apply(event)
        return changed

    def refresh(self) -> int:
        """Pick up events other processes appended to the shared log."""
        return self.replay(self._log.poll())

    def _emit(self, events: Sequence[VaultEvent]) -> None:
        publish_many = getattr(self._log, "publish_many", None)
        if publish_many is not None:
            publish_many(events)
        else:
            for event in events:
                self._log.publish(event)
        for event in events:
            self.apply(event)

    # ---- audit -------------------------------------------------------------

    def _emit_audit(self, actor: str, action: str, resource: str, now: float, *id_parts: str, **details: Any) -> Emit:
        record = access.audit_record(actor, action, resource, _ts(now), *id_parts, **details)
        self._audit(record)
        return record

    def _enforce(self, refusal: access.Refusal | None, actor: str, resource: str, now: float) -> None:
        """Audit and raise ``refusal``, if there is one."""
        if refusal is None:
            return
        record = self._emit_audit(
            actor,
            "secret.read_refused",
            resource,
            now,
            actor,
            resource,
            _ts(now).isoformat(),
            refusal.reason,
            reason=refusal.reason,
            **refusal.details,
        )
        raise PermissionDenied(refusal.message, audit=record)

    # ---- vault lifecycle -------------------------------------------------

    def _state(self, org: str, vault: str) -> _VaultState:
        state = self._vaults.get((org, vault))
        if state is None and self.refresh():
            state = self._vaults.get((org, vault))
        if state is None:
            raise NotFound(f"no vault {vault!r} in org {org!r}; an admin creates it with `warden vault create`")
        return state

    def has_vault(self, org: str, vault: str) -> bool:
        self.refresh()
        return (org, vault) in self._vaults

    def create_vault(
        self,
        org: str,
        vault: str,
        *,
        actor: str,
        mode: Mode | None = "standard",
        providers: Sequence[str] | None = None,
        now: float | None = None,
    ) -> str | None:
        """Create a vault and (unless ``mode`` is None) set its custody mode.
        Returns the client share (base64, shown once) for the client-custody modes."""
        access.require_admin(actor, "creating a vault")
        check_names(org, vault)
        now = self._clock() if now is None else now
        with self._log.write_lock():
            self.refresh()
            if (org, vault) in self._vaults:
                raise Conflict(f"vault {vault!r} already exists in org {org!r}")
            created = VaultCreated.new(org=org, vault=vault, actor=actor, ts=_ts(now))
            self._emit([created])
            self._emit_audit(actor, "vault.created", f"vault:{org}/{vault}", now, created.event_id)
            if mode is None:
                return None
            return self.set_mode(org, vault, mode, actor=actor, providers=providers, now=now)

    def set_mode(
        self,
        org: str,
        vault: str,
        mode: Mode,
        *,
        actor: str,
        providers: Sequence[str] | None = None,
        now: float | None = None,
    ) -> str | None:
        """Choose the vault's custody mode and make its KEK. Once only: custody
        modes are immutable. Returns the client share (base64) in client modes;
        it is not stored anywhere and cannot be shown again."""
        access.require_admin(actor, "setting a custody mode")
        custody = custody_mode(mode)
        now = self._clock() if now is None else now
        with self._log.write_lock():
            state = self._state(org, vault)
            if state.mode is not None:
                raise Conflict(
                    f"vault {vault!r} already has custody mode {state.mode.mode!r}; custody modes are immutable "
                    "(create a new vault and move the secrets to change it)"
                )
            event, client_share = self._keks.make(org, vault, custody, providers, actor=actor, ts=_ts(now))
            self._emit([event])
            self._emit_audit(
                actor,
                "vault.mode_set",
                f"vault:{org}/{vault}",
                now,
                event.event_id,
                mode=mode,
                providers=[slot.provider for slot in event.slots],
            )
            return client_share

    def _kek(self, state: _VaultState, client_share: str | bytes | bytearray | None, now: float) -> AESGCM:
        if state.mode is None:
            raise CustodyError(
                f"vault {state.vault!r} has no custody mode yet; an admin sets one with `warden vault mode`"
            )
        return self._keks.aead(
            state.org, state.vault, state.mode, client_share, now, attested=state.attestation is not None
        )

    def evict(self, now: float | None = None, *, everything: bool = False) -> int:
        """Drop cached KEKs past their TTL (or all of them); returns how many went."""
        return self._keks.evict(self._clock() if now is None else now, everything=everything)

    # ---- CMEK ---------------------------------------------------------------

    def load_cmek(self, org: str, vault: str, cmek: bytes | bytearray) -> str:
        """Hand this process the vault's customer-managed key (kept in memory only).
        Refused unless its fingerprint is the vault's current or retiring one."""
        state = self._state(org, vault)
        fp = fingerprint(cmek)
        if state.cmek is None or fp not in (state.cmek.fingerprint, state.cmek.retiring):
            raise InvalidKey()
        return self._cmeks.load(cmek)

    def set_cmek(
        self,
        org: str,
        vault: str,
        cmek: bytes | bytearray,
        *,
        actor: str,
        batch_size: int = CMEK_BATCH,
        now: float | None = None,
        between_batches: Callable[[int], None] | None = None,
    ) -> str:
        """Put a customer-managed key on the vault, or rotate to a new one.

        Announces the new key (with the old one retiring), re-wraps every
        version's DEK in batches of ``batch_size`` (holding the write lock only
        per batch, so reads and writes go on between batches), then retires the
        old key. Returns the new fingerprint. The old key must be loaded."""
        access.require_admin(actor, "setting a customer-managed key")
        check_key(cmek)
        now = self._clock() if now is None else now
        new_fp = fingerprint(cmek)
        with self._log.write_lock():
            state = self._state(org, vault)
            old = state.cmek
            if old is None:
                old_fp = None
            elif old.retiring is not None:
                if new_fp != old.fingerprint:
                    raise Conflict(f"a CMEK rotation of vault {vault!r} is under way; finish it with the same new key")
                old_fp = old.retiring  # resuming an interrupted rotation
            elif new_fp == old.fingerprint:
                return new_fp
            else:
                old_fp = old.fingerprint
            if old_fp is not None and not self._cmeks.holds(old_fp):
                raise CustodyError("load the vault's current customer-managed key first (Vaults.load_cmek)")
            self._cmeks.load(cmek)
            seq = (old.seq if old else 0) + 1
            self._emit(
                [
                    CmekSet.new(
                        org=org, vault=vault, actor=actor, ts=_ts(now), fingerprint=new_fp, retiring=old_fp, seq=seq
                    )
                ]
            )
        done = 0
        while True:
            with self._log.write_lock():
                state = self._state(org, vault)
                self.refresh()
                todo = [
                    s for versions in state.secrets.values() for s in versions.values() if s.cmek_fingerprint != new_fp
                ][:batch_size]
                if not todo:
                    break
                self._emit([self._rewrap(state, s, new_fp) for s in todo])
                done += len(todo)
            if between_batches is not None:
                between_batches(done)
        if old_fp is not None:
            with self._log.write_lock():
                self._emit(
                    [
                        CmekSet.new(
                            org=org,
                            vault=vault,
                            actor=actor,
                            ts=_ts(now),
                            fingerprint=new_fp,
                            retiring=None,
                            seq=seq + 1,
                        )
                    ]
                )
            self._cmeks.forget(old_fp)
        self._emit_audit(
            actor,
            "vault.cmek_set",
            f"vault:{org}/{vault}",
            now,
            new_fp,
            str(old_fp),
            str(seq),
            fingerprint=new_fp,
            previous=old_fp,
            rewrapped=done,
        )
        return new_fp

    def _rewrap(self, state: _VaultState, secret: SecretVersionWritten, new_fp: str) -> SecretVersionWritten:
        # The version keeps its author and time; who rotated, and when, is the cmek.set event's.
        outer = self._cmeks.rotate(
            from_b64(secret.wrapped_dek),
            secret.cmek_fingerprint,
            new_fp,
            (state.org, state.vault, secret.path, secret.version),
        )
        return secret.derive(
            wrapped_dek=base64.b64encode(outer).decode(), cmek_fingerprint=new_fp, wrap_seq=secret.wrap_seq + 1
        )

    # ---- secrets -------------------------------------------------------------

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
        with self._log.write_lock():
            self.refresh()
            state = self._state(org, vault)
            kek = self._kek(state, client_share, now)
            assert state.mode is not None
            version = max(state.secrets.get(path, {}), default=0) + 1
            dek = random_key()
            try:
                ciphertext = seal(AESGCM(dek), value, _secret_aad(org, vault, path, version, secret_type))
                wrapped = seal(kek, dek, _dek_aad(org, vault, path, version, state.mode.kek_id))
            finally:
                wipe(dek)
            with self._lock:
                cmek_fp = state.cmek.fingerprint if state.cmek is not None else None
            if cmek_fp is not None:
                wrapped = self._cmeks.seal(cmek_fp, wrapped, (org, vault, path, version))
            written = SecretVersionWritten.new(
                org=org,
                vault=vault,
                actor=actor,
                ts=_ts(now),
                path=path,
                version=version,
                secret_type=secret_type,
                kek_id=state.mode.kek_id,
                wrapped_dek=base64.b64encode(wrapped).decode(),
                ciphertext=base64.b64encode(ciphertext).decode(),
                cmek_fingerprint=cmek_fp,
                development=state.mode.development,
                public=dict(public or {}),
            )
            self._emit([written])
        self._emit_audit(
            actor,
            "secret.written",
            f"vault:{org}/{vault}/{path}@{version}",
            now,
            written.event_id,
            secret_type=secret_type,
        )
        return version

    def _version(self, state: _VaultState, path: str, version: int | None) -> SecretVersionWritten:
        versions = state.secrets.get(path)
        if version is None:
            active = [v for v in (versions or {}) if (path, v) not in state.deactivated]
            if not active:
                raise NotFound(f"no active version of {path!r} in vault {state.vault!r}")
            version = max(active)
        if not versions or version not in versions:
            raise NotFound(f"no version {version} of {path!r} in vault {state.vault!r}")
        if (path, version) in state.deactivated:
            raise NotFound(f"version {version} of {path!r} in vault {state.vault!r} is deactivated")
        return versions[version]

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
            with self._lock:
                info = self._info(self._state(org, vault), secret)
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
        self.refresh()
        check_path(path)
        state = self._state(org, vault)
        with self._lock:
            grants = {slot: allowed for slot, (_, allowed) in state.grants.items()}
        self._enforce(
            access.refuse_before_lookup(vault, path, actor, grants, self._intents_api_enabled),
            actor,
            f"vault:{org}/{vault}/{path}" + (f"@{version}" if version is not None else ""),
            now,
        )
        with self._lock:
            # The version and the CMEK that wraps it are taken together, so a
            # rotation finishing in between cannot strand this read.
            secret = self._version(state, path, version)
            layer = self._cmeks.key(secret.cmek_fingerprint, cmek) if secret.cmek_fingerprint else None
        resource = f"vault:{org}/{vault}/{path}@{secret.version}"
        self._enforce(
            access.refuse_after_lookup(actor, secret.secret_type, self._intents_api_enabled), actor, resource, now
        )
        if shown:
            self._enforce(access.refuse_to_show(path, secret.version, secret.secret_type), actor, resource, now)
        plaintext = self._decrypt(state, secret, layer, client_share, now)
        self._emit_audit(
            actor, "secret.read", resource, now, actor, resource, _ts(now).isoformat(), secret_type=secret.secret_type
        )
        return secret, plaintext

    def _decrypt(
        self, state: _VaultState, secret: SecretVersionWritten, cmek: AESGCM | None, client_share: Any, now: float
    ) -> bytearray:
        assert state.mode is not None
        if secret.kek_id != state.mode.kek_id:
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

    def deactivate(
        self, org: str, vault: str, path: str, version: int | None = None, *, actor: str, now: float | None = None
    ) -> list[int]:
        """Deactivate one version, or every active version when ``version`` is None. Returns the versions deactivated."""
        access.require_admin(actor, "deactivating a secret")
        now = self._clock() if now is None else now
        with self._log.write_lock():
            self.refresh()
            state = self._state(org, vault)
            versions = state.secrets.get(path, {})
            if version is not None and version not in versions:
                raise NotFound(f"no version {version} of {path!r} in vault {vault!r}")
            targets = [
                v
                for v in ([version] if version is not None else sorted(versions))
                if (path, v) not in state.deactivated
            ]
            events = [
                SecretDeactivated.new(org=org, vault=vault, actor=actor, ts=_ts(now), path=path, version=v)
                for v in targets
            ]
            self._emit(events)
        for event in events:
            self._emit_audit(
                actor, "secret.deactivated", f"vault:{org}/{vault}/{path}@{event.version}", now, event.event_id
            )
        return targets

    def list_secrets(self, org: str, vault: str, prefix: str = "", *, actor: str) -> list[SecretInfo]:
        """Metadata of every version under ``prefix`` (admins and services only)."""
        access.require_lister(actor)
        self.refresh()
        state = self._state(org, vault)
        with self._lock:
            return [
                self._info(state, state.secrets[path][v])
                for path in sorted(state.secrets)
                if prefix_covers(prefix, path)
                for v in sorted(state.secrets[path])
            ]

    def _info(self, state: _VaultState, s: SecretVersionWritten) -> SecretInfo:
        return SecretInfo(
            state.org,
            state.vault,
            s.path,
            s.version,
            s.secret_type,
            (s.path, s.version) not in state.deactivated,
            s.ts,
            s.actor,
            s.cmek_fingerprint,
            s.development,
            dict(s.public),
        )

    def active_versions(self, org: str, vault: str, path: str) -> list[int]:
        """The active versions at one path, looked up directly (the signer asks this per intent)."""
        self.refresh()
        state = self._state(org, vault)
        with self._lock:
            return sorted(v for v in state.secrets.get(path, {}) if (path, v) not in state.deactivated)

    # ---- policies --------------------------------------------------------------

    def grant(
        self,
        org: str,
        vault: str,
        agent_id: str,
        prefix: str,
        *,
        actor: str,
        now: float | None = None,
        granted: bool = True,
    ) -> None:
        """Let ``agent_id`` read secrets under ``prefix`` (or revoke that with granted=False)."""
        access.require_admin(actor, "granting vault access")
        if prefix:
            check_path(prefix.rstrip("/"))
        now = self._clock() if now is None else now
        with self._log.write_lock():
            self.refresh()
            state = self._state(org, vault)
            current = state.grants.get((agent_id, prefix))
            seq = current[0][0] + 1 if current else 1
            event = PolicyGranted.new(
                org=org,
                vault=vault,
                actor=actor,
                ts=_ts(now),
                agent_id=agent_id,
                prefix=prefix,
                granted=granted,
                seq=seq,
            )
            self._emit([event])
        self._emit_audit(
            actor,
            "policy.granted" if granted else "policy.revoked",
            f"vault:{org}/{vault}/{prefix}",
            now,
            event.event_id,
            agent_id=agent_id,
        )

    def revoke(self, org: str, vault: str, agent_id: str, prefix: str, *, actor: str, now: float | None = None) -> None:
        self.grant(org, vault, agent_id, prefix, actor=actor, now=now, granted=False)

    def require_attestation(self, org: str, vault: str, *, actor: str, now: float | None = None) -> bool:
        """From now on the vault's KEK is released only to an attested signer (``signer.key_release``).
        Immutable like the custody mode: there is no way back. Returns False if it already was."""
        access.require_admin(actor, "requiring attestation")
        now = self._clock() if now is None else now
        with self._log.write_lock():
            state = self._state(org, vault)
            if state.attestation is not None:
                return False
            event = AttestationRequirementSet.new(org=org, vault=vault, actor=actor, ts=_ts(now))
            self._emit([event])
            self._emit_audit(actor, "vault.attestation_required", f"vault:{org}/{vault}", now, event.event_id)
            return True

    def mode(self, org: str, vault: str) -> str | None:
        state = self._state(org, vault)
        return state.mode.mode if state.mode else None

    def cmek_fingerprint(self, org: str, vault: str) -> str | None:
        """The fingerprint of the vault's current customer-managed key, or None without one."""
        state = self._state(org, vault)
        with self._lock:
            return state.cmek.fingerprint if state.cmek is not None else None


# Associated data of the two layers this module seals; the KEK's is in ``keks``, the CMEK's in ``cmek``.


def _dek_aad(org: str, vault: str, path: str, version: int, kek_id: str) -> bytes:
    return aad("warden/dek/v1", org, vault, path, version, kek_id)


def _secret_aad(org: str, vault: str, path: str, version: int, secret_type: str) -> bytes:
    return aad("warden/secret/v1", org, vault, path, version, secret_type)


def _ts(now: float) -> datetime:
    return datetime.fromtimestamp(now, tz=timezone.utc)
