"""`warden bench tracker` follows broadcast transactions waiting on a private Anvil and counts
what that costs the node: one block watch for all of them, not a poll each."""

from __future__ import annotations

import json

import pytest

from infra.bench import tracker


def test_bench_tracker_counts_the_node_calls_of_waiting_transactions(capsys: pytest.CaptureFixture[str]) -> None:
    assert tracker.main(["--pending", "10,60", "--agents", "2", "--seconds", "2", "--json"]) == 0
    few, many = json.loads(capsys.readouterr().out)["results"]
    assert (few["pending"], many["pending"]) == (10, 60)
    for row in (few, many):
        calls = row["node_calls_by_method"]
        # While they wait: each receipt asked before waiting and at the watch's first read; the
        # block number polled for all of them (~20 a second: at most 60 in the 2 s, fewer on a busy
        # machine); the nonce of each of the two addresses asked once for all its
        # transactions (and once more per address after the first read).
        assert calls["eth_getTransactionReceipt"] == 2 * row["pending"], calls
        assert 1 <= calls["eth_blockNumber"] <= 60, calls
        # No block to read: only the head's hash, once a second while no block comes (a reorg at the
        # same height shows only there).
        assert calls.get("eth_getBlockByNumber", 0) <= 3, calls
        assert calls["eth_getTransactionCount"] <= 4, calls
        assert row["node_calls"] == sum(calls.values())
        assert row["signer_cpu_percent_of_one_core"] > 0 and row["block_to_last_outcome_ms"] > 0
        # Half the wait cannot cost more than all of it (0.1: the whole is rounded to one decimal).
        assert 0 <= row["signer_cpu_percent_second_half"] <= 2 * row["signer_cpu_percent_of_one_core"] + 0.1
    # The watch's polling is shared: the more wait, the less each costs.
    assert many["node_calls_per_transaction"] < few["node_calls_per_transaction"]
