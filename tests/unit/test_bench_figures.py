"""The benchmarks' arithmetic: windows of an awaited run, a soak's minutes, and profiles' top entries."""

from __future__ import annotations

from typing import Any

from infra.bench.figures import interval, percentile, windows
from infra.bench.profiles import jfr_top, py_spy_top


def test_percentile_is_the_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1 .. 100
    assert percentile(samples, 0.50) == 51.0
    assert percentile(samples, 0.99) == 100.0
    assert percentile([7.0], 0.99) == 7.0


def test_windows_give_each_window_its_latencies_and_cpu_per_intent() -> None:
    latencies = [10.0, 30.0, 20.0, 40.0, 100.0, 300.0, 200.0, 400.0, 5.0]  # the ninth: no full window
    marks = [
        {"kafka-1": 1.0, "streams": 2.0},
        {"kafka-1": 1.4, "streams": 2.1},  # after intents 1-4: 0.4 s and 0.1 s of CPU
        {"kafka-1": 2.2, "streams": 2.3},  # after 5-8: 0.8 and 0.2
    ]
    rows = windows(latencies, marks, 4)
    assert [row["intents"] for row in rows] == ["1-4", "5-8"]
    assert [(row["latency_ms_p50"], row["latency_ms_p99"]) for row in rows] == [(30.0, 40.0), (300.0, 400.0)]
    assert rows[0]["cpu_ms_per_intent"] == {"kafka-1": 100.0, "streams": 25.0}
    assert rows[1]["cpu_ms_per_intent"] == {"kafka-1": 200.0, "streams": 50.0}


def test_a_window_without_its_closing_mark_is_left_out() -> None:
    assert len(windows([1.0] * 8, [{"a": 0.0}, {"a": 1.0}], 4)) == 1


def test_an_interval_counts_what_was_sent_and_seen_in_it() -> None:
    sent_at = {"a": 59.0, "b": 60.0, "c": 61.0, "d": 119.5}
    seen_at = {"a": 60.5, "b": 60.02, "c": 61.2, "d": 120.1}  # a: sent before, answered inside; d: after
    row = interval(60.0, 120.0, sent_at, seen_at, {"kafka-1": 10.0}, {"kafka-1": 16.0})
    assert (row["sent"], row["outcomes"]) == (3, 3)
    assert row["latency_ms_p50"] == 200.0  # 20, 200 and 1,500 ms
    assert row["latency_ms_p99"] == 1500.0
    assert row["cpu_percent_of_one_core"] == {"kafka-1": 10.0}


def test_an_interval_without_outcomes_has_no_latency() -> None:
    row = interval(0.0, 60.0, {"a": 1.0}, {}, {"x": 0.0}, {"x": 0.0})
    assert (row["sent"], row["outcomes"], row["latency_ms_p50"], row["latency_ms_p99"]) == (1, 0, None, None)


def test_py_spy_top_entries_are_by_function_self_and_inclusive() -> None:
    collapsed = "\n".join(
        [
            "<module> (a.py:1);run (b.py:5);select (selectors.py:468) 6",
            "<module> (a.py:1);run (b.py:7);select (selectors.py:470) 2",
            "<module> (a.py:1);sign (c.py:9) 2",
        ]
    )
    top = py_spy_top(collapsed)
    assert (top.samples, top.entries) == (10, [("select (selectors.py)", 80.0), ("sign (c.py)", 20.0)])
    assert top.inclusive[0] == ("<module> (a.py)", 100.0)
    assert set(top.inclusive[1:]) == {("run (b.py)", 80.0), ("select (selectors.py)", 80.0), ("sign (c.py)", 20.0)}
    assert py_spy_top("") == (0, [], [])


def test_jfr_top_entries_are_the_top_frames_of_execution_samples() -> None:
    def sample(*methods: str) -> dict[str, Any]:
        frames = [{"method": {"type": {"name": m.rsplit(".", 1)[0]}, "name": m.rsplit(".", 1)[1]}} for m in methods]
        return {"type": "jdk.ExecutionSample", "values": {"stackTrace": {"frames": frames}}}

    printed = {
        "recording": {
            "events": [
                sample("sun.nio.ch.EPoll.wait", "kafka.network.Processor.poll"),
                sample("sun.nio.ch.EPoll.wait"),
                sample("kafka.log.UnifiedLog.append", "kafka.server.ReplicaManager.appendToLocalLog"),
                {"type": "jdk.ExecutionSample", "values": {"stackTrace": None}},
            ]
        }
    }
    top = jfr_top(printed)
    assert (top.samples, top.entries) == (3, [("sun.nio.ch.EPoll.wait", 66.7), ("kafka.log.UnifiedLog.append", 33.3)])
    assert ("kafka.network.Processor.poll", 33.3) in top.inclusive
