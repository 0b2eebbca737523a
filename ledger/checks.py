"""Who wrote each audit record: the signatures checked in processes of their own.

An Ed25519 verification (~58 us here in OpenSSL, ~39 in libsodium) costs the sink about as much
as everything else it does for a record of four events (~40-50 us: parsing, hashing, chaining,
the INSERT). Threads cannot share that out: the appending thread holds the GIL, and a checking
thread, back from the library after each verification, waits for it (a batch checked in threads
while the previous one was appended: 32.6k events/s; checked in the appending batch's own thread
pool: 38-44k). So the sink hands a batch's checks to checking processes as soon as it has fetched
the batch (`WriterChecks.submit`), and they run while the previous batch is chained and inserted
(`Checked.writers` collects the verdicts).

What the checks decide, and what a refusal says, is `schemas.auth.audit_writer`'s: the claims
(headers, pinned keys) are read here, the signatures verified in the checker
(`audit_signatures_valid`). A checker that dies takes no record with it: its share is checked
again in the sink's own thread and a new checker is started, so nothing is believed unchecked.

A checker is ``python -m ledger.checks``, fed over its stdin, not a multiprocessing
child: a spawned child imports its parent's main module (the sink: aiokafka, pyarrow, chDB,
~110 MB and half a second each), and a forked one copies the sink's threads mid-step. It exits
when its stdin closes, so a SIGKILLed sink leaves none behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from schemas.auth import AuditClaim, AuditKeys, audit_claim, audit_signatures_valid
from schemas.errors import Problem, WardenError

log = logging.getLogger("warden.ledger")

# A record as the sink reads it: (partition, offset, value, headers).
Record = tuple[int, int, bytes | None, Sequence[tuple[str, bytes]]]
Verdict = tuple[str, Problem | None]  # `audit_writer`'s: made in the sink, never sent to a checker
Check = tuple[bytes, bytes, bytes]  # (public key, signature, record value)

# Records per request: small enough that every checker gets a share of a batch, large enough
# that a round trip costs little next to verifying the records it carries.
_CHUNK = 1024
_REPO = Path(__file__).resolve().parents[1]
CHECKER_NICENESS = 10


class CheckerDied(WardenError):
    pass


class _Checker:
    """One checking process and the thread that feeds it, one request at a time, in order."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ledger.checks"], cwd=_REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        # Both are pipes (PIPE above); Popen types them Optional for the streams it does not pipe.
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin: IO[bytes] = self._process.stdin
        self._stdout: IO[bytes] = self._process.stdout
        self._requests: queue.SimpleQueue[tuple[list[Check], Future[list[bool]]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._feed, name="ledger-checker", daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def submit(self, checks: list[Check]) -> Future[list[bool]]:
        future: Future[list[bool]] = Future()
        self._requests.put((checks, future))
        return future

    def _feed(self) -> None:
        stdin, stdout = self._stdin, self._stdout
        while (request := self._requests.get()) is not None:
            checks, future = request
            try:
                payload = pickle.dumps(checks, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.write(len(payload).to_bytes(8, "little") + payload)
                stdin.flush()
                answer = _read_frame(stdout)
            except (OSError, ValueError, EOFError) as exc:
                future.set_exception(CheckerDied(f"checker pid {self._process.pid}: {exc}"))
                continue
            future.set_result([flag == 1 for flag in answer])

    def close(self) -> None:
        self._requests.put(None)
        with contextlib.suppress(OSError):
            self._stdin.close()  # the checker exits at the end of its input
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()


class WriterChecks:
    """``processes`` checkers (default: one per core, at most 4), started at once."""

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or min(4, os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._checkers = [_Checker() for _ in range(self.processes)]
        self._next = 0

    @property
    def pids(self) -> list[int]:
        """The checkers' process ids."""
        with self._lock:
            return [checker.pid for checker in self._checkers]

    def submit(self, records: Sequence[Record], keys: AuditKeys, max_bytes: int) -> "Checked":
        """Starts checking who wrote each record; `Checked.writers` has the verdicts. Records
        `ledger.batch.decode` refuses whatever their writer (no value, too large) get None."""
        verdicts: list[Verdict | None] = [None] * len(records)
        claims: list[tuple[int, AuditClaim, bytes]] = []  # (index in the batch, claim, value)
        for i, (_, _, raw, headers) in enumerate(records):
            if raw is None or len(raw) > max_bytes:
                continue
            claim = audit_claim(headers, keys)
            if isinstance(claim, AuditClaim):
                claims.append((i, claim, raw))
            else:
                verdicts[i] = claim
        size = min(_CHUNK, -(-len(claims) // self.processes)) or 1
        tasks = []
        for lo in range(0, len(claims), size):
            share = claims[lo : lo + size]
            checks = [(claim.public, claim.signature, raw) for _, claim, raw in share]
            with self._lock:
                checker = self._checkers[self._next]
                self._next = (self._next + 1) % len(self._checkers)
            tasks.append(_Task(share, checks, checker, checker.submit(checks)))
        return Checked(self, verdicts, tasks)

    def _replace(self, dead: _Checker) -> None:
        with self._lock:
            if dead not in self._checkers:  # replaced already
                return
            log.warning(
                "a signature checker of the ledger died; starting another (its share is checked in the sink meanwhile)"
            )
            dead.close()
            self._checkers[self._checkers.index(dead)] = _Checker()

    def close(self) -> None:
        with self._lock:
            for checker in self._checkers:
                checker.close()


@dataclass
class _Task:
    share: list[tuple[int, AuditClaim, bytes]]  # (index in the batch, claim, value)
    checks: list[Check]
    checker: _Checker
    future: Future[list[bool]]


class Checked:
    """The verdicts on one batch of records, in their order, once the checkers answered."""

    def __init__(self, checks: WriterChecks, verdicts: list[Verdict | None], tasks: list[_Task]) -> None:
        self._checks = checks
        self._verdicts = verdicts
        self._tasks = tasks

    def writers(self) -> list[Verdict | None]:
        for task in self._tasks:
            try:
                valid = task.future.result()
            except CheckerDied:
                self._checks._replace(task.checker)
                valid = audit_signatures_valid(task.checks)
            for (i, claim, _), ok in zip(task.share, valid, strict=True):
                self._verdicts[i] = claim.verdict(ok)
        self._tasks = []
        return self._verdicts


def _read_frame(stream: IO[bytes]) -> bytes:
    size = int.from_bytes(_read_exactly(stream, 8), "little")
    return _read_exactly(stream, size)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError(f"the stream ended after {len(data)} of {size} bytes")
    return data


def main() -> None:
    """The checker: a request is a pickled list of (public key, signature, value) from the sink
    that started it; the answer is one byte per check, 1 where the signature verifies."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # Checks run a batch ahead of the appending thread, which cannot wait: on a busy machine the
    # appending (and the intents' own processes) come first, the checks take what is left.
    os.nice(CHECKER_NICENESS)
    while True:
        try:
            checks = pickle.loads(_read_frame(stdin))
        except EOFError:
            return  # the sink closed its end, or is gone
        answer = bytes(1 if ok else 0 for ok in audit_signatures_valid(checks))
        stdout.write(len(answer).to_bytes(8, "little") + answer)
        stdout.flush()


if __name__ == "__main__":
    main()
