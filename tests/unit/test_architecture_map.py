"""ARCHITECTURE.md is the map a newcomer starts from, and docs/modules.md the index of every
module: the map names every package, the index lists every module with its docstring's first
sentence as the sources say it now, so a module added without `python -m infra.module_index`
fails here and not in a reader's afternoon."""

from pathlib import Path

from infra.module_index import INDEX, PACKAGES, modules, render
from tests.layers_support import REPO


def test_the_module_index_is_the_sources_as_they_are() -> None:
    assert len(modules()) > 200, "no modules found: the index looks in the wrong place"
    assert INDEX.read_text() == render(), "docs/modules.md is out of date: run `python -m infra.module_index`"


def test_the_index_names_a_module_added_and_says_what_it_is(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "rules" / "limits.py").write_text('"""The limits stage. It counts."""\n')
    (tmp_path / "rules" / "__init__.py").write_text("")
    assert "- `rules/limits.py`: The limits stage." in render(tmp_path).splitlines()


def test_the_map_names_every_package_and_points_to_the_index() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text()
    assert [p for p in PACKAGES if f"`{p}/`" not in text] == []
    assert "docs/modules.md" in text


def test_the_three_end_to_end_walks_are_there() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text()
    for heading in (
        "## One intent, end to end",
        "## An admin's policy change, under the quorum",
        "## An audit event, from topic to a witnessed checkpoint and a receipt",
    ):
        assert heading in text
