"""Figures every benchmark reports the same way: percentiles of samples, a process's CPU time."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def percentile(samples: Sequence[float], q: float) -> float:
    """The sample at quantile ``q`` (nearest rank, no interpolation)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def percentile_ms(samples_ms: Sequence[float], q: float) -> float:
    """``percentile`` of samples in milliseconds, to a hundredth of one."""
    return round(percentile(samples_ms, q), 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its children, live (the ledger's signature checkers)
    or reaped, so far (Linux /proc), in seconds; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime
    return own + sum(cpu_seconds(child) for child in _live_children(pid))


def _live_children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return children


def numbers(text: str) -> list[int]:
    """A comma-separated list of integers from the command line (``--waits 5,20,100``)."""
    return [int(v) for v in text.split(",") if v]
