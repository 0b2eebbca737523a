"""Functions a reader can hold: none of Warden's functions (outside ``tests/``) runs to 80 lines,
and no function under ``tests/`` (a scenario test or its helpers) to 140. A longer one is split
where the split names a step: a helper per step, its docstring saying what it does. A function's
length is ``end_lineno - lineno + 1`` of its ``def``, decorators aside, nested functions within it.

No allow-list: a function that must stay longer would be listed here with its reason."""

import ast
from pathlib import Path

from tests.layers_support import REPO, sources

LONGEST = 79  # lines, outside tests/
LONGEST_IN_TESTS = 139


def long_functions(path: Path, longest: int, root: Path = REPO) -> list[str]:
    """``file:line name length`` (the file relative to ``root``) of each function in ``path``
    longer than ``longest`` lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > longest:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} {length}")
    return found


def test_no_function_outside_the_tests_runs_to_80_lines() -> None:
    paths = sources()
    assert len(paths) > 200, "Warden's modules were not found where this test looks"
    long = [found for path in paths for found in long_functions(path, LONGEST)]
    assert not long, f"split these where the split names a step (file:line name length): {long}"


def test_no_test_function_runs_to_140_lines() -> None:
    paths = sources(("tests",))
    assert len(paths) > 100, "the tests were not found where this test looks"
    long = [found for path in paths for found in long_functions(path, LONGEST_IN_TESTS)]
    assert not long, f"split these where the split names a step (file:line name length): {long}"


def test_the_scan_names_a_long_function_with_its_line_and_length(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    body = "".join(f"    x{n} = {n}\n" for n in range(79))
    planted.write_text(f"import os\n\n\nasync def long_one():\n{body}\n\ndef short_one():\n    pass\n")
    assert long_functions(planted, LONGEST, tmp_path) == ["planted.py:4 long_one 80"]
    assert long_functions(planted, 80, tmp_path) == []
