"""A stack never joins another one. With its ports held (here by plain listening sockets, as
another stack's broker and Anvil would hold them), `warden up` starts nothing: it says which ports,
which settings name them and who holds them, and nothing of it connects to the holders. And a
broker or Anvil that could not bind its port (taken between the check and the bind) is an error
naming the port and its log, never taken for ready because something else answers there.

Before: Tansu panicked with AddrInUse and Anvil failed to bind, the readiness check connected to
the other stack's listeners and called them ready, and a worker and a signer joined the other
stack's broker."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.stack.local import REPO, LocalStack, StackError, local_settings
from runtime.config import child_environment


@contextlib.contextmanager
def held(count: int) -> Iterator[list[socket.socket]]:
    """``count`` listening sockets on free loopback ports, as another stack's processes hold them."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            sock.setblocking(False)
        yield socks


def _port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def _connections(socks: list[socket.socket]) -> list[tuple[Any, ...]]:
    """The connections made to the held sockets (none pending, none accepted: none made)."""
    made = []
    for sock in socks:
        with contextlib.suppress(BlockingIOError):
            made.append(sock.accept()[1])
    return made


@pytest.mark.parametrize("flags", [("--memory",), ()], ids=["memory", "kafka"])
def test_warden_up_on_ports_another_stack_holds_starts_nothing_and_names_them(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    home = tmp_path / "home"
    with held(2) as (broker, anvil):
        broker_port, anvil_port = _port(broker), _port(anvil)
        settings = local_settings(home, broker=f"127.0.0.1:{broker_port}", rpc_url=f"http://127.0.0.1:{anvil_port}")
        started = time.monotonic()
        up = subprocess.run(
            [sys.executable, "-m", "infra.cli", "up", *flags],
            env=child_environment(settings) | {"PYTHONPATH": str(REPO)},
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - started
        connections = _connections([broker, anvil])
    said = up.stderr.strip()
    assert up.returncode == 1 and said.startswith("warden up: this stack's ports are taken"), up.stderr
    assert f"127.0.0.1:{broker_port} (WARDEN_BROKER, the broker) is in use by pid {os.getpid()} " in said
    assert f"127.0.0.1:{anvil_port} (WARDEN_RPC_URL, Anvil's JSON-RPC) is in use by pid {os.getpid()} " in said
    assert "Traceback" not in said and len(said.splitlines()) == 1, said
    # Every process the stack starts logs under $WARDEN_HOME/logs: no log, no process (nor a Kafka
    # node formatted for a cluster of this home).
    assert not (home / "logs").exists(), sorted(p.name for p in (home / "logs").iterdir())
    assert not (home / "kafka").exists()
    assert connections == [], connections
    assert took < 30, took  # refused at once, not after a part's start timed out


@pytest.mark.parametrize("part", ["broker", "anvil"])
def test_a_part_that_could_not_bind_is_not_ready_though_something_answers_there(tmp_path: Path, part: str) -> None:
    with held(1) as (holder,):
        port = _port(holder)
        address = f"127.0.0.1:{port}"
        setting = {"broker": address} if part == "broker" else {"rpc_url": f"http://{address}"}
        stack = LocalStack(local_settings(tmp_path / "home", **setting))
        try:
            with pytest.raises(StackError) as failed:
                # The start's own check passed a moment before: the port is taken since.
                (stack.start_broker if part == "broker" else stack.start_anvil)()
        finally:
            stack.stop()
        connections = _connections([holder])
    said = str(failed.value)
    assert re.search(f"exited with code \\d+ before listening on {address}; ", said), said
    assert f"port {port} is held by pid {os.getpid()} " in said, said
    assert said.endswith(f"see {tmp_path / 'home' / 'logs' / part}.log"), said
    assert connections == [], connections
