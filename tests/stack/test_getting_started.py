"""docs/http-api.md's "Getting started", followed as a newcomer would: `warden up --memory` as the
page starts it, then the page's shell block run by bash as written (`warden`, curl and jq), with
one change: the stack's own API address in place of the default 127.0.0.1:8780, which another
stack on this machine may hold. The transfer it sends is mined on the stack's Anvil, and the API's
GET says so, as the page says it does. Then the page's TypeScript usage, compiled and run by Node
as a project that installed the client runs it, sends one more. A page edited out of step with
what works fails here."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from infra.stack.local import REPO, console_origin, wait_for_port
from runtime.config import Settings
from runtime.rpc import JsonRpc
from tests.support import warden
from tests.up_support import WardenUp, home_settings  # noqa: F401 - a fixture

PAGE = REPO / "docs" / "http-api.md"
MARKER = "<!-- getting-started:"
DEFAULT_API = "127.0.0.1:8780"
DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
TYPESCRIPT = REPO / "sdk" / "typescript"
NPX = ("npx", "--no-install", "--prefix", str(TYPESCRIPT))


def _blocks() -> tuple[str, str]:
    """The section's first shell block (how the stack starts) and the block under the marker."""
    text = PAGE.read_text()
    section = text[text.index("## Getting started") :]
    section = section[: section.index("\n## ", 1)]
    first = re.search(r"```sh\n(.*?)```\n", section, re.DOTALL)
    marked = re.search(re.escape(MARKER) + r".*?-->\n```sh\n(.*?)```\n", section, re.DOTALL)
    assert first and marked, f"{PAGE}: the Getting started section lost its shell blocks or its marker"
    return first.group(1), marked.group(1)


def _path_with_warden(tmp_path: Path) -> str:
    """PATH with a `warden` that is this checkout's command line, run by this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "warden"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m infra.cli "$@"\n')
    script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


async def _mined(rpc_url: str, tx_hash: str, timeout_s: float = 120.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The transaction and its receipt, once Anvil has mined it."""
    node = JsonRpc(rpc_url, timeout_s=30)
    try:
        deadline = time.monotonic() + timeout_s
        while (receipt := await node.call("eth_getTransactionReceipt", tx_hash)) is None:
            assert time.monotonic() < deadline, f"{tx_hash} not mined within {timeout_s} s"
            await asyncio.sleep(0.5)
        return await node.call("eth_getTransactionByHash", tx_hash), receipt
    finally:
        await node.close()


async def _api_status(api: str, api_key: str, tx_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """What GET /v1/agents/agent-7/transactions/{id} answers once it says mined (or at the deadline)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async with http.post(f"{api}/v1/auth/agent-token", json={"agent_id": "agent-7", "api_key": api_key}) as r:
            assert r.status == 200, await r.text()
            token = (await r.json())["access_token"]
        deadline = time.monotonic() + timeout_s
        while True:
            async with http.get(
                f"{api}/v1/agents/agent-7/transactions/{tx_id}", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                doc: dict[str, Any] = await r.json()
            if doc.get("status") == "mined" or time.monotonic() > deadline:
                return doc
            await asyncio.sleep(0.5)


def _typescript_usage(tmp_path: Path, api_http: str, api_key: str) -> str:
    """The TypeScript usage the page shows (sdk/typescript/test/usage.ts), compiled by the package's
    tsc and run by Node against the stack, as a project that installed the package runs it (its
    node_modules links the package): the hash of the transaction it sent."""
    out = tmp_path / "ts"
    done = subprocess.run(
        [*NPX, "tsc", "-p", "test/tsconfig.json", "--noEmit", "false", "--declaration", "false", "--outDir", str(out)],
        cwd=TYPESCRIPT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (out / "node_modules" / "@warden").mkdir(parents=True)
    (out / "node_modules" / "@warden" / "client").symlink_to(TYPESCRIPT)
    (out / "package.json").write_text('{"type": "module"}')
    script = out / "test" / "usage.js"
    script.write_text(script.read_text().replace(DEFAULT_API, api_http))
    ran = subprocess.run(
        ["node", str(script)], env=os.environ | {"WARDEN_API_KEY": api_key}, capture_output=True, text=True, timeout=180
    )
    assert ran.returncode == 0 and ran.stdout.startswith("0x"), ran.stdout + ran.stderr
    tx_hash, status = ran.stdout.split()
    assert status in ("broadcast", "mined"), ran.stdout
    return tx_hash


def test_the_getting_started_commands_take_a_fresh_stack_to_a_mined_transfer(
    home_settings: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    start, block = _blocks()
    assert [line.split("#")[0].split() for line in start.splitlines()] == [["warden", "up", "--memory"]], start
    assert DEFAULT_API in block, f"the block no longer uses the default API address {DEFAULT_API}"
    for tool in ("curl", "jq", "bash"):
        assert shutil.which(tool), f"{tool} is not installed: the page's commands use it"
    # The page's shell is a newcomer's: WARDEN_BROKER_STORAGE unset, so its commands take the embedded
    # broker `--memory` starts as it is (no idempotent producer, which Tansu refuses).
    settings = dataclasses.replace(home_settings, broker_storage="memory")
    up = WardenUp(settings, "--memory")
    try:
        wait_for_port(settings.api_http, 60, "warden api", up.proc)
        where = up.status()["addresses"]  # where the page says to look for Anvil's RPC and the API
        assert where["anvil"] == settings.rpc_url and where["api"].startswith(f"http://{settings.api_http}/v1"), where
        assert where["console"].startswith(console_origin(settings)), where  # `warden up` runs the console too
        env = up.env | {"PATH": _path_with_warden(tmp_path)}
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.replace(DEFAULT_API, settings.api_http)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + up.output()
        answer = json.loads(done.stdout.rstrip().splitlines()[-1])
        assert answer["status"] in ("broadcast", "mined") and answer["tx_hash"], answer
        tx, receipt = asyncio.run(_mined(settings.rpc_url_for("anvil"), answer["tx_hash"]))
        assert receipt["status"] == "0x1" and tx["to"].lower() == DEST.lower(), receipt
        assert int(tx["value"], 16) == 5 * 10**16 and tx["from"].lower() == answer["from"].lower()
        issued = warden(settings, "agents", "api-key", "--agent", "agent-7", "--json")
        assert issued.returncode == 0, issued.stderr
        api_key = json.loads(issued.stdout)["api_key"]
        looked = asyncio.run(_api_status(f"http://{settings.api_http}", api_key, answer["id"]))
        assert looked["status"] == "mined" and looked["block_number"] == int(receipt["blockNumber"], 16), looked
        tx_hash = _typescript_usage(tmp_path, settings.api_http, api_key)
        tx, receipt = asyncio.run(_mined(settings.rpc_url_for("anvil"), tx_hash))
        assert receipt["status"] == "0x1" and tx["to"].lower() == DEST.lower() and int(tx["value"], 16) == 5 * 10**16
    finally:
        stopped = up.stop()
    assert stopped == 0, up.output()
