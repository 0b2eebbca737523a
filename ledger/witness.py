"""A witness: cosigns a log's checkpoint only if it extends the last one it cosigned.

The ``c2sp.org/tlog-witness`` add-checkpoint exchange. A request is an ``old <size>`` line, the
base64 hashes of an RFC 6962 consistency proof from that size, a blank line, then the signed
checkpoint. The witness:

- knows each log by its origin and the keys it trusts for it (unknown origin: 404; no trusted
  signature verifies: 403);
- refuses an old size above the checkpoint's (400), an old size that is not the size it last
  cosigned (409, with that size, so the log can send the right proof), the same size with
  another root (409: a fork), and a proof that does not verify (422);
- records the new size and root before it answers, in one SQLite transaction with the check
  (`WitnessState.advance`): two requests raced, the second is checked against what the first
  stored. A witness killed between the check and the commit stored nothing and answered nothing;
  one killed after the commit answers the same checkpoint again (same size, same root) and never
  anything that does not extend it.

What it answers is a cosignature/v1 (`ledger.note.cosign`). Pure of HTTP: `infra/cli/witness.py`
serves it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.merkle import consistent
from ledger.note import (
    COSIGNATURE_V1,
    Note,
    NoteCheckpoint,
    NoteError,
    NoteKey,
    Signature,
    b64encode,
    cosign,
    decimal,
    hash_lines,
    verified_by,
)
from schemas.errors import WardenError

MAX_PROOF_LINES = 63  # the spec's bound: a proof of a tree of 2^63 leaves is at most that long
SIZE_TYPE = "text/x.tlog.size"


class WitnessRefused(WardenError):
    """An add-checkpoint request the witness does not cosign: the HTTP status the spec gives,
    and the body (the witness's size, for 409 on a size mismatch)."""

    def __init__(self, status: int, message: str, body: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else message + "\n"
        self.content_type = SIZE_TYPE if body is not None else "text/plain"


@dataclass(frozen=True)
class Request:
    old_size: int
    proof: tuple[bytes, ...]
    note: Note


def parse_request(body: bytes) -> Request:
    """An add-checkpoint body, or WitnessRefused(400) saying what is wrong with it."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise WitnessRefused(400, "the request body is not UTF-8") from None
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise WitnessRefused(400, "the body is an old size line, proof lines, a blank line, then the checkpoint")
    lines = head.split("\n")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefused(400, f"{len(lines) - 1} proof lines: at most {MAX_PROOF_LINES}")
    try:
        if not lines[0].startswith("old "):
            raise NoteError(f"the first line is 'old <size>', not {lines[0][:40]!r}")
        old = decimal(lines[0].removeprefix("old "), "the old size")
        return Request(old, hash_lines(lines[1:], "a proof line"), Note.parse(checkpoint))
    except NoteError as exc:
        raise WitnessRefused(400, str(exc)) from None


class WitnessState:
    """The last checkpoint cosigned per log origin (size and root), in a SQLite file that is the
    witness's whole memory: synchronous=FULL, each advance one transaction."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS latest (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL)"
        )

    def latest(self, origin: str) -> tuple[int, bytes | None]:
        row = self.db.execute("SELECT size, root FROM latest WHERE origin = ?", (origin,)).fetchone()
        return (0, None) if row is None else (row[0], row[1])

    def advance(
        self, request: Request, checkpoint: NoteCheckpoint, before_commit: Callable[[], object] | None = None
    ) -> None:
        """Check the request against the stored checkpoint and store the new one, atomically; or
        WitnessRefused. ``before_commit`` runs between the two (a test kills the witness there)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            size, root = self.latest(checkpoint.origin)
            if request.old_size != size:
                raise WitnessRefused(
                    409,
                    f"old size {request.old_size} is not the size this witness last cosigned for "
                    f"{checkpoint.origin}: {size}; send a proof from {size}",
                    body=f"{size}\n",
                )
            if checkpoint.size == size and root is not None and checkpoint.root != root:
                raise WitnessRefused(
                    409,
                    f"{checkpoint.origin} at size {size} has another root than the one this witness cosigned: a fork",
                )
            if size == 0:
                if request.proof:
                    raise WitnessRefused(422, "a proof from size 0 is empty")
            else:
                assert root is not None  # a size above 0 was read from a row, and root is NOT NULL
                if not consistent(size, checkpoint.size, root, checkpoint.root, request.proof):
                    raise WitnessRefused(
                        422,
                        f"the proof does not show {checkpoint.origin} at size {checkpoint.size} extends the tree of "
                        f"size {size} this witness cosigned: not cosigned",
                    )
            self.db.execute(
                "INSERT OR REPLACE INTO latest VALUES (?, ?, ?)", (checkpoint.origin, checkpoint.size, checkpoint.root)
            )
            if before_commit is not None:
                before_commit()
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()


class Witness:
    """A named witness key, the logs it witnesses (origin → the keys it trusts for that log) and
    its state."""

    def __init__(self, name: str, key: Ed25519PrivateKey, logs: dict[str, list[NoteKey]], state: WitnessState):
        self.name = name
        self.key = key
        self.logs = logs
        self.state = state
        self.public = NoteKey.of(name, COSIGNATURE_V1, key)

    def add_checkpoint(self, body: bytes, now_s: int, before_commit: Callable[[], object] | None = None) -> Signature:
        """The cosignature of the request's checkpoint, or WitnessRefused."""
        request = parse_request(body)
        try:
            checkpoint = NoteCheckpoint.parse(request.note.text)
        except NoteError as exc:
            raise WitnessRefused(400, str(exc)) from None
        keys = self.logs.get(checkpoint.origin)
        if keys is None:
            raise WitnessRefused(404, f"this witness does not witness a log of origin {checkpoint.origin!r}")
        try:
            verified_by(request.note, keys)
        except NoteError as exc:
            raise WitnessRefused(403, f"{checkpoint.origin}: {exc}") from None
        if request.old_size > checkpoint.size:
            raise WitnessRefused(400, f"old size {request.old_size} is above the checkpoint's size {checkpoint.size}")
        self.state.advance(request, checkpoint, before_commit)
        return cosign(request.note.text, self.name, self.key, now_s)


def request_body(old_size: int, proof: list[bytes], note: Note) -> bytes:
    """What a log sends a witness: the add-checkpoint body."""
    lines = [f"old {old_size}"] + [b64encode(h) for h in proof]
    return ("\n".join(lines) + "\n\n").encode() + note.to_bytes()
