"""Fixtures both the unit and the stack tests use. The running stack's fixtures are in
tests/stack/conftest.py; helpers are in the tests/*_support.py modules. Nothing here is mocked."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from evm import blobs
from infra.stack.local import listen_ports
from tests.evm_support import BLOBS
from tests.support import worker_ports

# Every signer the suite starts (dozens: each stack, each `warden up`, each restart) would load the
# KZG trusted setup at start, ~2.7 s of CPU each, and most never sign a blob. They load it at their
# first blob instead; the custody demos keep the default, which they exercise. Set before any
# Settings is made, so stacks, `warden up` and the CLI in subprocesses inherit it.
os.environ.setdefault("WARDEN_KZG_SETUP_AT_FIRST_BLOB", "1")
# The suite is CPU-bound on two cores, and every stack it runs (a shared one per xdist worker,
# for the whole run, besides each test's own) pays the embedded broker's scans of empty
# fetches (docs/known-limits.md). At 200 ms an idle stack costs about half the CPU it does at the
# 50 ms default, for a hop some tens of milliseconds longer. `warden up`'s durable stacks keep
# their S3 default (tests.up_support.home_settings).
os.environ.setdefault("WARDEN_FETCH_WAIT_MS", "200")
# A property test's examples are checked whatever the time they take to draw or run: on a machine
# busy with the stacks of the other workers, Hypothesis's health check for slow generation and its
# per-example deadline failed tests whose properties held. A test's own @settings keeps what it sets.
settings.register_profile("busy-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("busy-machine")
# Each xdist worker picks its stacks' ports in a range of its own (infra.stack.local.listen_ports):
# a port one worker picked stays free until its component binds it, seconds later, and another
# worker picking the same one meanwhile failed a run (the ledger's endpoint: address already in use).
if "PYTEST_XDIST_WORKER" in os.environ and "WARDEN_LISTEN_PORTS" not in os.environ:
    os.environ["WARDEN_LISTEN_PORTS"] = worker_ports(
        listen_ports(),
        int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw")),
        int(os.environ["PYTEST_XDIST_WORKER_COUNT"]),
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    docker = shutil.which("docker")
    engine = os.path.exists("/var/run/docker.sock")
    where = (
        "a Docker engine is reachable, but this suite runs on the embedded stack"
        if docker and engine
        else "no Docker engine here: Kafka and ClickHouse containers unavailable"
    )
    return [
        f"warden: {where}; the stack tests (tests/stack, marked stack) use Tansu + Anvil + chDB started by fixtures"
    ]


T = TypeVar("T")


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run a coroutine to completion from a synchronous test."""
    return asyncio.run


@pytest.fixture(scope="module")
def sidecar() -> blobs.Sidecar:
    """The EIP-4844 sidecar of the two test blobs, built once per module."""
    return blobs.make_sidecar(BLOBS)
