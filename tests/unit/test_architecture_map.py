"""ARCHITECTURE.md is the map a newcomer starts from: every module of every package is named in
it, so a module added without a line there fails here and not in a reader's afternoon."""

from pathlib import Path

from tests.layers_support import REPO, sources


def modules() -> list[Path]:
    return [path.relative_to(REPO) for path in sources() if path.name != "__init__.py"]


def test_every_module_of_every_package_is_named_in_architecture_md():
    text = (REPO / "ARCHITECTURE.md").read_text()
    # Named by its path (`signer/custody_wiring.py`) or, in its package's row, by its file name.
    unnamed = [str(path) for path in modules() if str(path) not in text and f"`{path.name}`" not in text]
    assert modules(), "no module found: the test looks in the wrong place"
    assert not unnamed, f"name these modules in ARCHITECTURE.md, under their layer: {unnamed}"


def test_the_three_end_to_end_walks_are_there():
    text = (REPO / "ARCHITECTURE.md").read_text()
    for heading in (
        "## One intent, end to end",
        "## An admin's policy change, under the quorum",
        "## An audit event, from topic to a witnessed checkpoint and a receipt",
    ):
        assert heading in text
