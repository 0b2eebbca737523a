"""`warden api`'s start: an API that pins no key of the streams workers or of the signers would
believe no outcome (every answer `no_outcome_yet`), so it refuses to start and names the variable;
under `warden up` it waits for the key files the services make beside it as they start."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import pytest

from gateway.http_api import main as api_main
from infra.stack.local import free_port
from runtime.config import Settings
from runtime.trust import service_key

WORKER_PIN = "streams-0=" + "ab" * 32


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment with an empty home, no key configured, and no broker listening."""
    home = tmp_path / "home"
    monkeypatch.setenv("WARDEN_HOME", str(home))
    monkeypatch.setenv("WARDEN_BROKER", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("WARDEN_METRICS_PORT", "off")
    for variable in ("WARDEN_WORKER_KEYS", "WARDEN_SIGNER_KEYS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(api_main, "KEYS_WAIT_S", 0.5)
    return home


def test_an_api_that_pins_no_service_key_refuses_to_start_naming_the_variables(
    bare: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    listen = ["--listen", f"127.0.0.1:{free_port()}"]
    with caplog.at_level(logging.ERROR, logger="warden.api"):
        assert api_main.main(listen) == 1
    said = caplog.text
    assert "pins no key of the streams workers nor of the signers" in said
    assert "set WARDEN_WORKER_KEYS and WARDEN_SIGNER_KEYS" in said and str(bare) in said
    caplog.clear()
    monkeypatch.setenv("WARDEN_WORKER_KEYS", WORKER_PIN)
    with caplog.at_level(logging.ERROR, logger="warden.api"):
        assert api_main.main(listen) == 1
    assert "pins no key of the signers" in caplog.text and "set WARDEN_SIGNER_KEYS (" in caplog.text


def test_keys_configured_or_made_by_the_services_while_it_waits_are_pinned(bare: Path) -> None:
    settings = Settings()
    assert api_main.unpinned(settings, 0) == ["WARDEN_WORKER_KEYS", "WARDEN_SIGNER_KEYS"]
    configured = dataclasses.replace(settings, worker_keys=WORKER_PIN, signer_keys="signer-0=" + "cd" * 32)
    assert api_main.unpinned(configured, 0) == []

    def services_start() -> None:  # as under `warden up`: the worker and the signer beside the API
        time.sleep(0.3)
        service_key(settings, "worker")
        service_key(settings, "signer")

    starting = threading.Thread(target=services_start)
    starting.start()
    try:
        assert api_main.unpinned(settings, 60) == []
    finally:
        starting.join()
