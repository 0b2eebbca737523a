"""The vault book: every vault's state, folded from vault events, and what it says about them.

``VaultBook.apply`` folds one event into the state, idempotent and order-tolerant, so
replaying a log or a compacted topic in any order ends in the same state. ``emit``
publishes new events to the log and applies them. The lookups here answer from the
state (metadata only: the book never holds a key or a plaintext).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from schemas.errors import Problem
from signer.custody import access
from signer.custody.errors import CustodyError, NotFound
from signer.custody.events import (
    AttestationRequirementSet,
    CmekSet,
    ModeSet,
    PolicyGranted,
    SecretDeactivated,
    SecretVersionWritten,
    VaultCreated,
    VaultEvent,
    VaultLog,
    parse_event,
)
from signer.custody.names import prefix_covers


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
class VaultState:
    org: str
    vault: str
    created: VaultCreated
    mode: ModeSet | None = None
    secrets: dict[str, dict[int, SecretVersionWritten]] = field(default_factory=dict)
    deactivated: set[tuple[str, int]] = field(default_factory=set)
    grants: dict[tuple[str, str], tuple[tuple[int, str], bool]] = field(default_factory=dict)
    cmek: CmekSet | None = None
    attestation: AttestationRequirementSet | None = None


class VaultBook:
    """The state of every vault known to this process, over one event log.

    Writers hold ``log.write_lock()`` (across processes) around read-then-emit; ``lock``
    (this process) guards the state against the log's consumer applying events meanwhile."""

    def __init__(self, log: VaultLog):
        self.log = log
        self.lock = threading.RLock()
        self._vaults: dict[tuple[str, str], VaultState] = {}

    def __repr__(self) -> str:
        return f"VaultBook(vaults={len(self._vaults)})"

    def __len__(self) -> int:
        return len(self._vaults)

    # ---- applying events -------------------------------------------------

    def apply(self, event: VaultEvent) -> bool:
        """Fold one event into the state. Idempotent: re-applying any event, or
        applying an older wrap of a secret, changes nothing. Returns whether it changed state."""
        with self.lock:
            key = (event.org, event.vault)
            state = self._vaults.get(key)
            if isinstance(event, VaultCreated):
                if state is not None:
                    return False
                self._vaults[key] = VaultState(event.org, event.vault, event)
                return True
            if state is None:
                # Out of order (a compacted topic may deliver keys in any order):
                # a vault exists once anything is known about it.
                state = self._vaults[key] = VaultState(
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
                # Only a re-wrap of the same ciphertext may replace a version;
                # a different value claiming a taken version is refused.
                if current is not None and (
                    current.ciphertext != event.ciphertext or event.wrap_seq <= current.wrap_seq
                ):
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
                grant = (event.agent_id, event.prefix)
                stamp = (event.seq, event.event_id)
                held = state.grants.get(grant)
                if held is not None and held[0] >= stamp:
                    return False
                state.grants[grant] = (stamp, event.granted)
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

    def unheld(self, event: VaultEvent) -> Problem | None:
        """Why ``event`` would apply to a vault this book does not hold, or None when it would not.
        A vault's creation stands on its own; anything else needs the vault created here, and a
        secret needs its custody mode, under the KEK it was wrapped with. ``apply``
        takes events in any order (a file log, a compacted topic): a reader that must refuse what
        rests on a vault it never got (the signer) asks this first."""
        if isinstance(event, VaultCreated):
            return None
        with self.lock:
            state = self._vaults.get((event.org, event.vault))
            where = f"vault {event.vault!r} of org {event.org!r}"
            if state is None:
                return Problem(f"{where} was never created here")
            if isinstance(event, SecretVersionWritten):
                if state.mode is None:
                    return Problem(
                        f"{where} has no custody mode here, so no KEK to open the secret {event.path!r} with"
                    )
                if state.mode.kek_id != event.kek_id:
                    return Problem(
                        f"the secret {event.path!r} is wrapped under KEK {event.kek_id[:16]}, not {where}'s "
                        f"{state.mode.kek_id[:16]}"
                    )
            return None

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
        return self.replay(self.log.poll())

    def emit(self, events: Sequence[VaultEvent]) -> None:
        """Publish new events to the log, then apply them."""
        publish_many = getattr(self.log, "publish_many", None)
        if publish_many is not None:
            publish_many(events)
        else:
            for event in events:
                self.log.publish(event)
        for event in events:
            self.apply(event)

    # ---- lookups -----------------------------------------------------------

    def state(self, org: str, vault: str) -> VaultState:
        """The vault's state, refreshed from the log once if it is not known yet."""
        state = self._vaults.get((org, vault))
        if state is None and self.refresh():
            state = self._vaults.get((org, vault))
        if state is None:
            raise NotFound(f"no vault {vault!r} in org {org!r}; an admin creates it with `warden vault create`")
        return state

    def has_vault(self, org: str, vault: str) -> bool:
        self.refresh()
        return (org, vault) in self._vaults

    def version(self, state: VaultState, path: str, version: int | None) -> SecretVersionWritten:
        """One active version of ``path`` (the newest by default); the caller holds ``lock``."""
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

    def info(self, state: VaultState, s: SecretVersionWritten) -> SecretInfo:
        """The listing of one version; the caller holds ``lock``."""
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

    def list_secrets(self, org: str, vault: str, prefix: str = "", *, actor: str) -> list[SecretInfo]:
        """Metadata of every version under ``prefix`` (admins and services only)."""
        access.require_lister(actor)
        self.refresh()
        state = self.state(org, vault)
        with self.lock:
            return [
                self.info(state, state.secrets[path][v])
                for path in sorted(state.secrets)
                if prefix_covers(prefix, path)
                for v in sorted(state.secrets[path])
            ]

    def active_versions(self, org: str, vault: str, path: str) -> list[int]:
        """The active versions at one path, looked up directly (the signer asks this per intent)."""
        self.refresh()
        state = self.state(org, vault)
        with self.lock:
            return sorted(v for v in state.secrets.get(path, {}) if (path, v) not in state.deactivated)

    def mode(self, org: str, vault: str) -> str | None:
        state = self.state(org, vault)
        return state.mode.mode if state.mode else None

    def cmek_fingerprint(self, org: str, vault: str) -> str | None:
        """The fingerprint of the vault's current customer-managed key, or None without one."""
        state = self.state(org, vault)
        with self.lock:
            return state.cmek.fingerprint if state.cmek is not None else None
