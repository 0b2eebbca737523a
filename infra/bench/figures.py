"""Figures every benchmark reports the same way: percentiles of samples, a process's CPU time."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


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
        with contextlib.suppress(OSError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children


def numbers(text: str) -> list[int]:
    """A comma-separated list of integers from the command line (``--waits 5,20,100``)."""
    return [int(v) for v in text.split(",") if v]


def windows(latencies_ms: Sequence[float], marks: Sequence[Mapping[str, float]], size: int) -> list[dict[str, Any]]:
    """Consecutive windows of ``size`` intents, in the order they were sent (``latencies_ms``):
    each window's p50 and p99, and each process's CPU milliseconds an intent, from the CPU-seconds
    read at the windows' edges (``marks[k]`` as the k-th window began, ``marks[k + 1]`` as it
    ended). A last window shorter than ``size``, or one without both marks, is left out."""
    rows = []
    for k in range(min(len(latencies_ms) // size, len(marks) - 1)):
        window = latencies_ms[k * size : (k + 1) * size]
        before, after = marks[k], marks[k + 1]
        rows.append(
            {
                "intents": f"{k * size + 1}-{(k + 1) * size}",
                "latency_ms_p50": percentile_ms(window, 0.50),
                "latency_ms_p99": percentile_ms(window, 0.99),
                "cpu_ms_per_intent": {name: round(1000 * (after[name] - before[name]) / size, 3) for name in before},
            }
        )
    return rows


def interval(
    start: float,
    end: float,
    sent_at: Mapping[str, float],
    seen_at: Mapping[str, float],
    cpu_before: Mapping[str, float],
    cpu_after: Mapping[str, float],
) -> dict[str, Any]:
    """One interval of a steady run, [start, end) in wall-clock seconds: the intents sent in it, the
    outcomes seen in it and their latencies from their send (p50, p99; None without any), and each
    process's CPU over it as a % of one core."""
    sent = sum(1 for t in sent_at.values() if start <= t < end)
    latencies = [(t - sent_at[i]) * 1000 for i, t in seen_at.items() if start <= t < end and i in sent_at]
    seconds = end - start
    return {
        "sent": sent,
        "outcomes": len(latencies),
        "latency_ms_p50": percentile_ms(latencies, 0.50) if latencies else None,
        "latency_ms_p99": percentile_ms(latencies, 0.99) if latencies else None,
        "cpu_percent_of_one_core": {
            name: round(100 * (cpu_after[name] - cpu_before[name]) / seconds, 1) for name in cpu_before
        },
    }
