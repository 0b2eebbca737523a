"""What was witnessed, checked against what the store holds now (`warden audit verify`).

The ledger's operator holds its key: rows rewritten, chain hashes recomputed from there and the
checkpoints (and their notes) signed again make a store whose every hash and log signature agree.
What the operator cannot make again is a witness's cosignature (over the note text of the
checkpoint the witness saw: its size and root) or a receipt a client kept (a checkpoint note the
log signed, with its root). So, per chain:

- every stored cosignature line of a pinned witness must verify over the note of the checkpoint
  stored now at its seq (and that checkpoint must still be there);
- every kept receipt's checkpoint must be the stored checkpoint of its size, or be extended by
  the store's next checkpoint (an RFC 9162 consistency proof built from the store's rows), or,
  past the last checkpoint, be the root of the store's first rows of that size.

Where they disagree, the store was rewritten after witnessing: a ``rewritten_after_witnessing``
`ChainProblem` naming the chain, the checkpoint and the witness or the receipt. A cosignature line the
operator deleted is not seen here (a witness that was down leaves the same gap): a kept receipt,
or the witness's own state, shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.chain_check import ChainProblem
from ledger.checkpoint import Checkpoint, note_text
from ledger.merkle import consistency_path, consistent, tree_hash
from ledger.note import Note, NoteCheckpoint, NoteError, NoteKey, Signature, verified_by
from ledger.receipt import Policy, Receipt, check
from ledger.schema import AUDIT_NOTE_SIGNATURES
from ledger.store import Store, chain_leaves, sql_string
from schemas.errors import Problem

REWRITTEN_AFTER_WITNESSING = "rewritten_after_witnessing"


@dataclass(frozen=True)
class KeptReceipt:
    """A receipt a client kept, checked on its own: the log signed its checkpoint and its
    inclusion proof holds."""

    source: str  # where it was read (a file name): what a problem names
    chain: int
    checkpoint: NoteCheckpoint


def kept_receipt(source: str, text: str, log: NoteKey, witnesses: Sequence[NoteKey]) -> KeptReceipt:
    """The receipt in ``text``, or NoteError saying why it is no evidence about this log."""
    try:
        cp = check(Receipt.parse(text), Policy(log, tuple(witnesses), 0))
        chain = int(cp.origin.removeprefix(log.name + "/"))
    except (NoteError, ValueError) as exc:
        raise NoteError(
            f"the receipt {source} does not hold under the log's key {log.vkey} ({exc}): it says nothing about "
            "this ledger; keep what `warden audit receipt EVENT_ID` prints"
        ) from None
    return KeptReceipt(source, chain, cp)


@dataclass
class Cosigned:
    """What one pinned witness cosigned on a chain, as far as it still verifies."""

    checkpoints: int = 0
    last_seq: int | None = None


def cosignature_lines(store: Store, chain: int, witnesses: Sequence[NoteKey]) -> dict[str, list[tuple[int, str]]]:
    """The stored signature lines of the pinned witnesses on ``chain``: witness vkey → (seq, line)s
    in seq order. Rows a merge has not yet replaced are read too: each must verify."""
    if not witnesses:
        return {}
    signers = ", ".join(sql_string(w.vkey) for w in witnesses)
    rows = store.arrow(
        f"SELECT signer, seq, line FROM {AUDIT_NOTE_SIGNATURES} WHERE chain = {int(chain)} AND signer IN ({signers}) "
        "ORDER BY seq, line"
    ).to_pylist()
    lines: dict[str, list[tuple[int, str]]] = {}
    for row in rows:
        lines.setdefault(row["signer"], []).append((row["seq"], row["line"]))
    return lines


def unchecked_cosignatures(store: Store, trusted: Sequence[NoteKey]) -> int:
    """Signature lines stored under signers this verifier does not pin (nor is the log): a
    witness whose key was not given, or lines anyone could have written."""
    known = ", ".join(sql_string(k.vkey) for k in trusted) or "''"
    counted: int = (  # count() is a UInt64: an int
        store.arrow(f"SELECT count() AS n FROM {AUDIT_NOTE_SIGNATURES} WHERE signer NOT IN ({known})")
        .column("n")[0]
        .as_py()
    )
    return counted


def cosignature_disagreement(stored: list[Checkpoint], line: str, witness: NoteKey, log_name: str) -> Problem | None:
    """Why the witness's cosignature ``line`` does not hold over the checkpoints ``stored`` at its
    seq now, or None."""
    if not stored:
        return Problem("no checkpoint is stored at that seq any more")
    for cp in stored:
        try:
            verified_by(
                Note(note_text(log_name, cp.chain, cp.tree_size, cp.merkle_root), (Signature.from_line(line),)),
                [witness],
            )
        except NoteError as exc:
            return Problem(
                f"its cosignature does not verify over the checkpoint stored there now, root {cp.merkle_root} ({exc})"
            )
    return None


def _cosigned_at(line: str) -> str:
    try:
        return f" at POSIX time {int.from_bytes(Signature.from_line(line).signature[:8], 'big')}"
    except NoteError:
        return ""


def cosignature_problems(
    chain: int,
    checkpoints: Sequence[Checkpoint],
    lines: dict[str, list[tuple[int, str]]],
    witnesses: Sequence[NoteKey],
    log_name: str,
) -> tuple[list[ChainProblem], dict[str, Cosigned]]:
    """Each pinned witness's cosignatures on ``chain`` against the ``checkpoints`` stored now: the
    first that disagrees (one problem per witness) and what each cosigned that still holds."""
    by_seq: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        by_seq.setdefault(cp.seq, []).append(cp)
    problems: list[ChainProblem] = []
    summary: dict[str, Cosigned] = {}
    for witness in witnesses:
        held = summary.setdefault(witness.name, Cosigned())
        first: tuple[int, Problem, str] | None = None
        disagree = 0
        for seq, line in lines.get(witness.vkey, []):
            why = cosignature_disagreement(by_seq.get(seq, []), line, witness, log_name)
            if why is not None:
                disagree += 1
                first = first or (seq, why, line)
            elif first is None:
                held.checkpoints += 1
                held.last_seq = seq
        if first is None:
            continue
        seq, why, line = first
        after = f"after seq {held.last_seq}" if held.last_seq is not None else "from seq 0"
        more = f"; {disagree - 1} later checkpoint(s) it cosigned disagree too" if disagree > 1 else ""
        problems.append(
            ChainProblem(
                chain,
                seq,
                REWRITTEN_AFTER_WITNESSING,
                f"rewritten after witnessing: witness {witness.name} cosigned chain {chain}'s checkpoint of {seq + 1} "
                f"rows (seq {seq}){_cosigned_at(line)}, and {why}: rows {after} up to seq {seq} were changed after "
                f"the witness saw them and the checkpoints signed again with the ledger's key{more}",
                witness=witness.name,
            )
        )
    return problems, summary


def receipt_problem(store: Store, kept: KeptReceipt, checkpoints: Sequence[Checkpoint]) -> ChainProblem | None:
    """Whether the store still holds the tree ``kept`` shows: None, or the problem naming the receipt.
    ``checkpoints``: the chain's checkpoints whose signature verifies, in seq order."""
    size, root, chain = kept.checkpoint.size, kept.checkpoint.root, kept.chain
    same = [cp for cp in checkpoints if cp.tree_size == size]
    later = next((cp for cp in checkpoints if cp.tree_size > size), None)
    why = None
    if same:
        other = next((cp for cp in same if bytes.fromhex(cp.merkle_root) != root), None)
        if other is not None:
            why = f"the checkpoint stored for that size has root {other.merkle_root}, the receipt's is {root.hex()}"
    elif later is not None:
        leaves = chain_leaves(store, chain, later.tree_size)
        proof = consistency_path(leaves, size) if len(leaves) >= size else []
        if not consistent(size, later.tree_size, root, bytes.fromhex(later.merkle_root), proof):
            why = (
                f"the store's rows give no consistency proof from it to the checkpoint of {later.tree_size} rows "
                f"(seq {later.seq}) stored now: that checkpoint does not extend the tree the receipt shows"
            )
    else:
        leaves = chain_leaves(store, chain, size)
        if len(leaves) < size:
            why = f"the store holds {len(leaves)} rows of the chain, fewer than the receipt's tree covers"
        elif tree_hash(leaves) != root:
            why = f"the store's first {size} rows hash to {tree_hash(leaves).hex()}, the receipt's root is {root.hex()}"
    if why is None:
        return None
    return ChainProblem(
        chain,
        size - 1,
        REWRITTEN_AFTER_WITNESSING,
        f"rewritten after witnessing: the receipt {kept.source} holds chain {chain}'s checkpoint of {size} rows "
        f"(seq {size - 1}) as the log signed it, and {why}: rows up to seq {size - 1} were changed after the "
        "receipt was given",
        receipt=kept.source,
    )
