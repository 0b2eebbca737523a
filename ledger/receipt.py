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


def check(receipt: Receipt, policy: Policy) -> NoteCheckpoint:
    """The checkpoint the receipt's event is in, if the receipt holds under ``policy``: the log
    signed the checkpoint, at least ``quorum`` witnesses cosigned it, the event's row hashes to
    the leaf the proof starts from, and the proof leads to the root. Else NoteError, saying which."""
    verified = verified_by(receipt.checkpoint, [policy.log, *policy.witnesses])
    if policy.log not in verified:
        raise NoteError(f"the checkpoint is not signed by the log's key {policy.log.vkey}")
    cosigned = sorted(k.name for k in verified if k != policy.log)
    if len(cosigned) < policy.quorum:
        raise NoteError(
            f"{len(cosigned)} witness cosignature(s) verify ({', '.join(cosigned) or 'none'}); "
            f"the policy asks for {policy.quorum}"
        )
    checkpoint = NoteCheckpoint.parse(receipt.checkpoint.text)
    if not checkpoint.origin.startswith(policy.log.name + "/"):
        raise NoteError(f"the checkpoint is of log {checkpoint.origin!r}, not one of {policy.log.name}/<chain>")
    row = receipt.event
    if row.get("seq") != receipt.index or checkpoint.origin != f"{policy.log.name}/{row.get('chain')}":
        raise NoteError(
            f"the receipt's audit row (chain {row.get('chain')!r}, seq {row.get('seq')!r}) is not leaf "
            f"{receipt.index} of {checkpoint.origin}"
        )
    leaf = leaf_of(row)
    root = root_from_path(receipt.index, checkpoint.size, leaf_hash(leaf), receipt.path)
    if root != checkpoint.root:
        raise NoteError(
            f"the inclusion proof of leaf {receipt.index} does not lead to the root of {checkpoint.size} leaves: "
            "the event is not the one the log holds there (altered?)"
        )
    return checkpoint
