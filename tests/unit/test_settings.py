"""Settings that protect an operator from a setting that breaks the stack quietly."""

from __future__ import annotations

import dataclasses

from infra.cli import main
from infra.stack.local import LocalStack, StackError
from runtime.config import S3_FETCH_WAIT_MS, Settings


def test_the_fetch_wait_defaults_by_broker_storage_and_a_short_one_on_s3_is_called_out():
    memory = dataclasses.replace(Settings(), broker_storage="memory", fetch_wait_setting=None)
    s3 = dataclasses.replace(memory, broker_storage="durable")
    assert (memory.fetch_wait_ms, s3.fetch_wait_ms) == (50, S3_FETCH_WAIT_MS)
    assert memory.fetch_wait_warning() is None and s3.fetch_wait_warning() is None
    assert dataclasses.replace(memory, fetch_wait_setting=5).fetch_wait_warning() is None  # memory: any wait works
    assert dataclasses.replace(s3, fetch_wait_setting=S3_FETCH_WAIT_MS).fetch_wait_warning() is None
    warning = dataclasses.replace(s3, fetch_wait_setting=20).fetch_wait_warning()
    assert warning is not None and "WARDEN_FETCH_WAIT_MS=20 on S3 broker storage" in warning
    assert f"the default on S3 is {S3_FETCH_WAIT_MS}" in warning


def test_warden_up_says_so_before_it_starts_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WARDEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WARDEN_FETCH_WAIT_MS", "20")

    # The warning comes before anything starts, and the test ends there: a real stack would add
    # nothing to what is checked, and on the S3 storage this default picks it would run at 20 ms.
    def refuse(self, *parts, **options):
        raise StackError("not started in this test")

    monkeypatch.setattr(LocalStack, "start", refuse)
    monkeypatch.setattr(LocalStack, "stop", lambda self: None)
    assert main(["up"]) != 0  # durable (S3) storage is warden up's default
    assert "warning: WARDEN_FETCH_WAIT_MS=20 on S3 broker storage" in capsys.readouterr().err
    assert main(["up", "--memory"]) != 0
    assert "warning" not in capsys.readouterr().err
