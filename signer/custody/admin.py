"""Vault administration: creating a vault, its custody mode and KEK, attestation, and grants.

Every change here is an admin's, is written as vault events under the log's write lock
(so two processes cannot both make the change), and is audited. The custody mode and
the attestation requirement are set once and never undone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from schemas.actions import AuditAction
from signer.custody import access
from signer.custody.book import VaultBook
from signer.custody.errors import Conflict
from signer.custody.events import AttestationRequirementSet, PolicyGranted, VaultCreated, utc
from signer.custody.keks import Keks
from signer.custody.modes import Mode, custody_mode
from signer.custody.names import check_names, check_path


class VaultAdmin:
    """The admin's changes to vaults in ``book``; a new vault's KEK comes from ``keks``."""

    def __init__(self, book: VaultBook, keks: Keks, auditor: access.Auditor, clock: Callable[[], float]):
        self._book = book
        self._keks = keks
        self._auditor = auditor
        self._clock = clock

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
        with self._book.log.write_lock():
            if self._book.has_vault(org, vault):
                raise Conflict(f"vault {vault!r} already exists in org {org!r}")
            created = VaultCreated.new(org=org, vault=vault, actor=actor, ts=utc(now))
            self._book.emit([created])
            self._auditor.record(actor, AuditAction.VAULT_CREATED, f"vault:{org}/{vault}", now, created.event_id)
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
        with self._book.log.write_lock():
            state = self._book.state(org, vault)
            if state.mode is not None:
                raise Conflict(
                    f"vault {vault!r} already has custody mode {state.mode.mode!r}; custody modes are immutable "
                    "(create a new vault and move the secrets to change it)"
                )
            event, client_share = self._keks.make(org, vault, custody, providers, actor=actor, ts=utc(now))
            self._book.emit([event])
            self._auditor.record(
                actor,
                AuditAction.VAULT_MODE_SET,
                f"vault:{org}/{vault}",
                now,
                event.event_id,
                mode=mode,
                providers=[slot.provider for slot in event.slots],
            )
            return client_share

    def require_attestation(self, org: str, vault: str, *, actor: str, now: float | None = None) -> bool:
        """From now on the vault's KEK is released only to an attested signer (``signer.key_release``).
        Immutable like the custody mode: there is no way back. Returns False if it already was."""
        access.require_admin(actor, "requiring attestation")
        now = self._clock() if now is None else now
        with self._book.log.write_lock():
            state = self._book.state(org, vault)
            if state.attestation is not None:
                return False
            event = AttestationRequirementSet.new(org=org, vault=vault, actor=actor, ts=utc(now))
            self._book.emit([event])
            self._auditor.record(
                actor, AuditAction.VAULT_ATTESTATION_REQUIRED, f"vault:{org}/{vault}", now, event.event_id
            )
            return True

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
        with self._book.log.write_lock():
            self._book.refresh()
            state = self._book.state(org, vault)
            current = state.grants.get((agent_id, prefix))
            seq = current[0][0] + 1 if current else 1
            event = PolicyGranted.new(
                org=org,
                vault=vault,
                actor=actor,
                ts=utc(now),
                agent_id=agent_id,
                prefix=prefix,
                granted=granted,
                seq=seq,
            )
            self._book.emit([event])
        self._auditor.record(
            actor,
            AuditAction.POLICY_GRANTED if granted else AuditAction.POLICY_REVOKED,
            f"vault:{org}/{vault}/{prefix}",
            now,
            event.event_id,
            agent_id=agent_id,
        )

    def revoke(self, org: str, vault: str, agent_id: str, prefix: str, *, actor: str, now: float | None = None) -> None:
        self.grant(org, vault, agent_id, prefix, actor=actor, now=now, granted=False)
