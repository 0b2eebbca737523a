"""`warden bench pipeline` runs on a stack of its own, explains its figures, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from infra.bench.pipeline import STAGES

ROOT = Path(__file__).resolve().parents[2]


def test_bench_pipeline_reports_every_figure_and_removes_its_stack(tmp_path: Path) -> None:
    # A process of its own, as an operator runs it, with its temporary homes under tmp_path.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "bench",
            "pipeline",
            "--topology",
            "fused",
            "--rate",
            "20",
            "--agents",
            "2",
            "--intents",
            "20",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (result,) = json.loads(out.stdout)["results"]
    assert (result["topology"], result["completed"], result["intents"], result["rejected"]) == ("fused", 20, 20, 0)
    assert result["intents_per_s"] > 0
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p99"] <= result["latency_ms_p999"]
    assert list(result["stages_ms"]) == list(STAGES)
    assert all(figures["p50"] is not None for figures in result["stages_ms"].values())
    assert {"broker", "streams", "signer", "ledger"} <= set(result["cpu_percent_of_one_core"])
    # CPU per intent is each process's CPU over the completed intents, and bounds the rate.
    per_intent = result["cpu_ms_per_intent"]
    for name, seconds in result["cpu_seconds"].items():
        assert abs(per_intent[name] - 1000 * seconds / result["completed"]) < 0.001
    assert per_intent["streams"] > 0 and per_intent["signer"] > 0
    assert abs(result["cpu_ms_per_intent_total"] - sum(per_intent.values())) < 0.01
    cpus = os.cpu_count()
    assert cpus is not None
    assert result["cpu_bound_intents_per_s"] == round(cpus * 1000 / result["cpu_ms_per_intent_total"], 1)
    # The hop table: the worker fetched the intents and produced their approvals; the benchmark's
    # client produced them (20 intents at 20/s: a request each, give or take a batch).
    hops = result["kafka_requests_per_intent"]
    assert hops["streams"]["Fetch"] > 0 and hops["streams"]["Produce"] > 0, hops
    assert 0.5 <= hops["bench client"]["Produce"] <= 1.0, hops
    # The stack's home (ledger store, keys, logs: ~30 MB) went with the run.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("warden-bench-")] == []
