"""`warden bench custody` runs end to end and reports every provider it can reach here."""

from __future__ import annotations

from infra import bench_custody


def test_bench_custody_text_report(capsys):
    assert bench_custody.main(["--seconds", "0.2", "--iterations", "3", "--providers", "local-dev"]) == 0
    text = capsys.readouterr().out
    assert "decrypt-and-sign/s" in text and "local-dev" in text
