"""`warden bench broker` measures a hop and an idle reader on a Tansu of its own, and stops it."""

from __future__ import annotations

import json
from pathlib import Path

from infra import bench_broker


def tansu_pids() -> set[int]:
    pids = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().startswith("tansu"):
                pids.add(int(comm.parent.name))
        except OSError:
            pass  # a process that ended while we looked
    return pids


def test_bench_broker_shows_the_fetch_wait_in_every_hop(capsys):
    before = tansu_pids()
    assert bench_broker.main(["--hops", "25", "--waits", "5,100", "--partitions", "4,24", "--seconds", "2",
                              "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    short, long = result["hop"]
    assert (short["fetch_wait_ms"], long["fetch_wait_ms"]) == (5, 100)
    for row in (short, long):
        assert row["hops"] == 25 and 0 < row["produce_ack_ms_p50"] < row["hop_ms_p50"] <= row["hop_ms_p90"]
    # Tansu sleeps through part of a fetch's wait even when a record is there to read.
    assert long["hop_ms_p50"] > 2 * short["hop_ms_p50"]
    few, many = result["idle"]
    assert (few["partitions"], many["partitions"]) == (4, 24)
    # Every scan reads every partition in the fetch: a wider reader costs the broker more.
    assert 0 < few["broker_cpu_percent_of_one_core"] < many["broker_cpu_percent_of_one_core"]
    # The benchmark's own broker is gone.
    assert tansu_pids() <= before
