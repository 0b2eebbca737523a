"""``Vaults``: the one entry point to event-sourced vaults and secrets, wiring the parts that do the work.

Key hierarchy (DESIGN §4):

    root of trust ──wraps──► KEK (one AES-256-GCM key per vault, or its shares)
    KEK ──wraps──► DEK (one AES-256-GCM key per secret version)
    DEK ──encrypts──► the secret
    [CMEK ──wraps──► the KEK-wrapped DEK, when the vault has a customer key]

Each part has a module of its own: the state folded from vault events and its lookups
(``book``), an admin's changes to vaults (``admin``), sealing and opening secrets
(``secret_store``), customer-managed keys over time (``cmek_rotation``). Beneath them:
the KEK and its cache (``keks``), how a custody mode splits and rebuilds it (``modes``),
the customer-managed layer (``cmek``), who may do what and the audit trail (``access``),
the events and their logs (``events``). ``Vaults`` builds them over one log, one set of
roots and one clock, and offers their operations as its own, so the signer, the CLI and
``KeyStore`` hold one object.

Time is an argument: every method takes ``now`` (seconds since the epoch), and
falls back to the injected ``clock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from schemas.emit import Emit
from signer.custody.access import Auditor
from signer.custody.admin import VaultAdmin
from signer.custody.book import SecretInfo, VaultBook
from signer.custody.cmek import CmekLayer
from signer.custody.cmek_rotation import CmekRotation
from signer.custody.errors import CustodyError
from signer.custody.events import CallbackLog, FileEventLog, VaultEvent, VaultLog
from signer.custody.keks import DEFAULT_KEK_TTL, Keks
from signer.custody.roots import RootOfTrust
from signer.custody.secret_store import MAX_SECRET_BYTES, SecretStore

__all__ = ["MAX_SECRET_BYTES", "SecretInfo", "Vaults"]


class Vaults:
    """Vaults and secrets: apply events, make new ones, read secrets.

    ``roots`` is one root or a mapping name → root; the first is the primary
    root that ``standard`` vaults use. ``publish`` is a ``VaultLog`` (e.g.
    ``FileEventLog``) or a bare callable. ``intents_api_enabled(agent_id)``
    answers from the agent's signed policy; unknown agents are treated as
    enabled, the stricter case. ``audit`` receives the audit record (an ``Emit``
    for ``warden.audit.events``, from ``schemas.emit.audit``) of every read,
    refusal and change. ``release`` (``signer.key_release.Attester``) unwraps
    the KEKs of vaults that require attestation.
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
        self._clock = clock
        log = publish if isinstance(publish, VaultLog) else CallbackLog(publish)
        self.keks = Keks(by_name, kek_ttl, release)
        cmeks = CmekLayer()
        auditor = Auditor(audit)
        self.book = VaultBook(log)
        self.admin = VaultAdmin(self.book, self.keks, auditor, clock)
        self.secrets = SecretStore(self.book, self.keks, cmeks, auditor, clock, intents_api_enabled)
        self.cmek = CmekRotation(self.book, cmeks, auditor, clock)

        # The operations callers use, each done by the part that owns it.
        self.apply = self.book.apply
        self.replay = self.book.replay
        self.refresh = self.book.refresh
        self.has_vault = self.book.has_vault
        self.list_secrets = self.book.list_secrets
        self.active_versions = self.book.active_versions
        self.mode = self.book.mode
        self.cmek_fingerprint = self.book.cmek_fingerprint
        self.create_vault = self.admin.create_vault
        self.set_mode = self.admin.set_mode
        self.require_attestation = self.admin.require_attestation
        self.grant = self.admin.grant
        self.revoke = self.admin.revoke
        self.write_secret = self.secrets.write_secret
        self.read_secret = self.secrets.read_secret
        self.open_secret = self.secrets.open_secret
        self.reveal = self.secrets.reveal
        self.deactivate = self.secrets.deactivate
        self.load_cmek = self.cmek.load_cmek
        self.set_cmek = self.cmek.set_cmek

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
        return f"Vaults(roots={list(self.roots)!r}, vaults={len(self.book)}, keks={self.keks!r})"

    @property
    def roots(self) -> dict[str, RootOfTrust]:
        return self.keks.roots

    @property
    def kek_ttl(self) -> float:
        return self.keks.ttl

    def evict(self, now: float | None = None, *, everything: bool = False) -> int:
        """Drop cached KEKs past their TTL (or all of them); returns how many went."""
        return self.keks.evict(self._clock() if now is None else now, everything=everything)
