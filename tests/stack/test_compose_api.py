"""docker-compose.yml's `api` service run for real without Docker: its command and environment as
the file gives them, as a local process in a home laid out and keyed by the file's `keys` program,
against the session's embedded stack, the compose network's addresses mapped to the stack's.
A transfer it takes is signed and mined, and the API believes the outcome: it pins the keys
`keys` gave its home (when api-home got none, every answer was `no_outcome_yet` with
`forged_outcomes_ignored: 1`)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from infra.stack.local import LocalStack, free_port, wait_for_port
from runtime.config import Settings
from runtime.trust import service_key_file
from schemas.auth import Role
from tests.compose_support import REPO, command, resolved, run_keys
from tests.support import make_agent, warden

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def keyed_homes(config: dict[str, Any], settings: Settings, homes: Path) -> None:
    """The homes `keys` mounts, keyed by its program; the stack's running worker and signer stand
    in for the file's instances of the same ids, so their key files are theirs."""
    environments = [s.get("environment", {}) for s in config["services"].values()]
    ids = {env.get(v) for env in environments for v in ("WARDEN_WORKER_ID", "WARDEN_SIGNER_ID")}
    running: tuple[tuple[Role, str], ...] = (("worker", settings.worker_id), ("signer", settings.signer_id))
    for role, key_id in running:
        assert key_id in ids, f"the stack's {role} {key_id} is none of the file's"
        source = service_key_file(settings.home, role, key_id)
        target = service_key_file(homes / key_id, role, key_id)
        target.parent.mkdir(parents=True)
        for suffix in (".pem", ".pub"):
            shutil.copyfile(source.with_suffix(suffix), target.with_suffix(suffix))
    run_keys(config, homes)


def local_environment(service: dict[str, Any], settings: Settings, home: Path) -> dict[str, str]:
    """The service's environment as the file gives it, with what names the compose network mapped
    to the stack: its broker (and that broker's storage: the embedded one refuses idempotent
    producers), Anvil, the ledger's endpoint (no ClickHouse server runs here: the stack's chDB is
    read through it), its admins (the file's are a placeholder); metrics off (the file gives every
    container one port); the home, the local folder of the service's volume."""
    env = {key: str(value) for key, value in service["environment"].items()}
    assert env["WARDEN_BROKER"].startswith("kafka-1:9092") and env["WARDEN_RPC_URL"] == "http://anvil:8545"
    assert env["WARDEN_LEDGER_HTTP"] == "ledger:18123"
    del env["WARDEN_CLICKHOUSE_URL"]
    assert settings.admin_keys is not None
    return env | {
        "WARDEN_HOME": str(home),
        "WARDEN_BROKER": settings.broker,
        "WARDEN_BROKER_STORAGE": settings.broker_storage,
        "WARDEN_RPC_URL": settings.rpc_url,
        "WARDEN_LEDGER_HTTP": settings.ledger_http,
        "WARDEN_ADMIN_KEYS": settings.admin_keys,
        "WARDEN_METRICS_PORT": "off",
    }


async def mined_transfer(api: str, agent: str, api_key: str) -> tuple[tuple[int, Any], tuple[int, Any]]:
    """A transfer through ``api`` as an agent's client sends it: the answer, and the transaction
    once the API says it is mined (or its last answer after two minutes)."""
    async with ClientSession() as http:
        async with http.post(f"{api}/v1/auth/agent-token", json={"agent_id": agent, "api_key": api_key}) as answer:
            auth = {"Authorization": f"Bearer {(await answer.json())['access_token']}"}
        base = f"{api}/v1/agents/{agent}/transactions"
        async with http.post(base, json={"chain": "anvil", "to": DEST, "value": "0.01"}, headers=auth) as answer:
            submitted = answer.status, await answer.json()
        got = submitted
        for _ in range(120 if submitted[0] == 201 else 0):
            async with http.get(f"{base}/{submitted[1]['id']}", headers=auth) as answer:
                got = answer.status, await answer.json()
            if got[1].get("status") == "mined":
                break
            await asyncio.sleep(1)
        return submitted, got


def test_the_api_service_as_the_file_runs_it_believes_a_mined_transfers_outcome(
    stack: LocalStack, tmp_path: Path
) -> None:
    config = resolved(tmp_path / "compose-home")
    homes = tmp_path / "homes"
    keyed_homes(config, stack.settings, homes)
    service = config["services"]["api"]
    home = homes / "api"  # as `keys` mounts api-home, the volume the service's WARDEN_HOME is
    assert f"api-home:{service['environment']['WARDEN_HOME']}:rw" in service["volumes"]
    assert "api-home:/homes/api:rw" in config["services"]["keys"]["volumes"]
    # An agent provisioned on its home, as `docker-compose exec api warden agents ...` does.
    agent = f"compose-{os.urandom(3).hex()}"
    _, address, _ = asyncio.run(make_agent(stack.settings, agent, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
    issued = warden(stack.settings, "agents", "api-key", "--agent", agent, "--json")
    assert issued.returncode == 0, issued.stderr
    shutil.copytree(stack.settings.home / "agents" / agent, home / "agents" / agent)
    argv = command(service)
    assert argv[:3] == ["python", "-m", "gateway.http_api"] and argv[3:5] == ["--listen", "0.0.0.0:8780"], argv
    listen = f"127.0.0.1:{free_port()}"  # 0.0.0.0:8780 in its container
    env = local_environment(service, stack.settings, home) | {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen(
            [sys.executable, *argv[1:3], "--listen", listen, *argv[5:]], cwd=REPO, env=env, stdout=out, stderr=out
        )
    try:
        wait_for_port(listen, 120, "the compose file's api", api, log)
        submitted, got = asyncio.run(mined_transfer(f"http://{listen}", agent, json.loads(issued.stdout)["api_key"]))
    finally:
        api.terminate()
        api.wait(30)
    assert submitted[0] == 201 and submitted[1]["forged_outcomes_ignored"] == 0, (submitted, log.read_text())
    assert submitted[1]["from"] == address and submitted[1]["tx_hash"].startswith("0x")
    assert got[0] == 200 and got[1]["status"] == "mined" and got[1]["tx_hash"] == submitted[1]["tx_hash"], got
