"""Inclusion proofs: one event, the RFC 9162 audit path from its row to a signed
checkpoint's merkle_root, and that checkpoint.

``check`` needs nothing but the proof and the ledger's public key (no store, no
network), so a third party can run it, or redo it by hand from docs/ledger.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson

from ledger.chain import format_ts, row_hash
from ledger.checkpoint import Checkpoint, signature_valid
from ledger.cosigning import note_text
from ledger.merkle import consistency_path, consistent, inclusion_path, leaf_hash, root_from_path
from ledger.note import Note, NoteCheckpoint, Signature
from ledger.receipt import Receipt
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG, AUDIT_NOTE_SIGNATURES, EVENT_COLUMNS
from ledger.store import Reader, chain_leaves, sql_string
from schemas.errors import WardenError

PROOF_VERSION = "warden.audit.proof.v1"
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


def build(store: Reader, event_id: str) -> dict[str, Any]:
    event = _event(store, event_id)
    chain, seq = event["chain"], event["seq"]
    cps = store.arrow(
        "SELECT chain, seq, head_hash, merkle_root, ts, signature, public_key "
        f"FROM {AUDIT_CHECKPOINTS} WHERE chain = {chain} AND seq >= {seq} ORDER BY seq LIMIT 1"
    ).to_pylist()
    if not cps:
        raise ProofError(
            f"no checkpoint covers chain {chain} seq {seq} yet; the sink signs one every "
            "WARDEN_LEDGER_CHECKPOINT_EVERY events or WARDEN_LEDGER_CHECKPOINT_SECONDS seconds: retry shortly"
        )
    checkpoint = Checkpoint(**cps[0])
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
        "checkpoint": checkpoint.to_dict(),
    }


def check(proof: Mapping[str, Any], public_key: bytes) -> str | None:
    """None when the proof holds, else the first reason it does not."""
    try:
        if proof.get("version") != PROOF_VERSION:
            return f"not a {PROOF_VERSION} proof (version {proof.get('version')!r})"
        event = proof["event"]
        checkpoint = Checkpoint.from_dict(proof["checkpoint"])
        recomputed = row_hash(event)
        index, size = int(proof["leaf_index"]), int(proof["tree_size"])
        path = [bytes.fromhex(node) for node in proof["audit_path"]]
        leaf = leaf_hash(bytes.fromhex(str(event["integrity_hash"])))
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed proof ({exc!r}); expected the JSON `warden audit prove` prints"
    if recomputed != event["integrity_hash"]:
        return "the event's fields do not hash to its integrity_hash: the event was altered"
    if not signature_valid(checkpoint, public_key):
        return f"the checkpoint's signature does not verify under public key {public_key.hex()}: forged or altered"
    if checkpoint.chain != event["chain"] or index != event["seq"] or size != checkpoint.tree_size:
        return (
            f"the proof does not line up: event chain {event['chain']} seq {event['seq']}, leaf {index} of {size}, "
            f"checkpoint chain {checkpoint.chain} covering {checkpoint.tree_size} rows"
        )
    root = root_from_path(index, size, leaf, path)
    if root is None or root.hex() != checkpoint.merkle_root:
        return "the audit path does not lead to the signed merkle_root: this event is not the one the ledger signed"
    return None


CONSISTENCY_VERSION = "warden.audit.consistency.v1"


def build_consistency(store: Reader, chain: int, old_size: int, new_size: int) -> dict[str, Any]:
    """A consistency proof (RFC 9162 §2.1.4) between two signed checkpoints of ``chain``: the one
    covering ``old_size`` rows and the one covering ``new_size``. Whoever kept the old checkpoint
    checks with it that the new one only added rows (`check_consistency`)."""
    if not 0 < old_size <= new_size:
        raise ProofError(
            f"sizes go from a smaller tree to a larger one (1 <= OLD <= NEW), not {old_size} to {new_size}"
        )
    found = {
        row["seq"] + 1: Checkpoint(**row)
        for row in store.arrow(
            "SELECT chain, seq, head_hash, merkle_root, ts, signature, public_key "
            f"FROM {AUDIT_CHECKPOINTS} WHERE chain = {int(chain)} AND seq IN ({old_size - 1}, {new_size - 1})"
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
        "old": found[old_size].to_dict(),
        "new": found[new_size].to_dict(),
        "consistency_path": [node.hex() for node in consistency_path(leaves, old_size)],
    }


def check_consistency(proof: Mapping[str, Any], public_key: bytes) -> str | None:
    """None when both checkpoints are the ledger's and the new one only added rows to the old one,
    else the first reason it does not hold."""
    try:
        if proof.get("version") != CONSISTENCY_VERSION:
            return f"not a {CONSISTENCY_VERSION} proof (version {proof.get('version')!r})"
        old, new = Checkpoint.from_dict(proof["old"]), Checkpoint.from_dict(proof["new"])
        path = [bytes.fromhex(node) for node in proof["consistency_path"]]
        old_root, new_root = bytes.fromhex(old.merkle_root), bytes.fromhex(new.merkle_root)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"malformed proof ({exc!r}); expected the JSON `warden audit consistency` prints"
    for name, cp in (("old", old), ("new", new)):
        if not signature_valid(cp, public_key):
            return f"the {name} checkpoint's signature does not verify under public key {public_key.hex()}: forged or altered"
    if old.chain != new.chain or old.tree_size > new.tree_size:
        return (
            f"the checkpoints do not line up: chain {old.chain} with {old.tree_size} rows, "
            f"chain {new.chain} with {new.tree_size}"
        )
    if not consistent(old.tree_size, new.tree_size, old_root, new_root, path):
        return (
            f"chain {new.chain}'s checkpoint of {new.tree_size} rows does not extend the one of {old.tree_size}: "
            "rows below it were changed or removed (a fork of the log)"
        )
    return None


def build_receipt(store: Reader, event_id: str, log_name: str) -> Receipt:
    """The event's receipt (`ledger.receipt`): its row, its inclusion proof in the chain's newest
    checkpoint that the most witnesses cosigned, and that checkpoint's note with every signature
    line stored for it. Built from the store alone: no key is needed."""
    event = _event(store, event_id)
    chain, seq = event["chain"], event["seq"]
    note = _signed_note(store, chain, log_name, f"s.seq >= {seq}", "length(lines) DESC, seq DESC")
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
# or a Solana transaction), a signed message (EVM or Solana), and a refusal (the worker's or the
# signer's).
OUTCOME_ACTIONS_SQL = (
    "(action LIKE 'tx.%' OR action LIKE 'solana.%' OR action IN ('message.signed', 'intent.rejected'))"
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
    """The first checkpoint of ``chain`` (by ``order``) meeting ``where``, as its note with every
    signature line stored for it (the log's and the witnesses')."""
    signed = store.arrow(
        f"SELECT s.seq AS seq, c.merkle_root AS merkle_root, groupArray(s.line) AS lines "
        f"FROM {AUDIT_NOTE_SIGNATURES} AS s FINAL INNER JOIN {AUDIT_CHECKPOINTS} AS c ON c.chain = s.chain AND c.seq = s.seq "
        f"WHERE s.chain = {int(chain)} AND {where} GROUP BY s.seq, c.merkle_root ORDER BY {order} LIMIT 1"
    ).to_pylist()
    if not signed:
        return None
    text = note_text(log_name, chain, signed[0]["seq"] + 1, signed[0]["merkle_root"])
    return Note(text, tuple(Signature.from_line(line) for line in sorted(signed[0]["lines"])))


def latest_note(store: Reader, chain: int, log_name: str) -> Note:
    """The chain's newest checkpoint as its signed (and cosigned) note."""
    note = _signed_note(store, chain, log_name, "1", "seq DESC")
    if note is None:
        raise ProofError(
            f"chain {chain} has no signed note yet; the sink signs one within WARDEN_LEDGER_CHECKPOINT_SECONDS"
        )
    return note
