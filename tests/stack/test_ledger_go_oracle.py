"""Warden's checkpoints, cosignatures, receipts and consistency proofs, checked by Go's reference
code (golang.org/x/mod/sumdb/note and sumdb/tlog from Debian, built in GOPATH mode: the
`tlogcheck` oracle), and by Warden's own `ledger.receipt.check`: both must accept what is right
and refuse what was altered."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain import format_ts, genesis_hash, integrity_hash
from ledger.merkle import consistency_path, consistent, inclusion_path, leaf_hash, tree_hash
from ledger.note import ED25519, Note, NoteCheckpoint, NoteError, NoteKey, b64encode, sign
from ledger.receipt import Policy, Receipt, check
from ledger.witness import Witness, WitnessState, request_body
from schemas.actions import AuditAction
from tests.oracle import build_tlogcheck

LOG_NAME = "warden.example/audit"
ORIGIN = f"{LOG_NAME}/3"
LOG_KEY = Ed25519PrivateKey.generate()
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def rows(count: int) -> list[dict[str, Any]]:
    """An audit chain: each row's integrity hash over its fields and the row before."""
    chain, prev = [], genesis_hash(3)
    for seq in range(count):
        row: dict[str, Any] = {
            "chain": 3, "seq": seq, "prev_hash": prev, "event_id": f"e-{seq}", "actor": "service:signer",
            "action": AuditAction.TX_MINED, "resource": f"intent:i-{seq}", "ts": format_ts(T0 + timedelta(seconds=seq)),
            "details": orjson.dumps({"block_number": seq}).decode(), "intent_id": f"i-{seq}", "agent_id": "agent-1",
        }  # fmt: skip
        row["integrity_hash"] = prev = integrity_hash(
            prev, row["event_id"], row["actor"], row["action"], row["resource"], T0 + timedelta(seconds=seq),
            row["details"], row["intent_id"], row["agent_id"],
        )  # fmt: skip
        chain.append(row)
    return chain


ROWS = rows(37)
LEAVES = [leaf_hash(bytes.fromhex(r["integrity_hash"])) for r in ROWS]


def log_note(size: int, leaves: list[bytes] = LEAVES) -> Note:
    text = NoteCheckpoint(ORIGIN, size, tree_hash(leaves[:size])).text
    return Note(text, (sign(text, LOG_NAME, LOG_KEY),))


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tlogcheck(tmp_path_factory.mktemp("go-oracle"))


@pytest.fixture(scope="module")
def witnesses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Witness]]:
    home = tmp_path_factory.mktemp("witnesses")
    log = NoteKey.of(LOG_NAME, ED25519, LOG_KEY)
    made = [
        Witness(f"witness.example/w{i}", Ed25519PrivateKey.generate(), {ORIGIN: [log]}, WitnessState(home / f"w{i}.db"))
        for i in (1, 2)
    ]
    yield made
    for w in made:
        w.state.close()


def go(tlogcheck: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    done = subprocess.run([str(tlogcheck), *args], input=stdin, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout.strip()


def test_go_accepts_a_witnessed_receipt_and_refuses_an_altered_one_as_warden_does(
    tlogcheck: Path, witnesses: list[Witness]
) -> None:
    note = log_note(30)
    for w in witnesses:
        note = note.with_signatures(w.add_checkpoint(request_body(0, [], note), 1_764_158_400))
    log_key = NoteKey.of(LOG_NAME, ED25519, LOG_KEY)
    policy = Policy(log_key, tuple(w.public for w in witnesses), quorum=2)
    row = ROWS[17]
    receipt = Receipt(17, tuple(inclusion_path(LEAVES[:30], 17)), note, orjson.dumps(row))
    assert check(Receipt.parse(receipt.text), policy) == NoteCheckpoint.parse(note.text)
    witness_args = [a for w in witnesses for a in ("-witness", w.public.vkey)]
    args = ["proof", "-log", log_key.vkey, *witness_args, "-quorum", "2", "-leaf", row["integrity_hash"]]
    assert go(tlogcheck, *args, stdin=receipt.text) == (0, f"ok {ORIGIN} index 17 of 30")

    # The event altered in the receipt: Warden hashes it again and the proof leads elsewhere; Go,
    # given the altered row's hash as the leaf, refuses the inclusion too.
    altered_row = {**row, "details": orjson.dumps({"block_number": 9999}).decode()}
    altered = Receipt(17, receipt.path, note, orjson.dumps(altered_row))
    with pytest.raises(NoteError, match="altered"):
        check(altered, policy)
    altered_leaf = integrity_hash(
        row["prev_hash"], row["event_id"], row["actor"], row["action"], row["resource"], T0 + timedelta(seconds=17),
        altered_row["details"], row["intent_id"], row["agent_id"],
    )  # fmt: skip
    code, said = go(tlogcheck, *args[:-1], altered_leaf, stdin=altered.text)
    assert code == 1 and said.startswith("inclusion"), said

    # The checkpoint's root altered (the log's signature no longer verifies): both refuse.
    forged_text = NoteCheckpoint(ORIGIN, 30, bytes(32)).text
    forged = Receipt(17, receipt.path, Note(forged_text, note.signatures), orjson.dumps(row))
    with pytest.raises(NoteError, match="does not verify"):
        check(forged, policy)
    code, said = go(tlogcheck, *args, stdin=forged.text)
    assert code == 1 and said.startswith("note"), said

    # One cosignature short of the policy: both refuse.
    one = Receipt(17, receipt.path, Note(note.text, note.signatures[:2]), orjson.dumps(row))
    with pytest.raises(NoteError, match="asks for 2"):
        check(one, policy)
    code, said = go(tlogcheck, *args, stdin=one.text)
    assert code == 1 and "the policy asks for 2" in said, said


def test_go_accepts_warden_consistency_proofs_between_every_pair_and_refuses_a_fork(
    tlogcheck: Path, tmp_path: Path
) -> None:
    log_key = NoteKey.of(LOG_NAME, ED25519, LOG_KEY)
    fork = LEAVES[:20] + [leaf_hash(b"forged" * 6)] + LEAVES[21:]
    for old, new in ((1, 2), (3, 7), (4, 8), (5, 37), (16, 17), (20, 21), (21, 22), (21, 37), (36, 37)):
        (tmp_path / "old").write_bytes(log_note(old).to_bytes())
        for leaves, _expected in ((LEAVES, 0), (fork, 1)):
            (tmp_path / "new").write_bytes(log_note(new, leaves).to_bytes())
            proof = "".join(b64encode(h) + "\n" for h in consistency_path(leaves[:new], old))
            code, said = go(
                tlogcheck, "consistency", "-log", log_key.vkey, "-old", str(tmp_path / "old"), "-new",
                str(tmp_path / "new"), stdin=proof,
            )  # fmt: skip
            # Leaf 20 replaced: a tree that held the real one (old > 20) has no consistent future holding the other.
            forked = leaves is fork and old > 20
            assert code == (1 if forked else 0), (old, new, said)
            path = consistency_path(leaves[:new], old)
            assert consistent(old, new, tree_hash(LEAVES[:old]), tree_hash(leaves[:new]), path) is not forked
