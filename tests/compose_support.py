"""What the compose and build-context tests read of the repository: the Dockerfile as its
instructions, and which of runtime/config.py's settings each Warden process reads (the settings
whose default is a loopback address, and the modules a process imports that read them)."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import grimp

from runtime.config import Settings, environment

REPO = Path(__file__).resolve().parents[1]
# Warden's packages, as import-linter reads them (pyproject.toml).
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
_LOOPBACK = re.compile(r"\b(127\.0\.0\.1|localhost)\b")
_PROBE = "probe.invalid:9"


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _attributes(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Every attribute of ``settings`` (its nested settings' too, dotted), with its value."""
    found: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if dataclasses.is_dataclass(value):
            found |= _attributes(value, f"{prefix}{field.name}.")
        else:
            found[prefix + field.name] = value
    return found


def loopback_settings() -> dict[str, str]:
    """Each variable of runtime/config.py whose setting defaults to a loopback address, with the
    Settings attribute it sets: found by setting each variable the module names to an address
    and seeing which attribute takes it. Call it with no WARDEN_* variable set but WARDEN_HOME."""
    source = (REPO / "runtime" / "config.py").read_text()
    variables = sorted(set(re.findall(r'"(WARDEN_[A-Z0-9_]*[A-Z0-9])"', source)) - {"WARDEN_HOME"})
    defaults = _attributes(Settings())
    found: dict[str, str] = {}
    for variable in variables:
        try:
            with environment(**{variable: _PROBE}):
                probed = _attributes(Settings())
        except ValueError:  # a number's setting: not an address
            continue
        for attribute, value in probed.items():
            if value == _PROBE and isinstance(defaults[attribute], str) and _LOOPBACK.search(defaults[attribute]):
                found[variable] = attribute
    return found


def _settings_readers() -> dict[str, set[str]]:
    """Each of Settings' methods and properties, with the attributes it reads (through the others)."""
    tree = ast.parse((REPO / "runtime" / "config.py").read_text())
    (settings,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings"]
    direct = {
        method.name: {
            node.attr
            for node in ast.walk(method)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
        }
        for method in settings.body
        if isinstance(method, ast.FunctionDef)
    }
    readers = {name: set(reads) for name, reads in direct.items()}
    changed = True
    while changed:
        changed = False
        for reads in readers.values():
            more = set().union(*(readers.get(name, set()) for name in reads)) - reads
            if more:
                reads |= more
                changed = True
    return readers


def settings_read_by(module: str) -> set[str]:
    """The Settings attributes that ``module`` (a process's entry: its ``__main__`` if it is a
    package) and every Warden module it imports read as ``settings.<name>``, directly or through
    one of Settings' methods; runtime/config.py itself, which names them all, aside."""
    graph = grimp.build_graph(*PACKAGES)
    entry = f"{module}.__main__" if graph.find_children(module) else module
    readers = _settings_readers()
    read: set[str] = set()
    for name in ({entry} | graph.find_upstream_modules(entry)) - {"runtime.config"}:
        path = REPO.joinpath(*name.split("."))
        source = path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"
        for used in re.findall(r"\bsettings\.([a-z_]+)\b", source.read_text()):
            read |= {used} | readers.get(used, set())
    return read
