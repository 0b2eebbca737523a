"""`warden bench broker-check` runs each check against a broker of its own and leaves nothing behind:
no PostgreSQL, no Tansu, no temporary directory, whether its broker started or not. Its Kafka checks
(`--storage kafka`) are run by hand (docs/benchmarks.md): the durable stack's tests meet Kafka, and one
more Kafka node here was 30 s of the suite's 12 minutes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from infra.bench import broker_check

# What Warden relies on today, on the memory broker of its tests and `warden up --memory`.
SERVED_ON_MEMORY = (
    "broker starts on memory",
    "produce, acks=all",
    "fetch with a wait",
    "consumer group, static members",
    "compacted topic",
    "1.6 MB record",
    "record headers",
    "cluster id",
)


def leftovers() -> set[str]:
    """The script's temporary directories, and any process still running in one (a postgres, whose
    pg_ctl start leaves it no child of ours, a Tansu, or a Kafka node)."""
    found = {str(p) for p in Path(tempfile.gettempdir()).glob("warden-broker-check-*")}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"warden-broker-check-" in cmdline.read_bytes():
                found.add(cmdline.read_bytes().decode(errors="replace"))
        except OSError:
            pass  # a process that ended while we looked
    return found


def test_checks_name_what_they_saw_and_leave_nothing_behind(capsys: pytest.CaptureFixture[str]) -> None:
    before = leftovers()
    code = broker_check.main(
        ["--storage", "memory", "--growth", "postgres,memory", "--marks", "200,400", "--samples", "3", "--json"]
    )
    result = json.loads(capsys.readouterr().out)
    assert leftovers() <= before

    checks = {row["check"]: row for row in result["checks"]}
    assert list(checks)[1:] == list(broker_check.CHECKS)
    assert all(row["saw"] for row in checks.values())
    for name in SERVED_ON_MEMORY:
        assert checks[name]["ok"], checks[name]
    assert code == (0 if all(row["ok"] for row in checks.values()) else 1)

    postgres, memory = result["growth"]
    # PostgreSQL itself started and stopped either way; Tansu on it only if built with its postgres feature.
    assert postgres["storage"] == "postgres" and (postgres["rows"] or "Tansu" in postgres["not_measured"])
    assert [row["records"] for row in memory["rows"]] == [200, 400]
    assert all(
        row["fetch_ms_p50"] > 0 and row["cpu_ms_per_fetch"] >= 0 <= row["idle_cpu_ms_per_fetch"]
        for row in memory["rows"]
    )
