"""Shared fixtures: the real embedded stack (Tansu, Anvil, Warden's processes) on free ports
under a temporary WARDEN_HOME. Nothing here is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil

import pytest

from infra.stack.local import LocalStack, local_settings, running_stack


def pytest_report_header(config):
    docker = shutil.which("docker")
    engine = os.path.exists("/var/run/docker.sock")
    where = (
        "a Docker engine is reachable, but this suite runs on the embedded stack"
        if docker and engine
        else "no Docker engine here: Kafka and ClickHouse containers unavailable"
    )
    return [f"warden: {where}; integration tests use Tansu + Anvil + chDB started by fixtures"]


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One running pipeline for the whole session (fused topology)."""
    with running_stack(local_settings(tmp_path_factory.mktemp("warden-home"))) as running:
        yield running


@pytest.fixture
def fresh_stack(tmp_path):
    """A stack of the test's own (for tests that kill processes or change the topology)."""
    numbers = itertools.count()
    with contextlib.ExitStack() as started:

        def start(signers: int = 1, workers: int = 1, **overrides) -> LocalStack:
            home = tmp_path / f"home{next(numbers)}"
            return started.enter_context(running_stack(local_settings(home, **overrides), signers, workers))

        yield start


@pytest.fixture
def run():
    """Run a coroutine to completion from a synchronous test."""
    return asyncio.run
