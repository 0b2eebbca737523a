"""Vaults and secrets, event-sourced: every fact is a ciphertext-only event.

Key hierarchy (DESIGN §4):

    root of trust ──wraps──► KEK (one AES-256-GCM key per vault, or its shares)
    KEK ──wraps──► DEK (one AES-256-GCM key per secret version)
    DEK ──encrypts──► the secret
    [CMEK ──wraps──► the KEK-wrapped DEK, when the vault has a customer key]

Associated data binds org, vault, path and version at every layer, so a
ciphertext copied into another slot does not decrypt. Each failure to
authenticate is the one opaque ``InvalidKey``.

Custody modes, set once per vault and immutable after:

* ``standard``: the KEK wrapped by the primary root.
* ``2of2_client_custody``: KEK = server share XOR client share; the client share
  is returned once (base64) and every read and write needs it.
* ``2of3_multi_hsm``: Shamir 2-of-3 over GF(256), each share wrapped by a
  different root provider; any two rebuild the KEK, so one provider may be down.
* ``2of3_client_custody``: Shamir 2-of-3 with two shares wrapped by two
  providers and the third held by the client; every read needs the client share
  plus either provider.

State is derived only from events (``Vaults.apply``, idempotent). Events go to
whatever ``publish`` the caller gives: the lead's Kafka producer for the
compacted topic ``warden.vault`` (``VaultEvent.key`` is the record key), or the
embedded ``FileEventLog`` (JSONL, fsync'd) that lets the CLI and the signer share
vaults without a broker. Unwrapped KEKs are cached in memory only, for
``kek_ttl`` seconds, as AES-GCM contexts; the raw key bytes are wiped as soon as
the context holds them. Client-custody KEKs are never cached: only the server
side's unwrapped share is, so each read still needs the client share.

Time is an argument: every method takes ``now`` (seconds since the epoch), and
falls back to the injected ``clock``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import itertools
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, Union, get_args

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.fields import UtcDatetime
from schemas.models import Record, event_id as _derived_id
from signer.custody import shamir
from signer.custody._crypto import KEY_BYTES, aad, open_into, random_key, seal, wipe
from signer.custody.errors import (
    Conflict,
    CustodyError,
    InvalidKey,
    NotFound,
    PermissionDenied,
    ProviderUnavailable,
)
from signer.custody.roots import RootOfTrust

Mode = Literal["standard", "2of2_client_custody", "2of3_multi_hsm", "2of3_client_custody"]
MODES: tuple[str, ...] = get_args(Mode)
CLIENT_MODES = frozenset({"2of2_client_custody", "2of3_client_custody"})

SecretType = Literal["api_key", "password", "private_key", "ssh_key", "token", "certificate", "generic"]
SECRET_TYPES: tuple[str, ...] = get_args(SecretType)
# Key material an agent with the Intents API may never read: it signs through the signer instead.
KEY_MATERIAL = frozenset({"private_key", "ssh_key"})

AGENT_KEYS_VAULT = "__agent-keys"
MAX_SECRET_BYTES = 64 * 1024
DEFAULT_KEK_TTL = 300.0
CMEK_BATCH = 100

_ORG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_VAULT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,127}$")


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


class KeySlot(BaseModel):
    """One wrapped piece of a vault's KEK: the whole KEK (x = 0) or a share (x ≥ 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: int = Field(ge=0, le=255)
    provider: str
    wrapped: str = Field(description="base64 of the root's envelope")


class VaultEvent(Record):
    """Base of every vault event. Carries ciphertext and metadata only, never a plaintext key."""

    type: str
    event_id: str
    org: str
    vault: str
    actor: str
    ts: UtcDatetime

    @property
    def key(self) -> str:
        """Record key on the compacted topic: the latest event per key is the state of that slot.
        Each event type defines it; a bare VaultEvent is never written."""
        raise TypeError(f"{type(self).__name__} has no record key; only concrete vault events are written")

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> "VaultEvent":
        return parse_event(raw)


class VaultCreated(VaultEvent):
    type: Literal["vault.created"] = "vault.created"

    @property
    def key(self) -> str:
        return f"vault:{self.org}/{self.vault}"


class ModeSet(VaultEvent):
    """The vault's custody mode and its KEK, wrapped (whole or as shares). Set once."""

    type: Literal["vault.mode_set"] = "vault.mode_set"
    mode: Mode
    kek_id: str
    slots: tuple[KeySlot, ...]
    kek_commitment: str = Field(description="HMAC-SHA256 under the KEK itself: checks a rebuilt KEK without revealing it")
    development: bool = Field(description="true when any slot is wrapped by the local development root")

    @property
    def key(self) -> str:
        return f"mode:{self.org}/{self.vault}"


class SecretVersionWritten(VaultEvent):
    type: Literal["secret.version_written"] = "secret.version_written"
    path: str
    version: int = Field(ge=1)
    secret_type: SecretType
    kek_id: str
    wrapped_dek: str = Field(description="base64: DEK sealed by the KEK, then by the CMEK when cmek_fingerprint is set")
    ciphertext: str = Field(description="base64: the secret sealed by the DEK")
    cmek_fingerprint: str | None = None
    wrap_seq: int = Field(default=0, ge=0, description="bumped by each CMEK re-wrap; the highest wins")
    development: bool = False
    public: dict[str, str] = Field(default_factory=dict, description="public metadata (a key's address); never secret")

    @property
    def key(self) -> str:
        return f"secret:{self.org}/{self.vault}/{self.path}@{self.version}"


class SecretDeactivated(VaultEvent):
    type: Literal["secret.deactivated"] = "secret.deactivated"
    path: str
    version: int = Field(ge=1)

    @property
    def key(self) -> str:
        return f"deactivated:{self.org}/{self.vault}/{self.path}@{self.version}"


class PolicyGranted(VaultEvent):
    """Grants (or, with granted=false, revokes) an agent read access to a path prefix."""

    type: Literal["policy.granted"] = "policy.granted"
    agent_id: str
    prefix: str
    granted: bool = True
    seq: int = Field(default=1, ge=1, description="per (agent, prefix); the highest wins")

    @property
    def key(self) -> str:
        return f"grant:{self.org}/{self.vault}/{self.agent_id}/{self.prefix}"


class CmekSet(VaultEvent):
    """The vault's customer-managed key, by SHA-256 fingerprint only. While
    ``retiring`` is set a rotation is under way and both keys are in use."""

    type: Literal["cmek.set"] = "cmek.set"
    fingerprint: str
    retiring: str | None = None
    seq: int = Field(ge=1)

    @property
    def key(self) -> str:
        return f"cmek:{self.org}/{self.vault}"


AnyVaultEvent = Annotated[
    Union[VaultCreated, ModeSet, SecretVersionWritten, SecretDeactivated, PolicyGranted, CmekSet],
    Field(discriminator="type"),
]
_EVENT_ADAPTER: TypeAdapter[VaultEvent] = TypeAdapter(AnyVaultEvent)


def parse_event(raw: bytes | str | Mapping[str, Any]) -> VaultEvent:
    """Parse one event from its wire form (JSON bytes/str or a dict)."""
    if isinstance(raw, Mapping):
        return _EVENT_ADAPTER.validate_python(raw)
    return _EVENT_ADAPTER.validate_json(raw)


# --------------------------------------------------------------------------
# Event logs
# --------------------------------------------------------------------------


class VaultLog(Protocol):
    def publish(self, event: VaultEvent) -> None: ...

    def poll(self) -> list[VaultEvent]: ...

    def write_lock(self) -> contextlib.AbstractContextManager[None]: ...


class CallbackLog:
    """Adapts a bare ``publish`` callable (e.g. a Kafka producer): nothing to poll,
    the consumer feeds events in through ``Vaults.replay``; writes are serialized
    within this process only, so run one writer per vault (the admin CLI)."""

    def __init__(self, publish: Callable[[VaultEvent], None]):
        self._publish = publish
        self._lock = threading.RLock()

    def publish(self, event: VaultEvent) -> None:
        self._publish(event)

    def poll(self) -> list[VaultEvent]:
        return []

    def write_lock(self) -> contextlib.AbstractContextManager[None]:
        return self._lock  # type: ignore[return-value]


class FileEventLog:
    """The embedded event log: one JSON event per line, appended and fsync'd.

    Several processes share it: writers take an exclusive ``flock`` on a sidecar
    lock file (so the version a writer computes is still free when it appends),
    readers read what was appended since they last looked. Only complete lines
    are consumed, so a reader never sees half an event.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._offset = 0
        self._read_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None
        self.skipped = 0

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        with self._write_lock:
            # flock is per open file: taking it again on a new fd from this
            # process would deadlock, so nested holders share one.
            if self._depth == 0:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                    os.close(self._lock_fd)
                    self._lock_fd = None

    def publish(self, event: VaultEvent) -> None:
        self.publish_many([event])

    def publish_many(self, events: Sequence[VaultEvent]) -> None:
        """Append events with one fsync: a CMEK re-wrap batch costs one disk flush, not a hundred."""
        data = b"".join(event.to_bytes() + b"\n" for event in events)
        with self.write_lock():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)

    def poll(self) -> list[VaultEvent]:
        with self._read_lock:
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                return []
            if size <= self._offset:
                return []
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read(size - self._offset)
            end = chunk.rfind(b"\n") + 1
            self._offset += end
            events = []
            for line in chunk[:end].splitlines():
                if not line.strip():
                    continue
                try:
                    events.append(parse_event(line))
                except ValidationError:
                    # A line this version cannot read must not stop every vault;
                    # it holds no key material, so saying so is safe.
                    self.skipped += 1
                    print(f"warden.vault: skipped an unreadable event in {self.path}", file=sys.stderr)
            return events


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------


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


@dataclass
class _CacheEntry:
    expires: float
    aead: AESGCM | None = None  # the whole KEK, for modes without a client share
    shares: list[tuple[int, bytearray]] | None = None  # server-side shares, for client modes

    def wipe(self) -> None:
        for _, share in self.shares or ():
            wipe(share)
        self.aead = None
        self.shares = None


def parse_actor(actor: str) -> tuple[str, str]:
    kind, sep, ident = actor.partition(":")
    if not sep or kind not in ("admin", "agent", "service") or not ident:
        raise PermissionDenied(f"unknown actor {actor!r}: expected admin:<key id>, agent:<id> or service:<name>")
    return kind, ident


def check_path(path: str) -> str:
    if not isinstance(path, str) or len(path) > 512:
        raise CustodyError("a secret path is at most 512 characters")
    segments = path.split("/")
    if not all(_SEGMENT_RE.match(s) for s in segments):
        raise CustodyError(
            f"bad secret path {path!r}: '/'-separated segments of letters, digits and _.:@+- "
            "(not starting with '.' or '-'), no empty segments"
        )
    return path


def _check_names(org: str, vault: str) -> None:
    if not isinstance(org, str) or not _ORG_RE.match(org):
        raise CustodyError(f"bad org {org!r}: letters, digits and _.- (at most 64, starting with a letter or digit)")
    if not isinstance(vault, str) or not _VAULT_RE.match(vault):
        raise CustodyError(f"bad vault name {vault!r}: letters, digits and _.- (at most 64)")


def prefix_covers(prefix: str, path: str) -> bool:
    """``prefix`` covers ``path`` on segment boundaries: "keys/" and "keys" cover
    "keys/x"; "keys/eth" covers "keys/eth" and "keys/eth/x" but not "keys/ethereum"."""
    if prefix == "" or prefix == path:
        return True
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path.startswith(prefix + "/")


def fingerprint(cmek: bytes | bytearray) -> str:
    """SHA-256 fingerprint of a customer-managed key: the only thing about it that is stored."""
    return hashlib.sha256(bytes(b"warden/cmek\x00") + cmek).hexdigest()


def _b64d(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey() from None


def _client_share_bytes(client_share: str | bytes | bytearray | None) -> bytearray:
    # Wrong or missing client shares fail exactly like a wrong key: no oracle.
    if client_share is None:
        raise InvalidKey()
    if isinstance(client_share, str):
        try:
            raw = bytearray(base64.b64decode(client_share.strip(), validate=True))
        except (binascii.Error, ValueError):
            raise InvalidKey() from None
    else:
        raw = bytearray(client_share)
    if len(raw) != KEY_BYTES:
        wipe(raw)
        raise InvalidKey()
    return raw


def _intents_refusal(agent_id: str, secret_type: str) -> str:
    return (
        f"agent {agent_id!r} has the Intents API enabled and may not read {secret_type} secrets; "
        "submit a transaction intent and the signer signs with the key instead"
    )


def _ts(now: float) -> datetime:
    return datetime.fromtimestamp(now, tz=timezone.utc)


# --------------------------------------------------------------------------
# Vaults
# --------------------------------------------------------------------------


class Vaults:
    """The vault state machine: apply events, make new ones, read secrets.

    ``roots`` is one root or a mapping name → root; the first is the primary
    root that ``standard`` vaults use. ``publish`` is a ``VaultLog`` (e.g.
    ``FileEventLog``) or a bare callable. ``intents_api_enabled(agent_id)``
    answers from the agent's signed policy; unknown agents are treated as
    enabled, the stricter case. ``audit`` receives audit records (dicts shaped
    like ``schemas.models.AuditEvent``) for every read, refusal and change.
    """

    def __init__(
        self,
        roots: RootOfTrust | Mapping[str, RootOfTrust] | Sequence[RootOfTrust],
        publish: VaultLog | Callable[[VaultEvent], None],
        *,
        clock: Callable[[], float] = time.time,
        kek_ttl: float = DEFAULT_KEK_TTL,
        intents_api_enabled: Callable[[str], bool] | None = None,
        audit: Callable[[dict], None] | None = None,
    ):
        if isinstance(roots, Mapping):
            self._roots = dict(roots)
        elif isinstance(roots, Sequence):
            self._roots = {r.name: r for r in roots}
        else:
            self._roots = {roots.name: roots}
        if not self._roots:
            raise CustodyError("Vaults needs at least one root of trust")
        self.primary = next(iter(self._roots.values()))
        self._log: VaultLog = publish if hasattr(publish, "poll") else CallbackLog(publish)  # type: ignore[arg-type]
        self._clock = clock
        self.kek_ttl = kek_ttl
        self._intents_api_enabled = intents_api_enabled or (lambda agent_id: True)
        self._audit = audit or (lambda record: None)
        self._lock = threading.RLock()
        self._vaults: dict[tuple[str, str], _VaultState] = {}
        self._cache: dict[str, _CacheEntry] = {}
        self._cmek_keys: dict[str, AESGCM] = {}

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> "Vaults":
        """The embedded default: roots from settings, events in $WARDEN_HOME/vault/events.jsonl."""
        from signer.custody.roots import roots_from_settings

        vaults = cls(roots_from_settings(settings), FileEventLog(Path(settings.home) / "vault" / "events.jsonl"), **kwargs)
        vaults.refresh()
        return vaults

    def __repr__(self) -> str:
        return f"Vaults(roots={list(self._roots)!r}, vaults={len(self._vaults)}, cached_keks={len(self._cache)})"

    @property
    def roots(self) -> dict[str, RootOfTrust]:
        return dict(self._roots)

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
                    VaultCreated(event_id=event.event_id, org=event.org, vault=event.vault, actor=event.actor, ts=event.ts),
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

    # ---- access control --------------------------------------------------

    def _require_admin(self, actor: str, action: str) -> None:
        kind, _ = parse_actor(actor)
        if kind != "admin":
            raise PermissionDenied(f"{action} is for admins only (actor {actor!r} is not admin:<key id>)")

    def _audit_record(self, actor: str, action: str, resource: str, now: float, **details: Any) -> dict:
        kind, ident = parse_actor(actor)
        ts = _ts(now)
        return {
            "event_id": _derived_id("vault", actor, action, resource, ts.isoformat(), uuid.uuid4().hex),
            "actor": actor,
            "action": action,
            "resource": resource,
            "ts": ts,
            "agent_id": ident if kind == "agent" else None,
            "details": details,
        }

    def _emit_audit(self, actor: str, action: str, resource: str, now: float, **details: Any) -> dict:
        record = self._audit_record(actor, action, resource, now, **details)
        self._audit(record)
        return record

    def _refuse(self, actor: str, resource: str, now: float, reason: str, message: str, **details: Any) -> PermissionDenied:
        record = self._emit_audit(actor, "secret.read_refused", resource, now, reason=reason, **details)
        return PermissionDenied(message, audit=record)

    def _check_agent_before_lookup(self, state: _VaultState, path: str, version: int | None, actor: str, now: float) -> None:
        """Agents are checked before the secret is looked up, so a refusal never
        tells an agent whether a path exists."""
        kind, ident = parse_actor(actor)
        if kind != "agent":
            return
        resource = f"vault:{state.org}/{state.vault}/{path}" + (f"@{version}" if version is not None else "")
        if state.vault == AGENT_KEYS_VAULT:
            # Signing keys are for the signer alone, whatever an agent's policy says.
            if self._intents_api_enabled(ident):
                raise self._refuse(actor, resource, now, "intents_api_enabled",
                                   _intents_refusal(ident, "private_key"), secret_type="private_key")
            raise self._refuse(actor, resource, now, "signing_keys",
                               f"agent {ident!r} may not read signing keys: only the signer opens them")
        with self._lock:
            granted = any(
                allowed and agent == ident and prefix_covers(prefix, path)
                for (agent, prefix), (_, allowed) in state.grants.items()
            )
        if not granted:
            raise self._refuse(actor, resource, now, "no_grant",
                               f"agent {ident!r} has no grant covering {path!r} in vault {state.vault!r}; an admin "
                               "grants one with `warden vault grant`")

    def _check_agent_after_lookup(self, state: _VaultState, secret: SecretVersionWritten, actor: str, now: float) -> None:
        kind, ident = parse_actor(actor)
        if kind == "agent" and secret.secret_type in KEY_MATERIAL and self._intents_api_enabled(ident):
            raise self._refuse(actor, f"vault:{state.org}/{state.vault}/{secret.path}@{secret.version}", now,
                               "intents_api_enabled", _intents_refusal(ident, secret.secret_type),
                               secret_type=secret.secret_type)

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
        self._require_admin(actor, "creating a vault")
        _check_names(org, vault)
        now = self._clock() if now is None else now
        with self._log.write_lock():
            self.refresh()
            if (org, vault) in self._vaults:
                raise Conflict(f"vault {vault!r} already exists in org {org!r}")
            self._emit([VaultCreated(event_id=uuid.uuid4().hex, org=org, vault=vault, actor=actor, ts=_ts(now))])
            self._emit_audit(actor, "vault.created", f"vault:{org}/{vault}", now)
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
        self._require_admin(actor, "setting a custody mode")
        if mode not in MODES:
            raise CustodyError(f"unknown custody mode {mode!r}; choose one of {', '.join(MODES)}")
        now = self._clock() if now is None else now
        with self._log.write_lock():
            state = self._state(org, vault)
            if state.mode is not None:
                raise Conflict(
                    f"vault {vault!r} already has custody mode {state.mode.mode!r}; custody modes are immutable "
                    "(create a new vault and move the secrets to change it)"
                )
            roots = self._pick_roots(mode, providers)
            kek_id = uuid.uuid4().hex
            kek = random_key()
            pieces: list[tuple[int, bytearray]] = []
            client: bytearray | None = None
            try:
                if mode == "standard":
                    pieces = [(0, bytearray(kek))]
                elif mode == "2of2_client_custody":
                    server, client = shamir.xor_split(kek)
                    pieces = [(1, server)]
                else:
                    shares = shamir.split(kek, 2, 3)
                    if mode == "2of3_multi_hsm":
                        pieces = shares
                    else:
                        pieces, (_, client) = shares[:2], shares[2]
                slots = tuple(
                    KeySlot(
                        x=x,
                        provider=root.name,
                        wrapped=base64.b64encode(root.wrap(bytes(piece), _slot_aad(org, vault, kek_id, mode, x, root.name))).decode(),
                    )
                    for (x, piece), root in zip(pieces, roots)
                )
                event = ModeSet(
                    event_id=uuid.uuid4().hex, org=org, vault=vault, actor=actor, ts=_ts(now),
                    mode=mode, kek_id=kek_id, slots=slots,
                    kek_commitment=_commitment(kek, org, vault, kek_id),
                    development=any(getattr(r, "development", False) for r in roots),
                )
                self._emit([event])
                self._emit_audit(actor, "vault.mode_set", f"vault:{org}/{vault}", now, mode=mode,
                                 providers=[r.name for r in roots])
                return base64.b64encode(client).decode() if client is not None else None
            finally:
                wipe(kek)
                for _, piece in pieces:
                    wipe(piece)
                wipe(client)

    def _pick_roots(self, mode: str, providers: Sequence[str] | None) -> list[RootOfTrust]:
        needed = {"standard": 1, "2of2_client_custody": 1, "2of3_multi_hsm": 3, "2of3_client_custody": 2}[mode]
        names = list(providers) if providers is not None else list(self._roots)[:needed]
        missing = [n for n in names if n not in self._roots]
        if missing:
            raise ProviderUnavailable(f"root provider(s) {missing} are not configured; configured: {list(self._roots)}")
        if len(set(names)) != len(names) or len(names) != needed:
            raise CustodyError(
                f"custody mode {mode!r} needs {needed} distinct root provider(s), got {names}; configure more with "
                "WARDEN_ROOT_PROVIDERS"
            )
        return [self._roots[n] for n in names]

    # ---- KEKs --------------------------------------------------------------

    def _unwrap_slot(self, state: _VaultState, slot: KeySlot) -> bytearray:
        mode = state.mode
        assert mode is not None
        root = self._roots.get(slot.provider)
        if root is None:
            raise ProviderUnavailable(f"root provider {slot.provider!r} is not configured here")
        associated = _slot_aad(state.org, state.vault, mode.kek_id, mode.mode, slot.x, slot.provider)
        try:
            piece = root.unwrap(_b64d(slot.wrapped), associated)
        except CustodyError:
            raise
        except Exception as exc:
            # A provider library's error text is not ours to repeat (it may echo
            # request bodies); its class name is enough to debug an outage.
            raise ProviderUnavailable(f"root provider {slot.provider!r} failed: {type(exc).__name__}") from None
        if len(piece) != KEY_BYTES:
            wipe(piece)
            raise InvalidKey()
        return piece

    def _server_pieces(self, state: _VaultState, wanted: int) -> list[tuple[int, bytearray]]:
        """Unwrap ``wanted`` slots, skipping providers that are down. Fails closed:
        any authentication failure makes the whole attempt InvalidKey if too few remain."""
        assert state.mode is not None
        pieces: list[tuple[int, bytearray]] = []
        auth_failed = False
        outages: list[str] = []
        for slot in state.mode.slots:
            if len(pieces) == wanted:
                break
            try:
                pieces.append((slot.x, self._unwrap_slot(state, slot)))
            except InvalidKey:
                auth_failed = True
            except ProviderUnavailable as exc:
                outages.append(str(exc))
        if len(pieces) < wanted:
            for _, piece in pieces:
                wipe(piece)
            if auth_failed:
                raise InvalidKey()
            raise ProviderUnavailable("; ".join(outages) or "no root provider could unwrap this vault's KEK")
        return pieces

    def _kek(self, state: _VaultState, client_share: str | bytes | bytearray | None, now: float) -> AESGCM:
        mode = state.mode
        if mode is None:
            raise CustodyError(f"vault {state.vault!r} has no custody mode yet; an admin sets one with `warden vault mode`")
        if mode.mode not in CLIENT_MODES and client_share is not None:
            raise CustodyError(f"vault {state.vault!r} is in mode {mode.mode!r}, which takes no client share")
        with self._lock:
            entry = self._cache.get(mode.kek_id)
            if entry is not None and entry.expires <= now:
                entry.wipe()
                del self._cache[mode.kek_id]
                entry = None
            if entry is None:
                entry = self._load_kek(state, now)
                self._cache[mode.kek_id] = entry
            if entry.aead is not None:
                return entry.aead
            assert entry.shares is not None
            client = _client_share_bytes(client_share)
            kek: bytearray | None = None
            try:
                if mode.mode == "2of2_client_custody":
                    kek = shamir.xor(entry.shares[0][1], client)
                else:
                    kek = shamir.combine([entry.shares[0], (3, client)])
                if not hmac.compare_digest(_commitment(kek, state.org, state.vault, mode.kek_id), mode.kek_commitment):
                    raise InvalidKey()
                return AESGCM(kek)
            finally:
                wipe(client)
                wipe(kek)

    def _load_kek(self, state: _VaultState, now: float) -> _CacheEntry:
        mode = state.mode
        assert mode is not None
        expires = now + self.kek_ttl
        if mode.mode == "standard":
            pieces = self._server_pieces(state, 1)
            return _CacheEntry(expires, aead=self._checked_aead(state, pieces[0][1]))
        if mode.mode in CLIENT_MODES:
            # Only one server piece is needed per read; the client brings the other.
            return _CacheEntry(expires, shares=self._server_pieces(state, 1))
        # 2of3_multi_hsm: any two; a pair that does not verify (a provider that
        # returned a wrong share) is dropped in favour of the other pairs.
        pieces: list[tuple[int, bytearray]] = []
        auth_failed = False
        outages: list[str] = []
        try:
            for slot in mode.slots:
                try:
                    pieces.append((slot.x, self._unwrap_slot(state, slot)))
                except InvalidKey:
                    auth_failed = True
                    continue
                except ProviderUnavailable as exc:
                    outages.append(str(exc))
                    continue
                for pair in itertools.combinations(pieces, 2):
                    if pair[-1] is not pieces[-1]:
                        continue  # pairs without the newest piece were tried already
                    kek = shamir.combine(list(pair))
                    if hmac.compare_digest(_commitment(kek, state.org, state.vault, mode.kek_id), mode.kek_commitment):
                        return _CacheEntry(expires, aead=self._checked_aead(state, kek))
                    wipe(kek)
                    auth_failed = True
        finally:
            for _, piece in pieces:
                wipe(piece)
        if auth_failed or len(pieces) >= 2:
            raise InvalidKey()
        raise ProviderUnavailable(
            "2of3_multi_hsm needs two of its three root providers; " + ("; ".join(outages) or "too few answered")
        )

    def _checked_aead(self, state: _VaultState, kek: bytearray) -> AESGCM:
        assert state.mode is not None
        try:
            if not hmac.compare_digest(_commitment(kek, state.org, state.vault, state.mode.kek_id), state.mode.kek_commitment):
                raise InvalidKey()
            return AESGCM(kek)
        finally:
            wipe(kek)

    def evict(self, now: float | None = None, *, everything: bool = False) -> int:
        """Drop cached KEKs past their TTL (or all of them); returns how many went."""
        now = self._clock() if now is None else now
        with self._lock:
            gone = [k for k, e in self._cache.items() if everything or e.expires <= now]
            for k in gone:
                self._cache.pop(k).wipe()
            return len(gone)

    # ---- CMEK ---------------------------------------------------------------

    def load_cmek(self, org: str, vault: str, cmek: bytes | bytearray) -> str:
        """Hand this process the vault's customer-managed key (kept in memory only).
        Refused unless its fingerprint is the vault's current or retiring one."""
        state = self._state(org, vault)
        fp = fingerprint(cmek)
        if state.cmek is None or fp not in (state.cmek.fingerprint, state.cmek.retiring):
            raise InvalidKey()
        with self._lock:
            self._cmek_keys[fp] = AESGCM(cmek)
        return fp

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
        self._require_admin(actor, "setting a customer-managed key")
        if len(cmek) != KEY_BYTES:
            raise CustodyError("a customer-managed key is 32 bytes (AES-256)")
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
            if old_fp is not None and old_fp not in self._cmek_keys:
                raise CustodyError("load the vault's current customer-managed key first (Vaults.load_cmek)")
            with self._lock:
                self._cmek_keys[new_fp] = AESGCM(cmek)
            seq = (old.seq if old else 0) + 1
            self._emit([CmekSet(event_id=uuid.uuid4().hex, org=org, vault=vault, actor=actor, ts=_ts(now),
                                fingerprint=new_fp, retiring=old_fp, seq=seq)])
        done = 0
        while True:
            with self._log.write_lock():
                state = self._state(org, vault)
                self.refresh()
                todo = [
                    s for versions in state.secrets.values() for s in versions.values()
                    if s.cmek_fingerprint != new_fp
                ][:batch_size]
                if not todo:
                    break
                self._emit([self._rewrap(state, s, new_fp) for s in todo])
                done += len(todo)
            if between_batches is not None:
                between_batches(done)
        if old_fp is not None:
            with self._log.write_lock():
                self._emit([CmekSet(event_id=uuid.uuid4().hex, org=org, vault=vault, actor=actor, ts=_ts(now),
                                    fingerprint=new_fp, retiring=None, seq=seq + 1)])
            with self._lock:
                self._cmek_keys.pop(old_fp, None)
        self._emit_audit(actor, "vault.cmek_set", f"vault:{org}/{vault}", now, fingerprint=new_fp,
                         previous=old_fp, rewrapped=done)
        return new_fp

    def _rewrap(self, state: _VaultState, secret: SecretVersionWritten, new_fp: str) -> SecretVersionWritten:
        # Only the outer CMEK layer changes: the KEK-sealed DEK inside is
        # carried over untouched, so no KEK (and no client share) is needed.
        # The version keeps its author and time; who rotated, and when, is the cmek.set event's.
        inner = self._strip_cmek(state, secret, self._cmek(secret.cmek_fingerprint) if secret.cmek_fingerprint else None)
        try:
            outer = seal(self._cmek(new_fp), inner, _cmek_aad(state.org, state.vault, secret.path, secret.version, new_fp))
        finally:
            wipe(inner)
        return secret.model_copy(update={
            "event_id": uuid.uuid4().hex, "wrapped_dek": base64.b64encode(outer).decode(),
            "cmek_fingerprint": new_fp, "wrap_seq": secret.wrap_seq + 1,
        })

    def _cmek(self, fp: str) -> AESGCM:
        with self._lock:
            aead = self._cmek_keys.get(fp)
        if aead is None:
            raise CustodyError(
                "this vault has a customer-managed key that this process does not hold; load it with Vaults.load_cmek"
            )
        return aead

    def _strip_cmek(self, state: _VaultState, secret: SecretVersionWritten, cmek: AESGCM | None) -> bytearray:
        wrapped = _b64d(secret.wrapped_dek)
        if secret.cmek_fingerprint is None:
            return bytearray(wrapped)
        if cmek is None:
            raise InvalidKey()
        return open_into(
            cmek, wrapped,
            _cmek_aad(state.org, state.vault, secret.path, secret.version, secret.cmek_fingerprint),
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
        self._require_admin(actor, "writing a secret")
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
                wrapped = seal(self._cmek(cmek_fp), wrapped, _cmek_aad(org, vault, path, version, cmek_fp))
            self._emit([SecretVersionWritten(
                event_id=uuid.uuid4().hex, org=org, vault=vault, actor=actor, ts=_ts(now),
                path=path, version=version, secret_type=secret_type, kek_id=state.mode.kek_id,
                wrapped_dek=base64.b64encode(wrapped).decode(), ciphertext=base64.b64encode(ciphertext).decode(),
                cmek_fingerprint=cmek_fp, development=state.mode.development, public=dict(public or {}),
            )])
        self._emit_audit(actor, "secret.written", f"vault:{org}/{vault}/{path}@{version}", now, secret_type=secret_type)
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
        now = self._clock() if now is None else now
        parse_actor(actor)
        self.refresh()
        check_path(path)
        state = self._state(org, vault)
        self._check_agent_before_lookup(state, path, version, actor, now)
        with self._lock:
            # The version and the CMEK that wraps it are taken together, so a
            # rotation finishing in between cannot strand this read.
            secret = self._version(state, path, version)
            if not secret.cmek_fingerprint:
                layer = None
            elif cmek is not None:
                if not hmac.compare_digest(fingerprint(cmek), secret.cmek_fingerprint):
                    raise InvalidKey()
                layer = AESGCM(cmek)
            else:
                layer = self._cmek(secret.cmek_fingerprint)
        self._check_agent_after_lookup(state, secret, actor, now)
        plaintext = self._decrypt(state, secret, layer, client_share, now)
        self._emit_audit(actor, "secret.read", f"vault:{org}/{vault}/{path}@{secret.version}", now,
                         secret_type=secret.secret_type)
        return plaintext

    @contextlib.contextmanager
    def open_secret(self, org: str, vault: str, path: str, version: int | None = None, **kwargs: Any) -> Iterator[bytearray]:
        """``read_secret`` as a context manager: the bytearray is wiped on exit, exceptions included."""
        plaintext = self.read_secret(org, vault, path, version, **kwargs)
        try:
            yield plaintext
        finally:
            wipe(plaintext)

    def _decrypt(
        self, state: _VaultState, secret: SecretVersionWritten, cmek: AESGCM | None, client_share: Any, now: float
    ) -> bytearray:
        assert state.mode is not None
        if secret.kek_id != state.mode.kek_id:
            raise InvalidKey()
        kek = self._kek(state, client_share, now)
        sealed_dek = self._strip_cmek(state, secret, cmek)
        dek: bytearray | None = None
        try:
            dek = open_into(kek, bytes(sealed_dek), _dek_aad(state.org, state.vault, secret.path, secret.version, secret.kek_id))
            aead = AESGCM(dek)
        finally:
            wipe(sealed_dek)
            wipe(dek)
        return open_into(aead, _b64d(secret.ciphertext),
                         _secret_aad(state.org, state.vault, secret.path, secret.version, secret.secret_type))

    def deactivate(
        self, org: str, vault: str, path: str, version: int | None = None, *, actor: str, now: float | None = None
    ) -> list[int]:
        """Deactivate one version, or every active version when ``version`` is None. Returns the versions deactivated."""
        self._require_admin(actor, "deactivating a secret")
        now = self._clock() if now is None else now
        with self._log.write_lock():
            self.refresh()
            state = self._state(org, vault)
            versions = state.secrets.get(path, {})
            if version is not None and version not in versions:
                raise NotFound(f"no version {version} of {path!r} in vault {vault!r}")
            targets = [v for v in ([version] if version is not None else sorted(versions)) if (path, v) not in state.deactivated]
            self._emit([SecretDeactivated(event_id=uuid.uuid4().hex, org=org, vault=vault, actor=actor, ts=_ts(now),
                                          path=path, version=v) for v in targets])
        for v in targets:
            self._emit_audit(actor, "secret.deactivated", f"vault:{org}/{vault}/{path}@{v}", now)
        return targets

    def list_secrets(self, org: str, vault: str, prefix: str = "", *, actor: str) -> list[SecretInfo]:
        """Metadata of every version under ``prefix`` (admins and services only)."""
        kind, _ = parse_actor(actor)
        if kind == "agent":
            raise PermissionDenied("listing a vault is for admins and services; agents read the paths they are granted")
        self.refresh()
        state = self._state(org, vault)
        with self._lock:
            return [
                SecretInfo(org, vault, s.path, s.version, s.secret_type, (s.path, s.version) not in state.deactivated,
                           s.ts, s.actor, s.cmek_fingerprint, s.development, dict(s.public))
                for path in sorted(state.secrets) if prefix_covers(prefix, path)
                for s in (state.secrets[path][v] for v in sorted(state.secrets[path]))
            ]

    def active_versions(self, org: str, vault: str, path: str) -> list[int]:
        """The active versions at one path, looked up directly (the signer asks this per intent)."""
        self.refresh()
        state = self._state(org, vault)
        with self._lock:
            return sorted(v for v in state.secrets.get(path, {}) if (path, v) not in state.deactivated)

    # ---- policies --------------------------------------------------------------

    def grant(self, org: str, vault: str, agent_id: str, prefix: str, *, actor: str, now: float | None = None,
              granted: bool = True) -> None:
        """Let ``agent_id`` read secrets under ``prefix`` (or revoke that with granted=False)."""
        self._require_admin(actor, "granting vault access")
        if prefix:
            check_path(prefix.rstrip("/"))
        now = self._clock() if now is None else now
        with self._log.write_lock():
            self.refresh()
            state = self._state(org, vault)
            current = state.grants.get((agent_id, prefix))
            seq = current[0][0] + 1 if current else 1
            self._emit([PolicyGranted(event_id=uuid.uuid4().hex, org=org, vault=vault, actor=actor, ts=_ts(now),
                                      agent_id=agent_id, prefix=prefix, granted=granted, seq=seq)])
        self._emit_audit(actor, "policy.granted" if granted else "policy.revoked", f"vault:{org}/{vault}/{prefix}",
                         now, agent_id=agent_id)

    def revoke(self, org: str, vault: str, agent_id: str, prefix: str, *, actor: str, now: float | None = None) -> None:
        self.grant(org, vault, agent_id, prefix, actor=actor, now=now, granted=False)

    def mode(self, org: str, vault: str) -> str | None:
        state = self._state(org, vault)
        return state.mode.mode if state.mode else None

    def cmek_fingerprint(self, org: str, vault: str) -> str | None:
        """The fingerprint of the vault's current customer-managed key, or None without one."""
        state = self._state(org, vault)
        with self._lock:
            return state.cmek.fingerprint if state.cmek is not None else None


# --------------------------------------------------------------------------
# Associated data: one function per layer, so each binding is visible in one place.
# --------------------------------------------------------------------------


def _slot_aad(org: str, vault: str, kek_id: str, mode: str, x: int, provider: str) -> bytes:
    return aad("warden/kek-slot/v1", org, vault, kek_id, mode, x, provider)


def _dek_aad(org: str, vault: str, path: str, version: int, kek_id: str) -> bytes:
    return aad("warden/dek/v1", org, vault, path, version, kek_id)


def _secret_aad(org: str, vault: str, path: str, version: int, secret_type: str) -> bytes:
    return aad("warden/secret/v1", org, vault, path, version, secret_type)


def _cmek_aad(org: str, vault: str, path: str, version: int, fp: str) -> bytes:
    return aad("warden/cmek/v1", org, vault, path, version, fp)


def _commitment(kek: bytes | bytearray, org: str, vault: str, kek_id: str) -> str:
    return hmac.new(kek, aad("warden/kek-commitment/v1", org, vault, kek_id), hashlib.sha256).hexdigest()
