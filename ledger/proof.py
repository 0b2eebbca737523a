"""Inclusion proofs: one event, the RFC 9162 audit path from its row to a signed
checkpoint's root, and that checkpoint as its C2SP signed note (`ledger.checkpoint`).

``check`` needs nothing but the proof and the log's verifier key (no store, no
network), so a third party can run it, or redo it by hand from docs/wire-formats.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson

from ledger.chain import format_ts, row_hash
from ledger.checkpoint import Checkpoint, note_text, origin_of
from ledger.merkle import consistency_path, consistent, inclusion_path, leaf_hash, root_from_path
from ledger.note import Note, NoteCheckpoint, NoteError, NoteKey, Signature, verified_by
from ledger.receipt import Receipt
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG, AUDIT_NOTE_SIGNATURES, EVENT_COLUMNS
from ledger.store import Reader, chain_leaves, sql_string
from schemas.errors import Problem, WardenError

PROOF_VERSION = "warden.audit.proof.v2"
EVENT_FIELDS = EVENT_COLUMNS


class ProofError(WardenError, RuntimeError):
    """No proof can be built; the message says why and what to do."""


def _event(store: Reader, event_id: str) -> dict[str, Any]:
    rows = store.arrow(
        f"SELECT {', '.join(EVENT_FIELDS)} FROM {AUDIT_LOG} WHERE event_id = {sql_string(event_id)} ORDER BY chain, seq"
    ).to_pylist()
    if not rows:
        raise ProofError(f"no event {event_id!r} in the ledger; check the id (event ids are in audit_log.event_id)")
    return cast(dict[str, Any], rows[0])  # to_pylist(): a dict per row, column → value


CHECKPOINT_COLUMNS = "chain, seq, head_hash, merkle_root, ts, signature"


def build(store: Reader, event_id: str, log_name: str) -> dict[str, Any]:
    """The event's inclusion proof in the first checkpoint covering it, that checkpoint as the
    note the log signed (``log_name``: its key name, the origin's prefix)."""
    event = _event(store, event_id)
    chain, seq = event["chain"], event["seq"]
    cps = store.arrow(
        f"SELECT {CHECKPOINT_COLUMNS} FROM {AUDIT_CHECKPOINTS} WHERE chain = {chain} AND seq >= {seq} "
        "ORDER BY seq LIMIT 1"
    ).to_pylist()
    if not cps:
        raise ProofError(
            f"no checkpoint covers chain {chain} seq {seq} yet; the sink signs one every "
            "WARDEN_LEDGER_CHECKPOINT_EVERY events or WARDEN_LEDGER_CHECKPOINT_SECONDS seconds: retry shortly"
        )
    checkpoint = Checkpoint.from_row(cps[0])
    leaves = chain_leaves(store, chain, checkpoint.seq + 1)
    if len(leaves) != checkpoint.tree_size:
        raise ProofError(
            f"chain {chain} holds {len(leaves)} rows up to seq {checkpoint.seq}, not {checkpoint.tree_size}; "
            f"run `warden audit verify --chain {chain}`"
        )
    return {
        "version": PROOF_VERSION,
        "event": {**event, "ts": format_ts(event["ts"])},
        "leaf_index": seq,
        "tree_size": checkpoint.tree_size,
        "audit_path": [node.hex() for node in inclusion_path(leaves, seq)],
        "checkpoint": _signed_text(checkpoint, log_name),
    }


def _signed_text(checkpoint: Checkpoint, log_name: str) -> str:
    try:
        return checkpoint.note(log_name).to_bytes().decode()
    except NoteError as exc:
        raise ProofError(
            f"chain {checkpoint.chain}'s checkpoint at seq {checkpoint.seq} holds no readable signature ({exc}); "
            f"run `warden audit verify --chain {checkpoint.chain}`"
        ) from None


def _checkpoint(text: object, log: NoteKey, what: str) -> NoteCheckpoint | Problem:
    """The checkpoint a proof's signed note says, if the log signed it; else why not."""
    if not isinstance(text, str):
        return Problem(f"malformed proof: {what} is the checkpoint's signed note, a string")
    try:
        note = Note.parse(text)
        verified_by(note, [log])
        return NoteCheckpoint.parse(note.text)
    except NoteError as exc:
        return Problem(f"{what}'s signature does not verify under the log's key {log.vkey} ({exc}): forged or altered")


def check(proof: Mapping[str, Any], log: NoteKey) -> Problem | None:
    """None when the proof holds under the log's verifier key ``log``, else the first reason it
    does not."""
    try:
        if proof.get("version") != PROOF_VERSION:
            return Problem(f"not a {PROOF_VERSION} proof (version {proof.get('version')!r})")
        event = proof["event"]
        recomputed = row_hash(event)
        index, size = int(proof["leaf_index"]), int(proof["tree_size"])
        path = [bytes.fromhex(node) for node in proof["audit_path"]]
        leaf = leaf_hash(bytes.fromhex(str(event["integrity_hash"])))
        signed = proof["checkpoint"]
    except (KeyError, TypeError, ValueError) as exc:
        return Problem(f"malformed proof ({exc!r})", "expected the JSON `warden audit prove` prints")
    if recomputed != event["integrity_hash"]:
        return Problem("the event's fields do not hash to its integrity_hash: the event was altered")
    checkpoint = _checkpoint(signed, log, "the checkpoint")
    if isinstance(checkpoint, Problem):
        return checkpoint
    if checkpoint.origin != origin_of(log.name, event["chain"]) or index != event["seq"] or size != checkpoint.size:
        return Problem(
            f"the proof does not line up: event chain {event['chain']} seq {event['seq']}, leaf {index} of {size}, "
            f"checkpoint of {checkpoint.origin} covering {checkpoint.size} rows"
        )
    root = root_from_path(index, size, leaf, path)
    if root is None or root != checkpoint.root:
        return Problem(
            "the audit path does not lead to the signed merkle_root: this event is not the one the ledger signed"
        )
    return None


CONSISTENCY_VERSION = "warden.audit.consistency.v2"


def build_consistency(store: Reader, chain: int, old_size: int, new_size: int, log_name: str) -> dict[str, Any]:
    """A consistency proof (RFC 9162 §2.1.4) between two signed checkpoints of ``chain``: the one
    covering ``old_size`` rows and the one covering ``new_size``, each as the note the log signed.
    Whoever kept the old checkpoint checks with it that the new one only added rows
    (`check_consistency`)."""
    if not 0 < old_size <= new_size:
        raise ProofError(
            f"sizes go from a smaller tree to a larger one (1 <= OLD <= NEW), not {old_size} to {new_size}"
        )
    found = {
        row["seq"] + 1: Checkpoint.from_row(row)
        for row in store.arrow(
            f"SELECT {CHECKPOINT_COLUMNS} FROM {AUDIT_CHECKPOINTS} "
            f"WHERE chain = {int(chain)} AND seq IN ({old_size - 1}, {new_size - 1})"
        ).to_pylist()
    }
    for size in (old_size, new_size):
        if size not in found:
            sizes = (
                store.arrow(
                    f"SELECT seq + 1 AS size FROM {AUDIT_CHECKPOINTS} WHERE chain = {int(chain)} ORDER BY seq DESC LIMIT 5"
                )
                .column("size")
                .to_pylist()
            )
            raise ProofError(
                f"chain {chain} has no signed checkpoint of {size} rows; the latest cover {sizes or 'none yet'} rows "
                '(`warden audit query "SELECT chain, seq + 1 AS size, ts FROM audit_checkpoints ORDER BY ts"` lists them)'
            )
    leaves = chain_leaves(store, int(chain), new_size)
    if len(leaves) != new_size:
        raise ProofError(
            f"chain {chain} holds {len(leaves)} rows below seq {new_size}, not {new_size}; "
            f"run `warden audit verify --chain {chain}`"
        )
    return {
        "version": CONSISTENCY_VERSION,
        "chain": chain,
        "old": _signed_text(found[old_size], log_name),
        "new": _signed_text(found[new_size], log_name),
        "consistency_path": [node.hex() for node in consistency_path(leaves, old_size)],
    }


def check_consistency(proof: Mapping[str, Any], log: NoteKey) -> Problem | None:
    """None when both checkpoints are notes the log signed (under its verifier key ``log``) and the
    new one only added rows to the old one, else the first reason it does not hold."""
    try:
        if proof.get("version") != CONSISTENCY_VERSION:
            return Problem(f"not a {CONSISTENCY_VERSION} proof (version {proof.get('version')!r})")
        path = [bytes.fromhex(node) for node in proof["consistency_path"]]
        signed = proof["old"], proof["new"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Problem(f"malformed proof ({exc!r})", "expected the JSON `warden audit consistency` prints")
    old = _checkpoint(signed[0], log, "the old checkpoint")
    if isinstance(old, Problem):
        return old
    new = _checkpoint(signed[1], log, "the new checkpoint")
    if isinstance(new, Problem):
        return new
    if old.origin != new.origin or not new.origin.startswith(log.name + "/") or old.size > new.size:
        return Problem(
            f"the checkpoints do not line up: {old.origin} with {old.size} rows, {new.origin} with {new.size}"
        )
    if not consistent(old.size, new.size, old.root, new.root, path):
        return Problem(
            f"{new.origin}'s checkpoint of {new.size} rows does not extend the one of {old.size}: "
            "rows below it were changed or removed (a fork of the log)"
        )
    return None


def build_receipt(store: Reader, event_id: str, log_name: str) -> Receipt:
    """The event's receipt (`ledger.receipt`): its row, its inclusion proof in the chain's newest
    checkpoint that the most witnesses cosigned, and that checkpoint's note with every signature
    line stored for it. Built from the store alone: no key is needed."""
    event = _event(store, event_id)
    chain, seq = event["chain"], event["seq"]
    note = _signed_note(store, chain, log_name, f"c.seq >= {seq}", "length(lines) DESC, seq DESC")
    if note is None:
        raise ProofError(
            f"no signed note covers chain {chain} seq {seq} yet; the sink signs one every "
            "WARDEN_LEDGER_CHECKPOINT_EVERY events or WARDEN_LEDGER_CHECKPOINT_SECONDS seconds: retry shortly"
        )
    size = NoteCheckpoint.parse(note.text).size
    leaves = chain_leaves(store, chain, size)
    if len(leaves) != size:
        raise ProofError(
            f"chain {chain} holds {len(leaves)} rows below seq {size}; run `warden audit verify --chain {chain}`"
        )
    extra = orjson.dumps({**event, "ts": format_ts(event["ts"])})
    return Receipt(seq, tuple(inclusion_path(leaves, seq)), note, extra)


# The events that tell a client its intent's outcome: the signer's every status change (of an EVM
# or a Solana transaction, or a Bitcoin payment), a signed message (EVM or Solana), and a refusal
# (the worker's or the signer's).
OUTCOME_ACTIONS_SQL = (
    "(action LIKE 'tx.%' OR action LIKE 'solana.%' OR action LIKE 'bitcoin.%' "
    "OR action IN ('message.signed', 'intent.rejected'))"
)
# The digest of the intent record an event is about (`schemas.emit.audit`).
INTENT_DIGEST_SQL = "JSONExtractString(details, 'intent_digest')"


def outcome_event_id(store: Reader, intent_id: str, agent_id: str, intent_digest: str) -> str:
    """The newest outcome event of the intent ``intent_digest`` names, of agent ``agent_id``: what
    its receipt proves. Never chosen by the id alone: a refusal of a forged copy that reused the id
    is an event about another record (another digest), and proves nothing about this intent."""
    rows = store.arrow(
        f"SELECT event_id FROM {AUDIT_LOG} WHERE intent_id = {sql_string(intent_id)} "
        f"AND agent_id = {sql_string(agent_id)} AND {INTENT_DIGEST_SQL} = {sql_string(intent_digest)} "
        f"AND {OUTCOME_ACTIONS_SQL} ORDER BY ts DESC, seq DESC LIMIT 1"
    ).to_pylist()
    if not rows:
        raise ProofError(
            f"no outcome of intent {intent_id!r} of agent {agent_id!r} with digest {intent_digest} is in the ledger "
            "yet (a signed, mined or rejected event); the ledger appends within seconds of the outcome: retry shortly"
        )
    return cast(str, rows[0]["event_id"])  # audit_log.event_id is a String


def _signed_note(store: Reader, chain: int, log_name: str, where: str, order: str) -> Note | None:
    """The first checkpoint of ``chain`` (by ``order``) meeting ``where``, as its note with the
    log's signature line and every witness's cosignature line stored for it."""
    signed = store.arrow(
        "SELECT c.seq AS seq, c.merkle_root AS merkle_root, c.signature AS signature, s.lines AS lines "
        f"FROM {AUDIT_CHECKPOINTS} AS c LEFT JOIN (SELECT seq, groupArray(line) AS lines "
        f"FROM {AUDIT_NOTE_SIGNATURES} FINAL WHERE chain = {int(chain)} GROUP BY seq) AS s ON s.seq = c.seq "
        f"WHERE c.chain = {int(chain)} AND {where} ORDER BY {order} LIMIT 1"
    ).to_pylist()
    if not signed:
        return None
    row = signed[0]
    text = note_text(log_name, chain, row["seq"] + 1, row["merkle_root"])
    lines = [row["signature"], *sorted(row["lines"] or ())]
    return Note(text, tuple(Signature.from_line(line) for line in lines))


def latest_note(store: Reader, chain: int, log_name: str) -> Note:
    """The chain's newest checkpoint as its signed (and cosigned) note."""
    note = _signed_note(store, chain, log_name, "1", "seq DESC")
    if note is None:
        raise ProofError(
            f"chain {chain} has no signed note yet; the sink signs one within WARDEN_LEDGER_CHECKPOINT_SECONDS"
        )
    return note
