"""The ledger's signature checkers (`ledger.checks`): processes of their own that decide
exactly what `schemas.auth.audit_writer` decides, lose no verdict when one dies, and do not
outlive the sink that started them. The sink using them on a real broker:
tests/stack/test_ledger_sink.py."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checks import CHECKER_NICENESS, WriterChecks
from ledger.keys import ledger_key_id
from runtime.config import Settings
from runtime.trust import PinnedAuditKeys, audit_signer
from schemas.actions import AuditAction
from schemas.audit import audit_record
from schemas.auth import (
    AUDIT_BY_HEADER,
    AUDIT_SIGNATURE_HEADER,
    AuditSigner,
    audit_writer,
    public_key_hex,
)
from schemas.emit import audit

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 25, 6, 0, tzinfo=timezone.utc)
MAX_BYTES = 4096


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(Settings(), home=tmp_path / "home")


@pytest.fixture
def keys(settings: Settings) -> PinnedAuditKeys:
    public = public_key_hex(Ed25519PrivateKey.generate())
    return PinnedAuditKeys(settings, ledger_key_id(public), public)


@pytest.fixture
def checks() -> Iterator[WriterChecks]:
    checks = WriterChecks(processes=2)
    yield checks
    checks.close()


def _records(settings: Settings, n: int) -> list[tuple[int, int, bytes | None, list[Any]]]:
    """``n`` records of every kind the sink meets: believed ones of two writers, and each way a
    record is refused before or by its signature."""
    worker, signer = audit_signer(settings, "worker"), audit_signer(settings, "signer")
    stranger = AuditSigner("worker", settings.worker_id, Ed25519PrivateKey.generate())
    out = []
    for i in range(n):
        value = audit_record(
            [
                audit(
                    "service:streams",
                    AuditAction.STAGE_PASSED,
                    f"intent:i-{i}",
                    NOW,
                    str(i),
                    str(e),
                    intent_id=f"i-{i}",
                    agent_id="a-1",
                ).value
                for e in range(4)
            ]
        )
        good = worker.headers(value)
        kind = i % 10
        headers = {
            0: good,
            1: signer.headers(value),
            2: stranger.headers(value),  # another key under the worker's id
            3: worker.headers(value + b" "),  # the signature of other bytes
            4: [good[0], (AUDIT_SIGNATURE_HEADER, good[1][1][:63])],  # a signature a byte short
            5: [good[0], (AUDIT_SIGNATURE_HEADER, good[1][1][:32] + bytes(32))],  # half of one
            6: [(AUDIT_BY_HEADER, b"worker:nobody"), good[1]],  # an unpinned id
            7: [],  # unsigned
            8: good,
            9: good,
        }[kind]
        sent: bytes | None = value
        if kind == 8:
            sent = None  # a tombstone: decode refuses it whoever wrote it
        elif kind == 9 and i % 20 == 9:
            sent = value + b" " * MAX_BYTES  # too large, likewise
        out.append((i % 4, i, sent, headers))
    return out


def test_the_checkers_decide_what_audit_writer_decides(
    settings: Settings, keys: PinnedAuditKeys, checks: WriterChecks
) -> None:
    records = _records(settings, 3000)  # several requests per checker
    verdicts = checks.submit(records, keys, MAX_BYTES).writers()
    expected = [
        None if raw is None or len(raw) > MAX_BYTES else audit_writer(raw, headers, keys)
        for _, _, raw, headers in records
    ]
    assert verdicts == expected
    believed = [i for i, verdict in enumerate(verdicts) if verdict is not None and verdict[1] is None]
    assert {i % 10 for i in believed} == {0, 1, 9}  # the worker's and the signer's own, nothing else
    assert sum(1 for v in verdicts if v is not None and "does not verify" in str(v[1])) == 4 * 300
    # The checks that can wait yield the cores to what cannot (the appending, the intents).
    assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in checks.pids] == [CHECKER_NICENESS] * 2


def test_a_killed_checker_costs_no_verdict_and_is_replaced(
    settings: Settings, keys: PinnedAuditKeys, checks: WriterChecks
) -> None:
    records = _records(settings, 400)
    expected = checks.submit(records, keys, MAX_BYTES).writers()
    first, second = checks.pids
    os.kill(first, signal.SIGKILL)
    _wait_gone(first)
    assert checks.submit(records, keys, MAX_BYTES).writers() == expected  # its share checked in the sink
    assert first not in checks.pids and second in checks.pids
    assert checks.submit(records, keys, MAX_BYTES).writers() == expected  # and by the new checker
    assert all(_alive(pid) for pid in checks.pids)


def test_checkers_exit_with_a_sigkilled_sink() -> None:
    sink = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from ledger.checks import WriterChecks\n"
            "checks = WriterChecks(processes=2)\n"
            "print(*checks.pids, flush=True)\n"
            "time.sleep(600)\n",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        pids = [int(pid) for pid in sink.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    finally:
        sink.kill()
        sink.wait()
    for pid in pids:
        _wait_gone(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pid: int, within_s: float = 60.0) -> None:  # generous: a busy machine is slow, not wrong
    deadline = time.monotonic() + within_s
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs {within_s} s after its sink died"
        time.sleep(0.05)
