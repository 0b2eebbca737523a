"""The module index, docs/modules.md: every module of every package with the first sentence of its
docstring, by package, written from the sources themselves (`python -m infra.module_index`).
ARCHITECTURE.md is the map; this is the index a reader looks a file up in, and
tests/unit/test_architecture_map.py holds it to the sources."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = (
    "evm",
    "svm",
    "btc",
    "schemas",
    "runtime",
    "rules",
    "streams",
    "signer",
    "ledger",
    "sdk",
    "gateway",
    "infra",
)
INDEX = REPO / "docs" / "modules.md"


def modules(root: Path = REPO) -> list[Path]:
    """Every module of ``PACKAGES``, by package from the ground floor up and sorted within each; no
    ``__init__.py``, nothing under node_modules."""
    return [
        path
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        if path.name != "__init__.py" and "node_modules" not in path.parts
    ]


def first_sentence(docstring: str) -> str:
    """The docstring's first sentence, on one line: up to the first full stop that ends a sentence
    (or the end of its first paragraph)."""
    paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
    found = re.search(r"(?<![ .]\w)\.(\s|$)", paragraph)
    return paragraph if found is None else paragraph[: found.start() + 1]


def render(root: Path = REPO) -> str:
    lines = [
        "# Modules",
        "",
        "Every module of every package, with the first sentence of its docstring. Written by",
        "`python -m infra.module_index` from the sources; [ARCHITECTURE.md](../ARCHITECTURE.md) is the map.",
    ]
    package = ""
    for path in modules(root):
        relative = path.relative_to(root)
        if relative.parts[0] != package:
            package = relative.parts[0]
            lines += ["", f"## `{package}/`", ""]
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        lines.append(f"- `{relative}`: {first_sentence(docstring) or '(no docstring)'}")
    return "\n".join(lines) + "\n"


def main() -> int:
    INDEX.write_text(render())
    print(f"wrote {INDEX.relative_to(REPO)}: {len(modules())} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
