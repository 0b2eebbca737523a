"""`warden up` driven as a person would run it, for the supervised-stack and chaos tests."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest

from infra.cli.status import process_runs
from infra.stack.local import REPO, free_port
from runtime.config import Settings, child_environment
from runtime.readiness import ready_file
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_events_of
from schemas.intent import TransactionIntent
from sdk.client import Client
from tests.support import read_topic


@pytest.fixture
def home_settings(tmp_path: Path) -> Settings:
    console = free_port()
    return dataclasses.replace(
        Settings(),
        home=tmp_path / "home",
        broker=f"127.0.0.1:{free_port()}",
        rpc_url=f"http://127.0.0.1:{free_port()}",
        ledger_http=f"127.0.0.1:{free_port()}",
        api_http=f"127.0.0.1:{free_port()}",
        console_http=f"127.0.0.1:{console}",
        console_origin=f"http://localhost:{console}",
        clickhouse_url=None,
        allow_dev_root=True,
        allow_unattested_signer=True,
        broker_storage="durable",
        fetch_wait_setting=None,  # Kafka's own default, not the suite's memory-storage wait (tests/conftest.py)
    )


class WardenUp:
    """`warden up` in a subprocess, as a person would start it."""

    def __init__(self, settings: Settings, *flags: str):
        """``flags``: of `warden up` (``--memory``)."""
        self.settings = settings
        self.env = child_environment(settings) | {"PYTHONPATH": str(REPO)}
        self.env.pop("WARDEN_CLICKHOUSE_URL", None)
        self.log = (settings.home.parent / "warden-up.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "up", *flags],
            env=self.env,
            cwd=str(REPO),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            # The ready files, then what `warden status` would say ("up", every component alive), read
            # from the supervisor's file as it reads it: `warden status` is a Python process of its own
            # (~1.5 s of CPU) that slowed the start it waits for. The tests of status call `status`.
            if all(ready_file(settings, name).exists() for name in ("ledger", "streams", "signer")) and self.up():
                return
            assert self.proc.poll() is None, self.output()
            time.sleep(0.5)
        raise AssertionError(f"warden up was not ready within 180 s:\n{self.output()}")

    def up(self) -> bool:
        """`warden status`'s "up" and every component "alive", from the supervisor's file."""
        path = self.settings.state_dir / "supervisor.json"
        if not path.exists():  # written (atomically) once the supervisor runs
            return False
        doc = orjson.loads(path.read_bytes())
        running = doc.get("running", False) and process_runs(doc.get("supervisor_pid"))
        return running and all(process_runs(c["pid"]) for c in doc["components"].values())

    def status(self) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "-m", "infra.cli", "status", "--json"],
            env=self.env,
            cwd=str(REPO),
            capture_output=True,
            timeout=60,
        )
        return orjson.loads(result.stdout) if result.stdout.strip() else {}

    def components(self) -> dict[str, dict[str, Any]]:
        """Each component's pid, whether it runs and its restarts, as `warden status` reads them from
        the supervisor's file: for the loops that look often, without a process per look (the
        tests of `warden status` itself call `status`)."""
        doc = orjson.loads((self.settings.state_dir / "supervisor.json").read_bytes())
        return {
            name: {"pid": c["pid"], "alive": process_runs(c["pid"]), "restarts": c["restarts"]}
            for name, c in doc["components"].items()
        }

    def output(self) -> str:
        return (self.settings.home.parent / "warden-up.log").read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=90)
        finally:
            self.log.close()


async def submit_all(settings: Settings, intents: list[TransactionIntent]) -> None:
    async with Client(settings) as client:
        for intent in intents:
            await client.submit(intent)
        await client.flush()


async def chain_nonce(settings: Settings, address: str) -> int:
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
    try:
        return int(await node.call("eth_getTransactionCount", address, "latest"), 16)
    finally:
        await node.close()


def ledger_holds_the_topic_and_verifies(settings: Settings, up: WardenUp) -> list[AuditEvent]:
    """Every audit event on the topic is in the ledger (waited for: a sink restarted after a kill
    catches up with what it left, which takes a while on a busy machine; it may not lose an event),
    and `warden audit verify` passes. Returns the events on the topic."""
    on_topic = {
        e.event_id: e for v in asyncio.run(read_topic(settings, topics.AUDIT_EVENTS)) for e in audit_events_of(v)
    }
    host, _, port = settings.ledger_http.rpartition(":")
    client = clickhouse_connect.get_client(host=host, port=int(port))
    deadline = time.monotonic() + 300
    while True:
        held = {row[0] for row in client.query("SELECT event_id FROM audit_log").result_rows}
        if set(on_topic) <= held or time.monotonic() > deadline:
            break
        time.sleep(1)
    missing = set(on_topic) - held
    assert not missing, _missing_report(on_topic, missing, settings, client)
    audit_verifies(up)
    return list(on_topic.values())


def audit_verifies(up: WardenUp) -> None:
    """`warden audit verify --json` against the stack: ok, and no change at the ledger's source."""
    verify = subprocess.run(
        [sys.executable, "-m", "infra.cli", "audit", "verify", "--json"],
        env=up.env,
        cwd=str(REPO),
        capture_output=True,
        timeout=120,
    )
    report = orjson.loads(verify.stdout)
    assert report["ok"] and report["source_changes"] == [], report


def _missing_report(
    on_topic: dict[str, Any], missing: set[str], settings: Settings, client: clickhouse_connect.driver.client.Client
) -> str:
    """What a failure needs to tell a slow sink from a lost event or a record the sink did not
    believe (kept whole as one dlq.recorded row, its events' ids absent): how many are missing, of
    which services and actions, the rows the sink could not read, and what it logged."""
    counts: dict[tuple[str, str], int] = {}
    for event_id in missing:
        event = on_topic[event_id]
        counts[(event.actor, event.action)] = counts.get((event.actor, event.action), 0) + 1
    unreadable = client.query(
        f"SELECT resource, JSONExtractString(details, 'reason') FROM audit_log WHERE action = '{AuditAction.DLQ_RECORDED}'"
    ).result_rows
    log = (settings.home.parent / "warden-up.log").read_text(errors="replace")
    ledger_lines = [line for line in log.splitlines() if " ledger " in line][-40:]
    return (
        f"{len(missing)} of {len(on_topic)} audit events on the topic are not in the ledger: {counts}\n"
        f"rows of records the sink could not read or believe: {unreadable[:20]}\n" + "\n".join(ledger_lines)
    )
