"""The supervisor's record of its restarts on the audit topic, written by a thread of its own.

A restart never waits on the bus: the supervisor restarts what it supervises, the broker's nodes
among them, and a bus that cannot take a record (a cluster with too few nodes to elect leaders or
hand out producer ids) is often what it is restarting. So `RestartAudit.add` queues the
``component.restarted`` event and returns; a thread publishes what is queued whenever the broker
takes it, asking again with backoff (1 s, doubling to 30 s) while it does not. What is queued is
kept in ``$WARDEN_HOME/state/restarts-unrecorded.json`` too, so a restart made while the broker was
down is recorded by the next `warden up` when this one stops first. Each event's id is derived from
what it records (`schemas.emit.audit`), so one sent twice is one row in the ledger.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from pathlib import Path

from runtime.config import Settings
from runtime.kafka import producer, publish
from schemas.auth import AuditSigner
from schemas.emit import Emit

log = logging.getLogger("warden.supervisor")

FIRST_WAIT_S, MOST_WAIT_S = 1.0, 30.0
# One attempt at the broker: start a producer, send what is queued, have it acknowledged.
ATTEMPT_S = 20.0


class RestartAudit:
    """Restart events waiting for the broker, and the thread that publishes them."""

    def __init__(self, settings: Settings, audit_signer: AuditSigner):
        self.settings = settings
        self.audit_signer = audit_signer
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._queued: list[Emit] = self._load()
        self._thread = threading.Thread(target=self._run, name="restart-audit", daemon=True)
        self._thread.start()
        if self._queued:
            self._wake.set()

    @property
    def path(self) -> Path:
        return self.settings.state_dir / "restarts-unrecorded.json"

    def add(self, event: Emit) -> None:
        """Queue ``event`` for the audit topic; never waits on the broker."""
        with self._lock:
            self._queued.append(event)
            self._save()
        self._wake.set()

    def unrecorded(self) -> int:
        with self._lock:
            return len(self._queued)

    def stop(self, grace_s: float) -> None:
        """Give the thread ``grace_s`` to publish what is queued; what is left stays in the file
        for the next `warden up`."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(grace_s)
        left = self.unrecorded()
        if left:
            log.warning(
                "%d restart(s) not on the audit topic yet; the next `warden up` records them (%s)", left, self.path
            )

    def _run(self) -> None:
        wait_s = FIRST_WAIT_S
        while True:
            self._wake.wait(None if not self.unrecorded() else wait_s)
            self._wake.clear()
            with self._lock:
                batch = list(self._queued)
            if not batch:
                if self._stopping.is_set():
                    return
                continue
            try:
                asyncio.run(asyncio.wait_for(self._publish(batch), ATTEMPT_S))
            except Exception as exc:  # noqa: BLE001 - the broker does not answer: asked again later
                if wait_s == FIRST_WAIT_S:
                    log.warning(
                        "%d restart(s) not recorded on the audit topic yet, the broker did not take them (%s); "
                        "asking again until it does",
                        len(batch),
                        exc.__class__.__name__,
                    )
                wait_s = min(wait_s * 2, MOST_WAIT_S)
                if self._stopping.is_set():
                    return
                continue
            wait_s = FIRST_WAIT_S
            with self._lock:
                self._queued = [e for e in self._queued if e not in batch]
                self._save()
            log.info("%d restart(s) recorded on the audit topic", len(batch))

    async def _publish(self, batch: list[Emit]) -> None:
        # Not idempotent: an idempotent producer first waits for a producer id, which the cluster's
        # controllers hand out only while a majority of them runs.
        kafka = producer(self.settings, idempotent=False)
        try:
            await kafka.start()
            await asyncio.gather(*await publish(kafka, batch, self.settings.max_record_bytes, self.audit_signer))
        finally:
            await kafka.stop()

    def _load(self) -> list[Emit]:
        """What an earlier `warden up` left unrecorded. A file that cannot be read is set aside
        (``.unreadable``), said, and does not stop this one."""
        if not self.path.exists():
            return []
        try:
            rows = json.loads(self.path.read_text())
            return [Emit(row["topic"], row["key"], base64.b64decode(row["value"])) for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_suffix(".unreadable")
            self.path.replace(aside)
            log.error(
                "%s could not be read (%s): its restarts are not recorded; set aside as %s", self.path, exc, aside
            )
            return []

    def _save(self) -> None:
        """Called holding the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._queued:
            self.path.unlink(missing_ok=True)
            return
        rows = [{"topic": e.topic, "key": e.key, "value": base64.b64encode(e.value).decode()} for e in self._queued]
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(rows))
        temporary.replace(self.path)
