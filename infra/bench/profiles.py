"""``--profile DIR`` of the stack benchmarks: where a stack's processes spend their CPU during the
measured part of a run.

Warden's Python processes are sampled by py-spy (``py-spy record --pid PID --format raw
--nonblocking``, stopped by SIGINT when the measurement ends, which makes it write what it sampled):
collapsed stacks in ``DIR/NAME.txt``, samples of running code only (py-spy leaves idle threads
out). Apache Kafka's nodes are JVMs, recorded by the JVM's own Flight Recorder (``jcmd PID
JFR.start``, then ``JFR.dump`` to ``DIR/NAME.jfr`` and ``JFR.stop``). Then ``DIR/top.txt`` lists
each process's top entries, from the collapsed stacks and from ``jfr print --json --events
jdk.ExecutionSample``: the functions its samples were in (self time) and passed through
(inclusive).
Anvil and surfpool (native code) are not profiled.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[2]
TOP = 12  # entries listed for each process
RECORDING = "warden-bench"  # the JFR recording's name in each JVM


class Top(NamedTuple):
    """A profile's top entries: how many samples it has, and (function, % of them) most first, by
    self time (the function on top of the stack) and inclusive (anywhere in it)."""

    samples: int
    entries: list[tuple[str, float]]
    inclusive: list[tuple[str, float]]


def add_profile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile the stack's processes while the run measures, into DIR: py-spy for the Python processes, "
        "Java Flight Recorder for Kafka's nodes; their top entries in DIR/top.txt",
    )


def kind(pid: int) -> str | None:
    """ "python" or "java" from the process's program, else None (what is not profiled)."""
    try:
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return None
    name = os.path.basename(program)
    return "python" if name.startswith("python") else "java" if name == "java" else None


def py_spy() -> str | None:
    """The py-spy program: the virtualenv's, else one on PATH."""
    local = REPO / ".venv" / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def py_spy_top(collapsed: str, count: int = TOP) -> Top:
    """py-spy's collapsed stacks (``a;b;c 12`` a line, root first, each frame ``function
    (file:line)``) ranked by function (file)."""
    stacks = []
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            stacks.append(([re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")], int(samples)))
    return _top(stacks, count)


def jfr_top(printed: dict[str, Any], count: int = TOP) -> Top:
    """The execution samples of ``jfr print --json``'s document (each stack top first) ranked by
    class.method."""
    stacks = []
    for event in printed["recording"]["events"]:
        frames = (event["values"].get("stackTrace") or {}).get("frames") or []
        if frames:
            stacks.append(([f"{f['method']['type']['name']}.{f['method']['name']}" for f in reversed(frames)], 1))
    return _top(stacks, count)


def _top(stacks: list[tuple[list[str], int]], count: int) -> Top:
    """From (frames, root first; samples) each: the samples, and the ``count`` frames most samples
    were in (self: on top of the stack) and passed through (inclusive: anywhere in it, once a sample)."""
    own: collections.Counter[str] = collections.Counter()
    anywhere: collections.Counter[str] = collections.Counter()
    for frames, samples in stacks:
        own[frames[-1]] += samples
        for frame in set(frames):
            anywhere[frame] += samples
    everything = sum(own.values())

    def ranked(totals: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(frame, round(100 * n / everything, 1)) for frame, n in totals.most_common(count)]

    return Top(everything, ranked(own), ranked(anywhere))


@contextlib.contextmanager
def profiling(directory: Path | None, pids: dict[str, int], progress: Callable[[str], object]) -> Iterator[None]:
    """Profile the processes ``pids`` (name: pid) while the block runs, into ``directory``
    (nothing without one), and write their top entries to ``directory/top.txt``."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    kinds = {name: kind(pid) for name, pid in pids.items()}
    sampler = py_spy()
    if sampler is None:
        progress("  profile: py-spy is neither in .venv/bin nor on PATH: the Python processes are not profiled")
    samplers = {
        name: subprocess.Popen(
            [sampler, "record", "--pid", str(pids[name]), "--format", "raw", "--nonblocking", "--output"]
            + [str(directory / f"{name}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / f"{name}.py-spy.log", "wb"),  # noqa: SIM115 - the sampler's, open while it runs
        )
        for name, what in kinds.items()
        if what == "python" and sampler is not None
    }
    jvms = [name for name, what in kinds.items() if what == "java"]
    for name in jvms:
        _jcmd(pids[name], "JFR.start", f"name={RECORDING}", "settings=profile")
    try:
        yield
    finally:
        for name in jvms:
            _jcmd(pids[name], "JFR.dump", f"name={RECORDING}", f"filename={directory / f'{name}.jfr'}")
            _jcmd(pids[name], "JFR.stop", f"name={RECORDING}")
        for process in samplers.values():
            process.send_signal(signal.SIGINT)
        for process in samplers.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        _write_top(directory, [*samplers], jvms, progress)


def _jcmd(pid: int, *command: str) -> None:
    subprocess.run(["jcmd", str(pid), *command], check=True, capture_output=True, timeout=60)


def _write_top(directory: Path, pythons: list[str], jvms: list[str], progress: Callable[[str], object]) -> None:
    """Each profiled process's top entries, in ``directory/top.txt`` and on the progress lines."""
    lines = []
    for name in pythons:
        path = directory / f"{name}.txt"
        lines += _lines(f"{name} (py-spy", path, py_spy_top(path.read_text() if path.exists() else ""))
    for name in jvms:
        path = directory / f"{name}.jfr"
        printed = subprocess.run(
            ["jfr", "print", "--json", "--stack-depth", "64", "--events", "jdk.ExecutionSample", str(path)],
            check=True,
            capture_output=True,
            timeout=300,
        ).stdout
        lines += _lines(f"{name} (JFR jdk.ExecutionSample", path, jfr_top(json.loads(printed)))
    (directory / "top.txt").write_text("\n".join(lines) + "\n")
    for line in lines:
        progress(f"  profile: {line}")


def _lines(heading: str, path: Path, top: Top) -> list[str]:
    return [
        f"{heading}, {top.samples} samples; {path}); % of the samples, self time:",
        *[f"  {share:5.1f} {frame}" for frame, share in top.entries],
        "  inclusive (anywhere in the stack):",
        *[f"  {share:5.1f} {frame}" for frame, share in top.inclusive],
    ]
