"""How the signer, the CLI and the demo open the key store configured for this deployment,
and how custody's audit records reach ``warden.audit.events``."""

from __future__ import annotations

from collections.abc import Callable

from runtime.config import Settings
from schemas import topics
from schemas.emit import Emit
from schemas.models import AuditEvent


class AuditOutbox:
    """Custody is Kafka-free: it hands audit records to this outbox, and whoever owns a
    producer drains it into ``warden.audit.events`` with the rest of its output."""

    def __init__(self) -> None:
        self._records: list[dict] = []

    def __call__(self, record: dict) -> None:
        self._records.append(record)

    def drain(self) -> list[Emit]:
        records, self._records = self._records, []
        emits = []
        for record in records:
            event = AuditEvent.model_validate(record)
            emits.append(Emit(topics.AUDIT_EVENTS, event.agent_id or "", event.to_bytes()))
        return emits


class VaultOutbox:
    """Vault events written through this process, for the compacted ``warden.vault`` topic.

    The file log under $WARDEN_HOME is what processes on one machine share; the topic is
    the event-sourced record other machines (and witnesses) replay. Events are ciphertext."""

    def __init__(self) -> None:
        self._events: list = []

    def extend(self, events) -> None:
        self._events.extend(events)

    def drain(self) -> list[Emit]:
        events, self._events = self._events, []
        return [Emit(topics.VAULT, event.key, event.to_bytes()) for event in events]


def keystore_from_settings(settings: Settings, audit: Callable[[dict], None] | None = None,
                           vault_outbox: VaultOutbox | None = None):
    from signer.custody.keys import KeyStore
    from signer.custody.roots import roots_from_settings
    from signer.custody.vault import FileEventLog, Vaults

    class _MirroredLog(FileEventLog):
        def publish_many(self, events) -> None:
            super().publish_many(events)
            if vault_outbox is not None:
                vault_outbox.extend(events)

    log = _MirroredLog(settings.home / "vault" / "events.jsonl")
    roots = roots_from_settings(settings)
    vaults = Vaults(roots, log, audit=audit)
    vaults.refresh()
    # The mode applies when the signing-key vault is first created; the 2-of-3 modes spread
    # their shares over the configured roots in order (WARDEN_ROOT_PROVIDER, then WARDEN_ROOT_PROVIDERS).
    mode = settings.key_mode
    needed = {"2of3_multi_hsm": 3, "2of3_client_custody": 2, "2of2_client_custody": 1}.get(mode)
    return KeyStore(vaults, mode=mode, providers=list(roots)[:needed] if needed else None)
