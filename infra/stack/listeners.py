"""Who listens on a port: the kernel's socket tables (Linux's /proc/net/tcp and tcp6) read against
the sockets a process tree holds (/proc/<pid>/fd).

A local stack's component is ready when the process the stack started listens, not when something
answers on its port: another stack already there answers too, and a component that failed to bind
(Tansu panics with AddrInUse and exits 0, Anvil exits 1) would be taken for ready, and Warden's
services would join the other stack's broker and read its vault.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

from schemas.errors import WardenError

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_LISTEN = "0A"  # the TCP state LISTEN in those tables


class ListenerError(WardenError, RuntimeError):
    next_step = "the local stack runs on Linux, where /proc/net/tcp tells which process listens on a port"


def listening_sockets(port: int) -> set[int]:
    """The inodes of the sockets listening on ``port``, on any address, IPv4 or IPv6."""
    inodes: set[int] = set()
    local = f":{port:04X} "  # the local address's port, as the tables write it
    for table in _TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except FileNotFoundError:
            if table.name == "tcp6":
                continue  # a kernel without IPv6
            raise ListenerError(f"{table} does not exist") from None
        except OSError as exc:
            raise ListenerError(f"cannot read {table} ({exc})") from exc
        for line in lines:
            if local not in line:  # most lines: no need to split them
                continue
            fields = line.split()
            if fields[3] == _LISTEN and fields[1].endswith(local.rstrip()):
                inodes.add(int(fields[9]))
    return inodes


def process_tree(pid: int) -> set[int]:
    """``pid`` and every process it started, and they started, that still runs under it."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):  # a process gone since the listing
            stat = Path(entry.path, "stat").read_text()
            parent = int(stat.rpartition(")")[2].split()[1])  # after the command, which may hold ")"
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = set(), [pid]
    while todo:
        current = todo.pop()
        if current not in tree:
            tree.add(current)
            todo += children.get(current, [])
    return tree


def sockets_of(pid: int) -> set[int]:
    """The inodes of the sockets ``pid`` holds open; none for a process gone or not this user's."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def listens(pid: int, port: int) -> bool:
    """Whether ``pid`` or a process under it listens on ``port``."""
    listening = listening_sockets(port)
    return bool(listening) and any(listening & sockets_of(p) for p in process_tree(pid))


def holders(port: int) -> str:
    """Who listens on ``port``, for an error: each pid with its command line, as far as this user
    can see them; "" when nothing listens."""
    listening = listening_sockets(port)
    if not listening:
        return ""
    seen = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and listening & sockets_of(int(entry.name)):
            with contextlib.suppress(OSError):
                command = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                seen.append(f"pid {entry.name} ({command.strip()[:120]})")
    return ", ".join(seen) or "a process of another user"


def taken(address: str) -> bool:
    """Whether ``host:port`` is in use, as binding it to listen there now finds it, as a server
    binds it (SO_REUSEADDR: the connections of a stack stopped a moment ago, in TIME_WAIT, do not
    count). Any other failure to bind (an address this machine does not have) is the component's
    to report."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False
