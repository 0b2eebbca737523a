"""Receipts: an outcome's audit event with a ``c2sp.org/tlog-proof@v1`` bundle.

The bundle is the event's leaf index, its RFC 6962 inclusion proof and the log's checkpoint with
the witnesses' cosignatures, as text:

    c2sp.org/tlog-proof@v1
    extra <base64 of the audit row, JSON>
    index 73
    <base64 hash>            one per line, from the leaf's sibling up
    <blank line>
    <the checkpoint note, signed by the log and cosigned by witnesses>

The extra line carries the audit row (the event's fields, its chain's previous hash and its
integrity hash); a leaf is the row's 32-byte integrity hash, so whoever holds the receipt, the
log's key and the witnesses' keys checks offline that this event is in the log the witnesses saw
(`check`). The extra data is not trusted as such: it is hashed again and must lead to the root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ledger.chain import row_hash
from ledger.merkle import leaf_hash, root_from_path
from ledger.note import (
    COSIGNATURE_V1,
    Note,
    NoteCheckpoint,
    NoteError,
    NoteKey,
    b64decode,
    b64encode,
    decimal,
    hash_lines,
    verified_by,
)
from schemas.errors import Problem

HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class Receipt:
    index: int
    path: tuple[bytes, ...]
    checkpoint: Note
    extra: bytes | None = None

    @property
    def text(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines += [b64encode(h) for h in self.path]
        return "\n".join(lines) + "\n\n" + self.checkpoint.to_bytes().decode()

    @property
    def event(self) -> dict[str, Any]:
        """The audit row the extra line carries (unchecked until `check`)."""
        if self.extra is None:
            raise NoteError("the receipt carries no audit row (no extra line)")
        try:
            row = orjson.loads(self.extra)
        except orjson.JSONDecodeError as exc:
            raise NoteError(f"the receipt's extra line is not the audit row's JSON: {exc}") from None
        if not isinstance(row, dict):
            raise NoteError("the receipt's extra line is not the audit row's JSON object")
        return row

    @classmethod
    def parse(cls, text: str) -> Receipt:
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise NoteError("a tlog-proof is its header, index and proof lines, a blank line, then the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise NoteError(f"a tlog-proof starts with {HEADER!r}, not {lines[0][:40]!r}")
        lines, extra = lines[1:], None
        if lines and lines[0].startswith("extra "):
            extra = b64decode(lines.pop(0).removeprefix("extra "), "the extra line")
        if not lines or not lines[0].startswith("index "):
            raise NoteError("a tlog-proof names its leaf: 'index <n>' after the header")
        index = decimal(lines[0].removeprefix("index "), "the index")
        return cls(index, hash_lines(lines[1:], "an inclusion proof line"), Note.parse(note), extra)


def leaf_of(row: Mapping[str, Any]) -> bytes:
    """The 32-byte leaf data of an audit row: its integrity hash, recomputed from its fields (an
    altered field gives another hash, so the proof leads elsewhere)."""
    try:
        recomputed = row_hash(row)
    except (KeyError, TypeError, ValueError) as exc:
        raise NoteError(f"the receipt's audit row lacks or garbles a field ({exc!r})") from None
    return bytes.fromhex(recomputed)


@dataclass(frozen=True)
class Policy:
    """Whom an auditor trusts: the log's key, the witnesses' keys and how many must cosign."""

    log: NoteKey
    witnesses: tuple[NoteKey, ...] = ()
    quorum: int = 0

    def __post_init__(self) -> None:
        if any(w.type != COSIGNATURE_V1 for w in self.witnesses):
            raise NoteError("a witness key is a cosignature/v1 key (type 0x04)")
        if not 0 <= self.quorum <= len(self.witnesses):
            raise NoteError(f"a quorum of {self.quorum} out of {len(self.witnesses)} witnesses cannot be met")


@dataclass(frozen=True)
class Finding:
    """One check a receipt must pass: what it checks, in plain words, and what was wrong (None:
    it holds)."""

    check: str
    problem: Problem | None


def findings(receipt: Receipt, policy: Policy) -> list[Finding]:
    """Every check `check` makes, in its order, each with what it found: the log signed the
    checkpoint, at least ``quorum`` witnesses cosigned it, it is a checkpoint of this log, the
    audit row is the leaf the receipt names, and the inclusion proof leads from the row to the
    checkpoint's root. Each is judged on its own, so a reader sees every one that fails."""
    note = receipt.checkpoint
    found = [Finding(f"the checkpoint is signed by the log's key {policy.log.vkey}", _log_signed(note, policy))]
    cosigned, problem = _cosigned(note, policy)
    found.append(
        Finding(
            f"at least {policy.quorum} of the {len(policy.witnesses)} pinned witness(es) cosigned the checkpoint"
            + (f" ({', '.join(cosigned)})" if cosigned else ""),
            problem,
        )
    )
    read = _read(receipt)
    if isinstance(read, Problem):
        return [*found, Finding("the checkpoint note and the audit row it proves can be read", read)]
    checkpoint, row = read
    return [
        *found,
        Finding(f"the checkpoint is one of log {policy.log.name}'s chains", _origin_problem(checkpoint, policy)),
        Finding(
            f"the audit row is leaf {receipt.index} of {checkpoint.origin}",
            _leaf_problem(receipt, row, checkpoint, policy),
        ),
        Finding(
            f"the inclusion proof leads from the audit row to the root of {checkpoint.size} leaves",
            _inclusion_problem(receipt, row, checkpoint),
        ),
    ]


def _read(receipt: Receipt) -> tuple[NoteCheckpoint, dict[str, Any]] | Problem:
    try:
        return NoteCheckpoint.parse(receipt.checkpoint.text), receipt.event
    except NoteError as exc:
        return Problem(str(exc))


def _log_signed(note: Note, policy: Policy) -> Problem | None:
    try:
        verified_by(note, [policy.log])
    except NoteError as exc:
        return Problem(f"the checkpoint is not signed by the log's key {policy.log.vkey} ({exc})")
    return None


def _cosigned(note: Note, policy: Policy) -> tuple[list[str], Problem | None]:
    """The pinned witnesses whose cosignatures verify, and what is wrong: a pinned witness's
    cosignature that does not verify (the note was altered), or too few of them."""
    signed = {(s.name, s.key_id) for s in note.signatures}
    cosigned: list[str] = []
    for witness in policy.witnesses:
        if (witness.name, witness.key_id) not in signed:
            continue
        try:
            verified_by(note, [witness])
        except NoteError as exc:
            return cosigned, Problem(str(exc))
        cosigned.append(witness.name)
    cosigned.sort()
    if len(cosigned) < policy.quorum:
        return cosigned, Problem(
            f"{len(cosigned)} witness cosignature(s) verify ({', '.join(cosigned) or 'none'}); "
            f"the policy asks for {policy.quorum}"
        )
    return cosigned, None


def _origin_problem(checkpoint: NoteCheckpoint, policy: Policy) -> Problem | None:
    if not checkpoint.origin.startswith(policy.log.name + "/"):
        return Problem(f"the checkpoint is of log {checkpoint.origin!r}, not one of {policy.log.name}/<chain>")
    return None


def _leaf_problem(receipt: Receipt, row: dict[str, Any], checkpoint: NoteCheckpoint, policy: Policy) -> Problem | None:
    if row.get("seq") != receipt.index or checkpoint.origin != f"{policy.log.name}/{row.get('chain')}":
        return Problem(
            f"the receipt's audit row (chain {row.get('chain')!r}, seq {row.get('seq')!r}) is not leaf "
            f"{receipt.index} of {checkpoint.origin}"
        )
    return None


def _inclusion_problem(receipt: Receipt, row: dict[str, Any], checkpoint: NoteCheckpoint) -> Problem | None:
    try:
        leaf = leaf_of(row)
        root = root_from_path(receipt.index, checkpoint.size, leaf_hash(leaf), receipt.path)
    except NoteError as exc:
        return Problem(str(exc))
    if root != checkpoint.root:
        return Problem(
            f"the inclusion proof of leaf {receipt.index} does not lead to the root of {checkpoint.size} leaves: "
            "the event is not the one the log holds there (altered?)"
        )
    return None


def check(receipt: Receipt, policy: Policy) -> NoteCheckpoint:
    """The checkpoint the receipt's event is in, if the receipt holds under ``policy``: every one
    of `findings` holds. Else NoteError, saying the first that does not."""
    for finding in findings(receipt, policy):
        if finding.problem is not None:
            raise finding.problem.error(NoteError)
    return NoteCheckpoint.parse(receipt.checkpoint.text)
