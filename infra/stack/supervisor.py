"""The supervisor behind `warden up`: a crashed Warden service is restarted, the stack is not.

The streams worker, the signer and the ledger sink are restarted with exponential
backoff (1 s, doubling, at most 30 s; back to 1 s once a run has lasted a minute),
each restart logged and recorded as a ``component.restarted`` audit event, queued
for the audit topic and written when the broker takes it (`infra.stack.restart_audit`): a
restart never waits on the bus it may be restarting. A process that cannot be started is tried
again with the same backoff, for as long as `warden up` runs. Their
work is safe to resume: the worker recovers its tables and redelivers undecided
intents, the signer re-publishes what it recorded, the sink resumes from the
ledger. A Kafka node of a cluster of several is restarted the same way: the
others carry on, and it catches up as it rejoins. A lone broker and the chain
are not Warden's to restart: if one of them dies, the supervisor says so and
stops everything cleanly.

What it knows is written to ``$WARDEN_HOME/state/supervisor.json`` for
`warden status`: at each change, and every `HEARTBEAT_S` besides, so that a supervisor that
stopped looking shows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from infra.stack.local import SERVICES, LocalStack, is_broker
from infra.stack.restart_audit import RestartAudit
from runtime import metrics
from runtime.clock import utcnow
from runtime.readiness import clear_ready
from runtime.trust import audit_signer
from schemas.actions import AuditAction
from schemas.emit import audit

log = logging.getLogger("warden.supervisor")

FIRST_DELAY_S, MAX_DELAY_S, STEADY_S = 1.0, 30.0, 60.0
# How often the status file is written when nothing changed: `warden status` calls a supervisor
# whose file is older than a few of these stalled.
HEARTBEAT_S = 5.0
# How long a stopping supervisor gives the restarts not yet on the audit topic.
AUDIT_GRACE_S = 5.0


@dataclass
class Component:
    name: str
    pid: int | None = None
    started_at: float = 0.0  # time.time() of the current run
    restarts: int = 0
    last_exit_code: int | None = None
    delay_s: float = FIRST_DELAY_S
    restart_at: float | None = None  # monotonic time of the next restart, while it is down
    restart_due_at: float | None = None  # the same as time.time(), for `warden status`


def next_delay(previous_s: float, ran_for_s: float) -> float:
    """Backoff after a crash: doubled, capped; a run that lasted a minute starts over at 1 s."""
    if ran_for_s >= STEADY_S:
        return FIRST_DELAY_S
    return min(MAX_DELAY_S, previous_s * 2)


@dataclass
class Supervisor:
    stack: LocalStack
    components: dict[str, Component] = field(default_factory=dict)
    running: bool = True

    def __post_init__(self) -> None:
        metrics.serve(self.stack.settings, "supervisor")
        self.audits = RestartAudit(self.stack.settings, audit_signer(self.stack.settings, "supervisor"))
        self.written_at = 0.0  # monotonic
        for name, process in self.stack.processes.items():
            self.components[name] = Component(name, process.pid, time.time())
        # Where each part listens (the API, Anvil's JSON-RPC, the broker), for `warden status`.
        self.addresses = {row["name"]: row["address"] for row in self.stack.describe() if row["address"]}
        self.write()

    @property
    def status_file(self) -> Path:
        return self.stack.settings.state_dir / "supervisor.json"

    def tick(self) -> str | None:
        """One look at every process. Returns why the whole stack must stop, or None."""
        now = time.monotonic()
        for name, process in self.stack.processes.items():
            component = self.components[name]
            if process.proc.poll() is None:
                continue
            if name not in SERVICES and not self._replicated(name):
                return (
                    f"{name} exited with code {process.proc.returncode}; it holds the stack's "
                    f"{'log' if is_broker(name) else 'chain'}, so everything stops. See "
                    f"{process.log_path}"
                )
            if component.restart_at is None:
                ran_for = time.time() - component.started_at
                component.last_exit_code = process.proc.returncode
                component.delay_s = next_delay(component.delay_s, ran_for) if component.restarts else FIRST_DELAY_S
                component.restart_at = now + component.delay_s
                component.restart_due_at = time.time() + component.delay_s
                log.warning(
                    "%s exited with code %s after %.0f s; restarting in %.0f s (see %s)",
                    name,
                    component.last_exit_code,
                    ran_for,
                    component.delay_s,
                    process.log_path,
                )
                self.write()
            elif now >= component.restart_at:
                self._restart(component)
        if now - self.written_at >= HEARTBEAT_S:
            self.write()
        return None

    def _replicated(self, name: str) -> bool:
        """A Kafka node of a cluster of several: the others hold every record it held (each write
        waits for two replicas), so it is restarted like a service and catches up as it rejoins."""
        cluster = self.stack.cluster
        return cluster is not None and len(cluster.nodes) > 1 and name.startswith("kafka-")

    def _restart(self, component: Component) -> None:
        """Start the component again and queue its audit event: nothing here waits on the bus."""
        name = component.name
        try:
            clear_ready(self.stack.settings, name)
            process = self.stack._spawn(name, self.stack.processes[name].argv)
        except OSError as exc:  # tried again after the next delay, for as long as `warden up` runs
            component.delay_s = min(MAX_DELAY_S, component.delay_s * 2)
            component.restart_at = time.monotonic() + component.delay_s
            component.restart_due_at = time.time() + component.delay_s
            log.error("%s could not be started (%s); trying again in %.0f s", name, exc, component.delay_s)
            self.write()
            return
        component.pid, component.started_at = process.pid, time.time()
        component.restart_at = component.restart_due_at = None
        component.restarts += 1
        metrics.RESTARTS.labels(name).inc()
        log.warning("%s restarted (pid %d, restart %d)", name, process.pid, component.restarts)
        self.write()
        self.audits.add(
            audit(
                "service:supervisor",
                AuditAction.COMPONENT_RESTARTED,
                f"component:{name}",
                utcnow(),
                name,
                str(component.restarts),
                str(component.pid),
                component=name,
                pid=component.pid,
                restarts=component.restarts,
                exit_code=component.last_exit_code,
                backoff_s=component.delay_s,
            )
        )

    def stopping(self) -> None:
        """Before the stack stops: the restarts not on the audit topic yet get `AUDIT_GRACE_S` while
        the broker still runs; what is left is recorded by the next `warden up`."""
        self.audits.stop(AUDIT_GRACE_S)

    def stopped(self) -> None:
        self.running = False
        self.write()

    def write(self) -> None:
        self.written_at = time.monotonic()
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "supervisor_pid": os.getpid(),
            "updated_at": time.time(),
            "running": self.running,
            "home": str(self.stack.settings.home),
            "broker_storage": self.stack.settings.broker_storage,
            "components": {name: asdict(c) for name, c in self.components.items()},
            "addresses": self.addresses,
            "restarts_unrecorded": self.audits.unrecorded(),
        }
        temporary = self.status_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(doc, indent=1))
        temporary.replace(self.status_file)
