"""runtime/config.py is the one module that reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.layers_support import REPO, sources


def _reads_environment(path: Path) -> list[int]:
    """Lines where a module touches os.environ / os.getenv / os.putenv, however it was imported."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv", "putenv", "environb")
            or (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and any(a.name in ("environ", "getenv", "putenv", "environb") for a in node.names)
            )
        ):
            lines.append(node.lineno)
    return lines


def test_only_runtime_config_reads_the_environment() -> None:
    readers = {str(p.relative_to(REPO)): lines for p in sources() if (lines := _reads_environment(p))}
    assert list(readers) == ["runtime/config.py"], readers
