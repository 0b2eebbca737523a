"""How the signer, the CLI and the demo open the key store configured for this deployment,
and how custody's audit records and vault events reach their topics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from runtime.config import Settings
from schemas import topics
from schemas.emit import Emit

if TYPE_CHECKING:  # imported where used: the command line imports this module without them
    from signer.custody.events import VaultEvent
    from signer.custody.keys import KeyStore


class AuditOutbox:
    """Custody is Kafka-free: it hands its audit records (already ``warden.audit.events``
    records, from ``schemas.emit.audit``) to this outbox, and whoever owns a producer
    drains it with the rest of its output."""

    def __init__(self) -> None:
        self._records: list[Emit] = []

    def __call__(self, record: Emit) -> None:
        self._records.append(record)

    def drain(self) -> list[Emit]:
        records, self._records = self._records, []
        return records


class VaultOutbox:
    """Vault events written through this process, for the compacted ``warden.vault`` topic.

    The file log under $WARDEN_HOME is what processes on one machine share; the topic is
    the event-sourced record other machines (and witnesses) replay. Events are ciphertext."""

    def __init__(self) -> None:
        self._events: list[VaultEvent] = []

    def extend(self, events: Sequence[VaultEvent]) -> None:
        self._events.extend(events)

    def drain(self) -> list[Emit]:
        events, self._events = self._events, []
        return [Emit(topics.VAULT, event.key, event.to_bytes()) for event in events]


def keystore_from_settings(
    settings: Settings,
    audit: Callable[[Emit], None] | None = None,
    vault_outbox: VaultOutbox | None = None,
    requester: tuple[str, bytes] = ("admin-cli", b""),
    from_topic: bool = False,
) -> KeyStore:
    """The signing-key store of this home. ``requester`` (an id and its service public key) is
    who asks the attested key release for a vault that requires attestation: the signer names
    itself; the admin CLI has no service key and, outside a confidential VM, is refused.
    ``from_topic``: the signer's store, which reads no file log (whoever writes the home's file
    would change its keys unchecked) and holds only the events its reader of warden.vault
    applied (`Vaults.replay`), each signed by the admins' quorum for ``keys``."""
    from runtime.attestation.policy import AttestationPolicy
    from signer.custody import FileEventLog, Vaults, roots_from_settings
    from signer.custody.events import CallbackLog
    from signer.custody.keys import KeyStore
    from signer.custody.modes import mode_named
    from signer.key_release import Attester, KeyRelease

    # Checked before anything is built: a mistyped WARDEN_KEY_MODE stops the signer at start, not
    # the first vault's creation.
    mode = mode_named(settings.key_mode)

    class _MirroredLog(FileEventLog):
        def publish_many(self, events: Sequence[VaultEvent]) -> None:
            super().publish_many(events)
            if vault_outbox is not None:
                vault_outbox.extend(events)

    log = CallbackLog(_unwritten) if from_topic else _MirroredLog(settings.home / "vault" / "events.jsonl")
    release = Attester(
        KeyRelease(AttestationPolicy.from_settings(settings.attestation), audit),
        *requester,
        vcek_file=settings.attestation.vcek_file,
    )
    vaults = Vaults(roots_from_settings(settings), log, audit=audit, release=release)
    vaults.refresh()
    # The mode applies when the signing-key vault is first created. Without named providers
    # the vault spreads the KEK over as many configured roots as the mode needs
    # (``CustodyMode.roots``), in order: WARDEN_ROOT_PROVIDER, then WARDEN_ROOT_PROVIDERS.
    return KeyStore(vaults, mode=mode)


def _unwritten(event: VaultEvent) -> None:
    # The signer writes no vault event (every change is an admin's); one written here would reach
    # no other signer and no ledger, so it is refused rather than kept in this process alone.
    raise RuntimeError(f"the signer writes no vault events ({event.type}); an admin's command makes this change")
