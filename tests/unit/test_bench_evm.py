"""`warden bench evm` runs and reports every figure; how fast it was is the benchmark's business."""

from __future__ import annotations

import json

import pytest

from infra.bench import evm as bench_evm


def test_bench_evm_reports_every_operation_and_implementation(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_evm.main(["-n", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    operations = {row["operation"]: row for row in result["operations"]}
    assert set(operations) == {"keccak-256, 100 B", "keccak-256, 1 KB", "sign a 32-byte hash", "address from a key"}
    for label in ("keccak-256, 100 B", "keccak-256, 1 KB"):
        assert set(operations[label]["per_s"]) == {"private", "pycryptodome keccak.new", "eth-hash"}
    assert set(operations["sign a 32-byte hash"]["per_s"]) == {"private", "coincurve PrivateKey.sign_recoverable"}
    for row in result["operations"]:
        assert all(per_s > 0 for per_s in row["per_s"].values())
        assert (row["ratio"] is None) == ("private" not in row["per_s"])
    assert result["in_use"] == {"keccak": "private", "sign_hash": "private"}


def test_bench_evm_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_evm.main(["-n", "20"]) == 0
    out = capsys.readouterr().out
    assert "private / fastest public" in out and "address from a key" in out
