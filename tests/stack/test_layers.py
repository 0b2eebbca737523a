"""The architecture, enforced: schemas <- runtime <- {streams, signer} <- infra, nothing imports
the tests, and runtime/config.py is the one reader of the environment.

The import contracts are import-linter's (pyproject.toml); these tests run it on the tree, and
on a copy of the tree with a wrong import planted, to show a wrong import really fails CI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.layers_support import PACKAGES, REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        # Wide: import-linter wraps a long contract name at 80 columns, and a verdict is read per line.
        env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(root), "COLUMNS": "200"},
    )


def test_the_tree_keeps_every_import_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and result.stdout.count(" KEPT") >= 3


@pytest.mark.parametrize(
    "module, wrong_import, broken",
    [
        ("signer/state.py", "import infra.stack.local", "Layers"),
        ("runtime/clock.py", "import rules.window", "Layers"),
        ("evm/typed_data.py", "import schemas.typed_data", "Layers"),  # the specification imports nothing of Warden's
        ("streams/engine.py", "import signer.service", "Layers"),
        ("ledger/sink.py", "import streams.engine", "Layers"),  # no service imports another
        ("signer/service.py", "import streams.engine", "Layers"),
        ("signer/service.py", "import streams", "Layers"),
        ("rules/guardrails.py", "import streams.engine", "Layers"),  # the rules are below every service
        ("sdk/records.py", "import gateway.console.data", "Layers"),  # the console sits above the SDK
        ("gateway/console/data.py", "import infra.cli.audit", "Layers"),  # and below infra alone
        ("sdk/client.py", "import signer.service", "The SDK imports no service"),
        ("rules/guardrails.py", "import runtime.registry", "The rules read no process-wide chain registry"),
        ("infra/stack/demo.py", "import tests.support", "Nothing imports the tests"),
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path: Path, module: str, wrong_import: str, broken: str) -> None:
    for name in (*PACKAGES, "tests"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / module
    planted.write_text(planted.read_text() + f"\n{wrong_import}  # planted by tests/stack/test_layers.py\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    verdicts = {
        line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
        for line in result.stdout.splitlines()
        if line.endswith((" KEPT", " BROKEN"))
    }
    (contract,) = [name for name in verdicts if name.startswith(broken)]
    assert verdicts[contract] == "BROKEN"
    assert module.removesuffix(".py").replace("/", ".") in result.stdout  # and it names the culprit
