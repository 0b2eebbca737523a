"""`warden up` driven as a person would run it, for the supervised-stack and chaos tests."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from infra.cli.status import process_runs
from infra.stack.local import REPO, free_port
from runtime.config import Settings, child_environment
from runtime.readiness import ready_file
from runtime.rpc import JsonRpc
from sdk.client import Client


@pytest.fixture
def home_settings(tmp_path) -> Settings:
    return dataclasses.replace(
        Settings(),
        home=tmp_path / "home",
        broker=f"127.0.0.1:{free_port()}",
        rpc_url=f"http://127.0.0.1:{free_port()}",
        ledger_http=f"127.0.0.1:{free_port()}",
        api_http=f"127.0.0.1:{free_port()}",
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

    def status(self) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "infra.cli", "status", "--json"],
            env=self.env,
            cwd=str(REPO),
            capture_output=True,
            timeout=60,
        )
        return orjson.loads(result.stdout) if result.stdout.strip() else {}

    def components(self) -> dict[str, dict]:
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


async def submit_all(settings: Settings, intents) -> None:
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
