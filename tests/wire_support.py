"""docs/wire-formats.md read as the wire tests read it: its fenced blocks by marker, and the page's
example seed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from solders.hash import Hash
from solders.pubkey import Pubkey

from sdk import solana as build

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "wire-formats.md"


def page_text() -> str:
    return PAGE.read_text(encoding="utf-8")


def block_after(marker: str) -> str:
    """The first fenced block after a marker."""
    text = page_text()
    start = text.index(f"<!-- wire:{marker} -->")
    opening = text.index("```", start)
    body = text.index("\n", opening) + 1
    return text[body : text.index("```", body)].strip()


def json_default(value: object) -> object:
    return json.loads(orjson.dumps(value))


EXAMPLE_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"  # RFC 8032, test 1
CHECKSUMMED = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"  # EIP-55 already: kept


SCRIPTS = Path(__file__).resolve().parent / "node"
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)


# -- running the Node scripts ---------------------------------------------------------------------


def _node() -> str:
    usual = (p for p in ("/usr/bin/node", "/usr/local/bin/node") if os.access(p, os.X_OK))
    found = shutil.which("node") or next(usual, None)
    if found is None:
        pytest.fail(
            "Node.js is not installed: these tests check docs/wire-formats.md by running a producer, a client "
            "and an auditor written from it in Node.js (tests/node/). Install Node.js 18 or later (e.g. "
            "`apt-get install nodejs`) so that `node` is on PATH.",
            pytrace=False,
        )
    return found


def run_node(script: str, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One process for a list of cases; one answer per case."""
    proc = subprocess.run(
        [_node(), str(SCRIPTS / script)], input=json.dumps(cases).encode(), capture_output=True, timeout=120
    )
    assert proc.returncode == 0, f"{script} failed: {proc.stderr.decode()[-2000:]}"
    # Split on "\n" only: str.splitlines also splits at U+2028, which canonical JSON writes as is.
    answers = [json.loads(line) for line in proc.stdout.decode().split("\n") if line]
    assert len(answers) == len(cases), proc.stdout.decode()[-2000:]
    return answers


def run_node_test(script: str, env: dict[str, str]) -> str:
    """``node --test`` on one test file of tests/node, ``env`` added to the environment; its report."""
    proc = subprocess.run(
        [_node(), "--test", str(SCRIPTS / script)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"node --test {script} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


TOKEN = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359"  # lowercase: Node writes it EIP-55

# A Solana transaction's wire bytes, base64: one System transfer between two fixed keys under a fixed
# blockhash, its signature slot empty (the bytes are signed as the string they are).
SOLANA_PAYER, _PAYEE = (Pubkey.from_bytes(bytes([n]) * 32) for n in (7, 9))
SOLANA_TRANSACTION = base64.b64encode(
    build.unsigned(SOLANA_PAYER, [build.sol_transfer(SOLANA_PAYER, _PAYEE, 1_000_000)], Hash(bytes([3]) * 32))
).decode()
# A Solana transaction intent carrying it, to be broadcast.
SOLANA_INTENT = {
    "agent_id": "agent-7",
    "intent_id": "sol-1",
    "chain": "solana-local",
    "intent_type": "solana_transaction",
    "solana_transaction": SOLANA_TRANSACTION,
    "broadcast": True,
    "created_at": "2026-11-21T10:00:00Z",
}
