"""One name for one thing: a public class name is defined in one module of the packages, so a
reader (or an import) never meets two `Chain`s, two `Refused`s or two `Report`s that mean different
things. Read with `ast`, nothing is imported."""

import ast
import os
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("evm", "svm", "schemas", "rules", "streams", "signer", "ledger", "sdk", "runtime", "infra")


def public_classes(source: str) -> list[str]:
    """The top-level classes of a module whose names do not start with an underscore."""
    tree = ast.parse(source)
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef) and not node.name.startswith("_")]


def defined_twice(paths: list[Path], root: Path) -> dict[str, list[str]]:
    """Each public class name defined in more than one of `paths`, with the modules defining it."""
    where: defaultdict[str, list[str]] = defaultdict(list)
    for path in paths:
        for name in public_classes(path.read_text()):
            where[name].append(str(path.relative_to(root)))
    return {name: modules for name, modules in sorted(where.items()) if len(modules) > 1}


def package_modules() -> list[Path]:
    """Every module of the packages; node_modules (the TypeScript client's) is not walked."""
    found = []
    for package in PACKAGES:
        for folder, subfolders, files in os.walk(ROOT / package):
            subfolders[:] = [name for name in subfolders if name != "node_modules"]
            found += [Path(folder) / name for name in files if name.endswith(".py")]
    return sorted(found)


def test_every_public_class_name_is_defined_once() -> None:
    paths = package_modules()
    assert len(paths) > 100, "the packages were not found where this test looks"
    twice = defined_twice(paths, ROOT)
    lines = [f"{name}: {', '.join(modules)}" for name, modules in twice.items()]
    assert not twice, "rename one of each (say what it is), these names are defined more than once:\n" + "\n".join(
        lines
    )


def test_the_check_sees_a_name_defined_twice_and_passes_over_private_and_nested_classes(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("class Chain:\n    class Inner: ...\n\nclass _Private: ...\n")
    (tmp_path / "b.py").write_text("class Chain: ...\nclass Inner: ...\nclass _Private: ...\n")
    paths = sorted(tmp_path.glob("*.py"))
    assert defined_twice(paths, tmp_path) == {"Chain": ["a.py", "b.py"]}
