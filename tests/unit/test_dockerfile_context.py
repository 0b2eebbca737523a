"""The Dockerfile's build context: every COPY source is in it and it covers the package."""

from __future__ import annotations

import fnmatch
import tomllib

from tests.compose_support import REPO, dockerfile


def test_every_copy_source_is_in_the_context_and_covers_the_package() -> None:
    ignored = [
        p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    copied = []
    for op, args in dockerfile():
        if op in ("COPY", "ADD"):
            *sources, _ = [a for a in args.split() if not a.startswith("--")]
            copied += sources
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is in .dockerignore"
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "pyproject.toml" in copied
    assert {p.rstrip("*") for p in packages} <= set(copied), "every package `pip install .` installs is copied"
    for excluded in (".venv", ".git", ".warden"):
        assert excluded in ignored
