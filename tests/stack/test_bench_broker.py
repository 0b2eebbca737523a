"""`warden bench broker` measures a hop, an idle reader, the pipeline's shape with no work in it and
a hop by the batches its partition holds, on a Tansu of its own, and stops it and its relay processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from infra.bench import broker


def pids_with(field: str, needle: bytes) -> set[int]:
    """This process's children whose /proc/<pid>/<field> (comm, cmdline) holds ``needle``: only
    its own, so a stack running beside the test (another Tansu, another benchmark) is not counted."""
    pids = set()
    for path in Path("/proc").glob(f"[0-9]*/{field}"):
        try:
            parent = int((path.parent / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid() and needle in path.read_bytes():
                pids.add(int(path.parent.name))
        except (OSError, IndexError, ValueError):
            pass  # a process that ended while we looked
    return pids


def tansu_pids() -> set[int]:
    return pids_with("comm", b"tansu")


def relay_pids() -> set[int]:
    return pids_with("cmdline", b"infra.bench.broker_pipeline\0--relay")


def test_bench_broker_shows_the_fetch_wait_in_every_hop(capsys: pytest.CaptureFixture[str]) -> None:
    before = tansu_pids()  # the session's own stack, if it started one
    assert (
        broker.main(
            [
                "--hops",
                "25",
                "--waits",
                "5,100",
                "--partitions",
                "4,24",
                "--seconds",
                "2",
                "--pipeline-waits",
                "5,100",
                "--pipeline-records",
                "60",
                "--burst",
                "500",
                "--stored",
                "0,1000",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    short, long = result["hop"]
    assert (short["fetch_wait_ms"], long["fetch_wait_ms"]) == (5, 100)
    for row in (short, long):
        assert row["hops"] == 25 and row["produce_ack_ms_p50"] > 0 and 0 < row["hop_ms_p50"] <= row["hop_ms_p90"]
    few, many = result["idle"]
    assert (few["partitions"], many["partitions"]) == (4, 24)
    # How much more a wider reader or a fuller partition costs is the benchmark's figure to print,
    # never this test's to judge (a busy machine moves it): here each figure is there and sane.
    assert few["broker_cpu_percent_of_one_core"] > 0 and many["broker_cpu_percent_of_one_core"] > 0
    # The empty pipeline: every record through both relays, the second writing its state first.
    fast, slow = result["pipeline"]
    assert (fast["fetch_wait_ms"], slow["fetch_wait_ms"]) == (5, 100)
    for row in (fast, slow):
        assert row["records"] == 60 and row["offered_per_s"] == 100
        assert row["written"] == {"pipe-mid": 60, "pipe-state": 60, "pipe-out": 60}
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
        assert all(v > 0 for v in row["cpu_percent_of_one_core"].values())
        assert set(row["cpu_percent_of_one_core"]) == {"broker", "relays", "client"}
    burst = result["pipeline_burst"]
    assert burst["fetch_wait_ms"] == 100 and burst["records"] == 500 and burst["records_per_s"] > 0
    assert burst["latency_ms_p50"] <= burst["latency_ms_p99"]
    assert burst["written"] == {"pipe-mid": 500, "pipe-state": 500, "pipe-out": 500}
    empty, full = result["stored"]
    assert (empty["batches_stored"], full["batches_stored"]) == (0, 1000)
    assert empty["hops"] == full["hops"] == 25 and empty["hop_ms_p50"] > 0
    assert full["hops"] == 25 and full["broker_cpu_ms_per_hop"] > 0 and empty["broker_cpu_ms_per_hop"] >= 0
    # The benchmark's own broker and its relays are gone.
    assert tansu_pids() <= before
    assert not relay_pids()
