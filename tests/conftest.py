"""Shared fixtures: the real embedded stack (Tansu, Anvil, Warden's processes) on free ports
under a temporary WARDEN_HOME. Nothing here is mocked."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil

import pytest

from infra.config import Settings
from infra.stack import LocalStack, free_port


def pytest_report_header(config):
    docker = shutil.which("docker")
    engine = os.path.exists("/var/run/docker.sock")
    where = ("a Docker engine is reachable, but this suite runs on the embedded stack"
             if docker and engine else "no Docker engine here: Kafka and ClickHouse containers unavailable")
    return [f"warden: {where}; integration tests use Tansu + Anvil + chDB started by fixtures"]


def make_settings(home, **overrides) -> Settings:
    base = Settings(home=home, broker=f"127.0.0.1:{free_port()}", rpc_url=f"http://127.0.0.1:{free_port()}",
                    ledger_http=f"127.0.0.1:{free_port()}", allow_dev_root=True)
    return dataclasses.replace(base, **overrides)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One running pipeline for the whole session (fused topology)."""
    settings = make_settings(tmp_path_factory.mktemp("warden-home"))
    running = LocalStack(settings)
    previous = os.environ.get("WARDEN_HOME")
    os.environ["WARDEN_HOME"] = str(settings.home)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        if previous is None:
            os.environ.pop("WARDEN_HOME", None)
        else:
            os.environ["WARDEN_HOME"] = previous


@pytest.fixture
def fresh_stack(tmp_path, monkeypatch):
    """A stack of the test's own (for tests that kill processes or change the topology)."""
    started: list[LocalStack] = []

    def start(**overrides) -> LocalStack:
        settings = make_settings(tmp_path / f"home{len(started)}", **overrides)
        monkeypatch.setenv("WARDEN_HOME", str(settings.home))
        stack = LocalStack(settings)
        started.append(stack)
        stack.start()
        return stack

    try:
        yield start
    finally:
        for stack in started:
            stack.stop()


@pytest.fixture
def run():
    """Run a coroutine to completion from a synchronous test."""
    return asyncio.run
