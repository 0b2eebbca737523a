"""The split topology (one topic per stage) reaches exactly the demo's expected outcomes."""

from __future__ import annotations

import asyncio

from infra import demo


def test_the_demo_script_through_the_split_topology(fresh_stack):
    stack = fresh_stack(topology="split")
    report = asyncio.run(demo.run_script(stack.settings, progress=lambda m: None))
    outcomes = [(r["intent"], r["code"] if r["outcome"] == "rejected" else r["outcome"]) for r in report["intents"]]
    assert outcomes == demo.expected_outcomes(stack.settings)
