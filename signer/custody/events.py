"""Vault events and the logs that carry them: every fact about a vault, as ciphertext and metadata.

An event never holds a plaintext key. ``VaultEvent.key`` is its record key on the
compacted topic ``warden.vault``: the latest event per key is that slot's state.
Events reach a log through ``publish``: a Kafka producer (``CallbackLog``; the
consumer feeds them back through ``Vaults.replay``) or the embedded
``FileEventLog`` (JSONL, fsync'd) that lets the CLI and the signer share vaults
without a broker. An event's id is derived from what it records (``VaultEvent.new``),
so the same fact always carries the same id.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar, Union, get_args, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.audit import event_id
from schemas.fields import UtcDatetime
from schemas.record import Record
from signer.custody.modes import Mode

SecretType = Literal["api_key", "password", "private_key", "ssh_key", "token", "certificate", "generic"]
SECRET_TYPES: tuple[str, ...] = get_args(SecretType)

_E = TypeVar("_E", bound="VaultEvent")


def utc(now: float) -> datetime:
    """The time of an event or audit record: ``now`` (seconds since the epoch) in UTC."""
    return datetime.fromtimestamp(now, tz=timezone.utc)


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

    # builtins.type: in this class's body ``type`` is the event's ``type`` field, for the checker.
    @classmethod
    def new(cls: builtins.type[_E], **fields: Any) -> _E:
        """A new event whose id is derived from everything else it records. Each
        write carries fresh ciphertext or a higher sequence number, so distinct
        facts never share an id, and a re-published fact keeps its own."""
        draft = cls(event_id="", **fields)
        digest = hashlib.sha256(draft.to_bytes()).hexdigest()
        return draft.model_copy(update={"event_id": event_id("vault", draft.key, digest)})

    def derive(self: _E, **changes: Any) -> _E:
        """This event with ``changes`` applied and its id derived again (a CMEK re-wrap)."""
        return type(self).new(**{**self.model_dump(exclude={"event_id", "schema_version"}), **changes})

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
    kek_commitment: str = Field(
        description="HMAC-SHA256 under the KEK itself: checks a rebuilt KEK without revealing it"
    )
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


class AttestationRequirementSet(VaultEvent):
    """From now on the vault's KEK is released only to a requester with a verified SEV-SNP
    report (``signer.key_release``). Set once and never unset: a vault whose keys were
    promised to attested signers only cannot quietly stop promising it."""

    type: Literal["vault.attestation_required"] = "vault.attestation_required"

    @property
    def key(self) -> str:
        return f"attestation:{self.org}/{self.vault}"


AnyVaultEvent = Annotated[
    Union[
        VaultCreated,
        ModeSet,
        SecretVersionWritten,
        SecretDeactivated,
        PolicyGranted,
        CmekSet,
        AttestationRequirementSet,
    ],
    Field(discriminator="type"),
]
_EVENT_ADAPTER: TypeAdapter[VaultEvent] = TypeAdapter(AnyVaultEvent)


def parse_event(raw: bytes | str | Mapping[str, Any]) -> VaultEvent:
    """Parse one event from its wire form (JSON bytes/str or a dict)."""
    if isinstance(raw, Mapping):
        return _EVENT_ADAPTER.validate_python(raw)
    return _EVENT_ADAPTER.validate_json(raw)


@runtime_checkable  # `Vaults` tells a log from a bare publish callable by its methods
class VaultLog(Protocol):
    def publish(self, event: VaultEvent) -> None: ...

    def poll(self) -> list[VaultEvent]: ...

    # Held with a bare `with`: what entering it gives (an RLock's True, a generator's None) is unused.
    def write_lock(self) -> contextlib.AbstractContextManager[object]: ...


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

    def write_lock(self) -> contextlib.AbstractContextManager[object]:
        return self._lock


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
                    view = view[os.write(fd, view) :]
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
