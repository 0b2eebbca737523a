"""What the compose and build-context tests read of the repository: docker-compose.yml as Debian's
`docker-compose config` resolves it, the Dockerfile as its instructions, the `keys` service's
program run on local homes, and which of runtime/config.py's settings each Warden process reads
(the settings whose default is a loopback address, and the modules a process imports that read
them)."""

from __future__ import annotations

import ast
import dataclasses
import getpass
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import grimp
import pytest
import yaml

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
# The admins the file is resolved with (it requires WARDEN_ADMIN_KEYS).
ADMIN_KEYS = "admin-1=0x" + "ab" * 32


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` of the file with ``env`` alone; a failed test where it is not installed."""
    if shutil.which("docker-compose") is None:
        pytest.fail(
            "docker-compose is not installed: run ./infra/dev.sh, which installs Debian's docker-compose "
            "(as root: apt-get install docker-compose); this test parses docker-compose.yml with it"
        )
    # Only what the command needs: a WARDEN_* variable of the caller's must not change the result.
    return subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
    )


def resolved(home: Path) -> dict[str, Any]:
    """docker-compose.yml as `docker-compose config` resolves it with `ADMIN_KEYS` (``home``: its HOME)."""
    result = compose_config({"HOME": str(home), "WARDEN_ADMIN_KEYS": ADMIN_KEYS})
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def command(service: dict[str, Any]) -> list[str]:
    """A service's command as a list of arguments."""
    value = service.get("command", [])
    return value.split() if isinstance(value, str) else value


def run_keys(config: dict[str, Any], homes: Path) -> str:
    """The `keys` service's program, run as the file gives it, on ``homes`` (for /homes) and handing
    them to this user (for the image's); what it printed."""
    keys = config["services"]["keys"]
    argv = command(keys)
    assert argv[:2] == ["python", "-c"] and argv[3:] == ["/homes", "warden"], argv
    # "warden": the image's user, who runs the services.
    assert ("USER", "10001:10001") in dockerfile()
    assert any(re.search(r"useradd [^&]*--uid 10001 [^&]* warden\b", args) for op, args in dockerfile() if op == "RUN")
    script = argv[2].replace("$$", "$")  # `config` prints $ escaped
    for _, target, *_ in (v.split(":") for v in keys["volumes"]):
        (homes / Path(target).name).mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "HOME": str(homes)}
    ran = subprocess.run(
        [sys.executable, "-c", script, str(homes), getpass.getuser()],
        env=env,
        cwd=homes,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


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
