"""The embedded broker as `infra.stack.local` runs it: on memory storage, one Tokio worker thread."""

from __future__ import annotations

from pathlib import Path

from infra.stack.local import LocalStack


def test_the_memory_broker_is_started_with_one_tokio_worker(stack: LocalStack) -> None:
    (pid,) = [row["pid"] for row in stack.describe() if row["name"] == "broker"]
    # Its threads cannot tell: Tokio names its blocking-pool threads as its workers, and Tansu
    # starts some under load. So the running broker's own environment is what is checked.
    environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"TOKIO_WORKER_THREADS=1" in environment
