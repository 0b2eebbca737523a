"""`warden up --json` lists each family's local node with its JSON-RPC address, from the processes
that run: Anvil for EVM networks, surfpool for solana-local (the address it wrote under the home)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson

from infra.stack.local import local_nodes
from runtime.config import Settings


def _settings(home: Path) -> Settings:
    settings = dataclasses.replace(Settings(), home=home, rpc_url="http://127.0.0.1:18545")
    settings.surfpool_info.parent.mkdir(parents=True, exist_ok=True)
    settings.surfpool_info.write_bytes(orjson.dumps({"rpc": "http://127.0.0.1:18899"}))
    return settings


def test_each_familys_node_that_runs_is_listed_with_its_rpc_address(tmp_path: Path) -> None:
    nodes = local_nodes(_settings(tmp_path), ["broker", "anvil", "solana", "signer"])
    assert nodes == [
        {"family": "evm", "chain": "anvil", "process": "anvil", "rpc_url": "http://127.0.0.1:18545"},
        {"family": "solana", "chain": "solana-local", "process": "solana", "rpc_url": "http://127.0.0.1:18899"},
    ]


def test_a_node_that_does_not_run_is_not_listed(tmp_path: Path) -> None:
    assert [n["chain"] for n in local_nodes(_settings(tmp_path), ["broker", "anvil"])] == ["anvil"]
