"""Compile the Solidity test contracts next to this file into their committed JSON artifacts.

    python -m infra.contracts.build           compile every *.sol here, write <Name>.json next to it
    python -m infra.contracts.build --check   compile, write nothing, exit 1 naming every artifact
                                              that is not what its source compiles to

The artifacts are committed so that tests and the demo deploy real contracts without a compiler;
``--check`` (run by tests/stack/test_contracts.py) keeps them honest: a source edited without rebuilding,
or bytecode edited by hand, fails it.

The compiler is the npm package ``solc`` (solc-js, the official Emscripten build), pinned exactly in
infra/dev.sh and run by Node: the same version always gives the same bytes, including the metadata
hash at the end of the bytecode, which commits to every source file the contract was built from (so
an edit to WardenToken.sol changes GreedyToken's bytecode too). It is found at
``.venv/npm/node_modules/solc`` under the repository, or at the package directory ``--solc-js``
names.

Each ``X.sol`` holds the contract ``X`` (and, at most, the interfaces it calls); one artifact
``X.json`` per source file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from schemas.errors import WardenError

CONTRACTS = Path(__file__).resolve().parent
REPO = CONTRACTS.parents[1]
DEFAULT_SOLC_JS = REPO / ".venv" / "npm" / "node_modules" / "solc"

# What every contract is compiled with. evmVersion cancun: Anvil (Osaka) runs it, and so does every
# chain Warden targets; the optimizer as most deployed contracts use it.
SETTINGS = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
}
OUTPUT_SELECTION = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}

# Node reads the standard-JSON input on stdin and prints the compiler's version and output.
NODE_SCRIPT = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input))}));
});
"""


class BuildError(WardenError):
    """The contracts could not be compiled; the message says what to do."""


def solc_js_dir(where: Path = DEFAULT_SOLC_JS) -> Path:
    """The directory of the npm ``solc`` package (default: the one dev.sh installs)."""
    if not (where / "package.json").is_file():
        raise BuildError(
            f"solc-js is missing at {where}: run ./infra/dev.sh first (it installs npm solc into "
            ".venv/npm), or pass --solc-js with the directory of an installed npm solc package"
        )
    return where


def sources() -> dict[str, str]:
    """Every ``*.sol`` here, by file name (the name imports use: ``import "./WardenToken.sol"``)."""
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(CONTRACTS.glob("*.sol"))}


def compile_sources(texts: dict[str, str], solc_js: Path = DEFAULT_SOLC_JS) -> tuple[str, dict[str, Any]]:
    """Compile all sources in one standard-JSON run; return the compiler version and its output."""
    node = shutil.which("node")
    if node is None:
        raise BuildError("node is missing: run ./infra/dev.sh first (Node.js runs solc-js; install nodejs)")
    standard_json = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in texts.items()},
        "settings": {**SETTINGS, "outputSelection": OUTPUT_SELECTION},
    }
    done = subprocess.run(
        [node, "-e", NODE_SCRIPT, str(solc_js_dir(solc_js))],
        input=json.dumps(standard_json),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise BuildError(
            f"solc-js failed (exit {done.returncode}): {done.stderr.strip()}; reinstall it with ./infra/dev.sh"
        )
    reply = json.loads(done.stdout)
    output = reply["output"]
    problems = output.get("errors", [])
    for problem in problems:
        if problem["severity"] != "error":
            print(problem.get("formattedMessage", problem["message"]).rstrip(), file=sys.stderr)
    errors = [p.get("formattedMessage", p["message"]).rstrip() for p in problems if p["severity"] == "error"]
    if errors:
        raise BuildError("the contracts do not compile; fix the source and run again:\n" + "\n".join(errors))
    return reply["version"], output


def artifacts(texts: dict[str, str], version: str, output: dict[str, Any]) -> dict[str, str]:
    """The artifact text of each source's contract, by artifact file name."""
    rendered = {}
    for file_name, text in texts.items():
        name = file_name.removesuffix(".sol")
        contract = output.get("contracts", {}).get(file_name, {}).get(name)
        if contract is None:
            raise BuildError(f"{file_name} defines no contract {name}: each X.sol must hold the contract X")
        document = {
            "contract": name,
            "source": file_name,
            "source_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "compiler": version,
            "settings": SETTINGS,
            "abi": contract["abi"],
            "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
            "deployed_bytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
        }
        rendered[f"{name}.json"] = json.dumps(document, indent=2, sort_keys=True) + "\n"
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.contracts.build", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any artifact differs from a fresh compile"
    )
    parser.add_argument(
        "--solc-js",
        type=Path,
        default=DEFAULT_SOLC_JS,
        help="the npm solc package's directory (default: .venv/npm/node_modules/solc)",
    )
    args = parser.parse_args(argv)
    texts = sources()
    try:
        version, output = compile_sources(texts, args.solc_js)
        fresh = artifacts(texts, version, output)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"solc {version}: {len(texts)} source file(s) in {CONTRACTS.relative_to(REPO)}")
    stale = []
    for file_name, text in fresh.items():
        path = CONTRACTS / file_name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if args.check:
            state = "ok" if current == text else ("missing" if current is None else "differs from a fresh compile")
            print(f"  {file_name}: {state}")
            if current != text:
                stale.append(file_name)
        else:
            if current != text:
                path.write_text(text, encoding="utf-8")
            print(f"  {file_name}: {'unchanged' if current == text else 'written'}")
    # An artifact whose source is gone would still be deployable but no longer checkable.
    orphans = sorted(p.name for p in CONTRACTS.glob("*.json") if p.name not in fresh)
    for orphan in orphans:
        print(f"  {orphan}: no {orphan.removesuffix('.json')}.sol next to it; delete it or restore its source")
    if args.check and (stale or orphans):
        print(
            f"error: not what the sources compile to: {', '.join(stale + orphans)}; "
            "run `python -m infra.contracts.build` and commit the artifacts",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
