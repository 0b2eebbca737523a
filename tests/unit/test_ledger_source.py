"""The broker id the ledger sink keeps (ledger/source.py): what it reads back from its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.source import read_source, write_source


def test_the_kept_cluster_id_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger_source.json"
    write_source(path, "cluster-a")
    assert read_source(path) == "cluster-a"


@pytest.mark.parametrize("text", ["", "not json", "{}", '{"other": 1}', "[]", '["cluster_id"]', '"cluster_id"', "7"])
def test_a_file_that_is_not_a_kept_id_reads_as_none_instead_of_stopping_the_sink(tmp_path: Path, text: str) -> None:
    # A list or a string indexed by "cluster_id" raised TypeError, which read_source let through:
    # the sink stopped at start over its own state file instead of treating it as unknown.
    path = tmp_path / "ledger_source.json"
    path.write_text(text)
    assert read_source(path) is None


def test_a_cluster_id_that_is_not_a_string_is_not_a_kept_id(tmp_path: Path) -> None:
    path = tmp_path / "ledger_source.json"
    path.write_text('{"cluster_id": 7}')
    assert read_source(path) is None


def test_no_file_reads_as_none(tmp_path: Path) -> None:
    assert read_source(tmp_path / "absent.json") is None
