"""Who listens on a port, read from the kernel's socket tables against a process tree: a socket this
test process listens on is its own (and its parent's, which started it), never another process's;
a socket that only connects listens nowhere. And the ports a local stack is to listen on are
checked before it starts: a taken one is refused, naming its setting and its holder."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.stack import kafka, listeners
from infra.stack.local import LocalStack, StackError, free_ports, local_settings


@contextlib.contextmanager
def listening(host: str = "127.0.0.1") -> Iterator[int]:
    """A socket of this process listening on a free port of ``host``; its port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        sock.listen()
        yield sock.getsockname()[1]


def _ancestors() -> set[int]:
    ancestors, pid = set(), os.getpid()
    while pid > 1:
        pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        ancestors.add(pid)
    return ancestors


def test_a_socket_this_process_listens_on_is_its_own_and_its_parents() -> None:
    with listening() as port:
        assert listeners.listens(os.getpid(), port)
        assert listeners.listens(os.getppid(), port)  # it runs under its parent
        assert f"pid {os.getpid()} " in listeners.holders(port)


def test_no_other_process_owns_it() -> None:
    unrelated = [
        int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and int(e.name) not in _ancestors() | {os.getpid()}
    ]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())  # no process has it: pids are below
    with listening() as port:
        assert not listeners.listens(pid_max, port)
        assert not any(listeners.listens(pid, port) for pid in unrelated[:20])


def test_a_socket_that_only_connects_listens_nowhere() -> None:
    with listening() as port, socket.create_connection(("127.0.0.1", port)) as client:
        local_port = client.getsockname()[1]
        assert listeners.listens(os.getpid(), port)
        assert not listeners.listens(os.getpid(), local_port) and listeners.holders(local_port) == ""


def test_an_ipv6_listener_counts() -> None:
    if not socket.has_ipv6 or not Path("/proc/net/tcp6").exists():
        pytest.skip("no IPv6 on this machine")
    try:
        with listening("::1") as port:
            assert listeners.listens(os.getpid(), port)
    except OSError as exc:  # IPv6 without a loopback address
        pytest.skip(f"no ::1 here ({exc})")


def test_a_listening_port_is_taken_and_a_closed_one_is_free_despite_its_time_wait() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers (Tansu, Anvil, aiohttp) bind
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listeners.taken(f"127.0.0.1:{port}")
        # The listening side closes first, as a stopped stack's broker does: its end of the
        # connection waits in TIME_WAIT on the port, and the next start may bind it all the same.
        with socket.create_connection(("127.0.0.1", port)) as client:
            server.accept()[0].close()
            client.recv(1)
    assert _time_wait_on(port)
    assert not listeners.taken(f"127.0.0.1:{port}")


def _time_wait_on(port: int) -> bool:
    """Whether a connection on ``port`` is in TIME_WAIT within a second (the kernel moves it there
    when the other side's close arrives)."""
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
        if any(f.split()[3] == "06" and int(f.split()[1].rpartition(":")[2], 16) == port for f in lines):
            return True
        time.sleep(0.01)
    return False


def test_a_stack_refuses_a_port_its_parts_would_listen_on_and_says_which(tmp_path: Path) -> None:
    with listening() as port:
        stack = LocalStack(local_settings(tmp_path, broker=f"127.0.0.1:{port}"))
        with pytest.raises(StackError) as refused:
            stack.refuse_taken_ports(("broker", "anvil"))
        stack.refuse_taken_ports(("anvil", "streams"))  # a broker the stack does not start may be there
    said = str(refused.value)
    assert f"127.0.0.1:{port} (WARDEN_BROKER, the broker) is in use by pid {os.getpid()} " in said
    assert "nothing was started" in said and "set WARDEN_BROKER to other addresses" in said
    assert "WARDEN_RPC_URL" not in said  # only the taken one is named


def test_a_durable_stack_refuses_a_port_its_homes_kafka_cluster_holds_fixed(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, broker_storage="durable")
    broker_port, other = free_ports(2)
    with listening() as controller_port:
        node = kafka.KafkaNode(1, broker_port, controller_port)
        kafka.save_cluster(tmp_path, kafka.KafkaCluster(kafka.new_cluster_id(), (node,)))
        with pytest.raises(StackError) as refused:
            # WARDEN_BROKER names another port: the home's cluster keeps the ports of its first start.
            LocalStack(dataclasses.replace(settings, broker=f"127.0.0.1:{other}")).refuse_taken_ports(("broker",))
    said = str(refused.value)
    where = kafka.cluster_file(tmp_path)
    assert f"127.0.0.1:{controller_port} ({where}, kafka-1's controller) is in use by pid {os.getpid()} " in said
    assert "use another WARDEN_HOME" in said and "set WARDEN_" not in said, said
