"""How the signer, the CLI and the demo open the key store configured for this deployment,
and how custody's audit records reach ``warden.audit.events``."""

from __future__ import annotations

from collections.abc import Callable

from infra.config import Settings
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


def keystore_from_settings(settings: Settings, audit: Callable[[dict], None] | None = None):
    from signer.custody.keys import KeyStore
    from signer.custody.vault import Vaults

    return KeyStore(Vaults.from_settings(settings, audit=audit))
