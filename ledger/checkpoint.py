"""Checkpoints: each chain's tree as a C2SP signed note, the log's one signature on it.

Chain C of the ledger is the log ``<log name>/C`` (`LedgerSettings.log_name`). Its checkpoint at
``seq`` covers ``seq + 1`` rows and is the ``c2sp.org/tlog-checkpoint`` text::

    <log name>/<chain>
    <seq + 1>
    <base64 of the 32-byte merkle_root>

signed (``c2sp.org/signed-note``) with the ledger's Ed25519 key under the key name ``<log name>``:
the signature line ``— <log name> base64(key ID || Ed25519 signature of the text)``, stored with
the checkpoint (`Checkpoint.signature`). A verifier checks it under the log's verifier key (the
vkey, `ledger.cosigning.log_key`) it was given, never a key the checkpoint names.

The Merkle root commits to every row's ``integrity_hash``, the head's among them, so ``head_hash``
and ``ts`` are not signed on their own: ``head_hash`` is kept for whoever replays the chain (it
must be the hash of row ``seq``, whose leaf the signed root covers), ``ts`` says when it was
signed. Ed25519 is deterministic: the same checkpoint signed again is the same line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain import format_ts
from ledger.note import Note, NoteCheckpoint, NoteError, NoteKey, Signature, verified_by
from ledger.note import sign as sign_note
from schemas.errors import Problem


def origin_of(log_name: str, chain: int) -> str:
    return f"{log_name}/{chain}"


def note_text(log_name: str, chain: int, size: int, merkle_root: str) -> str:
    """The note text of the chain's checkpoint covering ``size`` rows (its hex ``merkle_root``)."""
    return NoteCheckpoint(origin_of(log_name, chain), size, bytes.fromhex(merkle_root)).text


@dataclass(frozen=True)
class Checkpoint:
    chain: int
    seq: int
    head_hash: str
    merkle_root: str
    ts: datetime
    signature: str = ""  # the log's signature line of the note (`ledger.note.Signature.line`)

    @property
    def tree_size(self) -> int:
        return self.seq + 1

    def text(self, log_name: str) -> str:
        return note_text(log_name, self.chain, self.tree_size, self.merkle_root)

    def note(self, log_name: str) -> Note:
        """The checkpoint as the log signed it: its note with the log's signature line."""
        return Note(self.text(log_name), (Signature.from_line(self.signature),))

    def message(self, note: Note) -> dict[str, Any]:
        """What warden.audit.checkpoints carries: the note (the log's signature, and the witnesses'
        that answered) and what a consumer needs beside it, none of it signed twice."""
        return {
            "chain": self.chain,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "ts": format_ts(self.ts),
            "note": note.to_bytes().decode(),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Checkpoint:
        """A row of ``audit_checkpoints`` (its other columns, such as the frontier, left out)."""
        return cls(
            int(row["chain"]), int(row["seq"]), row["head_hash"], row["merkle_root"], row["ts"], row["signature"]
        )


def sign(
    key: Ed25519PrivateKey, log_name: str, chain: int, seq: int, head_hash: str, merkle_root: str, ts: datetime
) -> Checkpoint:
    """The chain's checkpoint at ``seq``, its note signed with the ledger's key under ``log_name``."""
    line = sign_note(note_text(log_name, chain, seq + 1, merkle_root), log_name, key).line
    return Checkpoint(chain, seq, head_hash, merkle_root, ts, line)


def signature_problem(checkpoint: Checkpoint, log: NoteKey) -> Problem | None:
    """Why the checkpoint's signature is not the log's over its note (None when it is), checked
    under ``log``, the verifier key the verifier trusts."""
    try:
        verified_by(checkpoint.note(log.name), [log])
    except NoteError as exc:
        return Problem(str(exc))
    except ValueError as exc:  # a merkle_root that is not hex
        return Problem(f"its note cannot be written ({exc})")
    return None
