"""No test module imports another: what tests share lives in `tests/*_support.py` (or a
conftest's fixture), so running, moving or deleting one test file never changes another."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_test_modules(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        if isinstance(node, ast.ImportFrom) and node.module in ("tests.unit", "tests.stack"):
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        found += [n for n in names if n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_")]
    return found


def test_no_test_module_imports_another() -> None:
    test_files = sorted(TESTS.rglob("test_*.py"))
    assert len(test_files) > 100, "the tests were not found where this test looks"
    offenders = {str(p.relative_to(TESTS)): names for p in test_files if (names := imported_test_modules(p))}
    assert not offenders, f"move what these share into tests/<subject>_support.py: {offenders}"


def test_the_check_sees_an_import_of_a_test_module(tmp_path: Path) -> None:
    planted = tmp_path / "test_planted.py"
    planted.write_text("from tests.stack.test_ledger_sink import produce\nfrom tests.unit import test_judge\n")
    assert imported_test_modules(planted) == ["tests.stack.test_ledger_sink", "tests.unit.test_judge"]
