"""Inclusion proofs on a real chDB ledger: a proof verifies (with Warden, and
with nothing but hashlib, base64 and an Ed25519 library, following docs/ledger.md); a
proof for a tampered row or against a forged checkpoint fails."""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger import checkpoint, proof
from ledger.cosigning import log_key
from ledger.note import Note, NoteCheckpoint
from ledger.store import ChdbStore
from tests.ledger_support import LOG_NAME, T0, build_ledger, pipeline_events

KEY = Ed25519PrivateKey.generate()
LOG = log_key(LOG_NAME, KEY)
EVENTS = pipeline_events(700)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    store = ChdbStore(tmp_path_factory.mktemp("ledger") / "clickhouse")
    store.ensure_schema()
    build_ledger(store, EVENTS, KEY, checkpoint_every=100)
    yield store
    store.close()


def _signed_by(note: str, vkey: str) -> tuple[str, int, bytes] | None:
    """docs/ledger.md's step 3 alone: the note's origin, size and root if the vkey's key signed
    its text, else None."""
    name, key_id, encoded = vkey.split("+", 2)
    raw = base64.b64decode(encoded)
    if raw[0] != 1 or hashlib.sha256(name.encode() + b"\n" + raw[:1] + raw[1:]).digest()[:4].hex() != key_id:
        return None
    text, _, lines = note.rpartition("\n\n")
    text += "\n"
    for line in lines.splitlines():
        dash, signer, signature = line.split(" ")
        try:
            signed = base64.b64decode(signature, validate=True)
        except binascii.Error:
            return None
        if dash != "\u2014" or signer != name or signed[:4].hex() != key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(raw[1:]).verify(signed[4:], text.encode())
        except InvalidSignature:
            return None
        origin, size, root = text.split("\n")[:3]
        return origin, int(size), base64.b64decode(root)
    return None


def _independent_check(p: dict[str, Any], vkey: str) -> bool:
    """docs/ledger.md's procedure, written from the document alone."""
    e = p["event"]

    def esc(s: str) -> str:
        return s.replace("%", "%25").replace("|", "%7C")

    message = "|".join(
        [
            e["prev_hash"],
            esc(e["event_id"]),
            esc(e["actor"]),
            esc(e["action"]),
            esc(e["resource"]),
            e["ts"],
            hashlib.sha256(e["details"].encode()).hexdigest(),
            esc(e["intent_id"]),
            esc(e["agent_id"]),
        ]
    )
    if hashlib.sha256(message.encode()).hexdigest() != e["integrity_hash"]:
        return False
    node = hashlib.sha256(b"\x00" + bytes.fromhex(e["integrity_hash"])).digest()
    fn, sn = p["leaf_index"], p["tree_size"] - 1
    for sibling in map(bytes.fromhex, p["audit_path"]):
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            node = hashlib.sha256(b"\x01" + sibling + node).digest()
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = hashlib.sha256(b"\x01" + node + sibling).digest()
        fn, sn = fn >> 1, sn >> 1
    signed = _signed_by(p["checkpoint"], vkey)
    if signed is None:
        return False
    origin, size, root = signed
    return (
        sn == 0
        and node == root
        and origin == f"{vkey.split('+')[0]}/{e['chain']}"
        and p["leaf_index"] == e["seq"]
        and p["tree_size"] == size
    )


@pytest.mark.parametrize("index", [0, 1, 99, 100, 250, 333, 450])
def test_proof_verifies_with_warden_and_without(store: ChdbStore, index: int) -> None:
    built = proof.build(store, EVENTS[index].event_id, LOG_NAME)
    assert built["event"]["event_id"] == EVENTS[index].event_id
    assert proof.check(built, LOG) is None
    assert _independent_check(built, LOG.vkey)


def test_proof_for_a_tampered_row_fails(store: ChdbStore) -> None:
    target = EVENTS[120]
    store.execute(
        f"ALTER TABLE audit_log UPDATE actor = 'agent:mallory' WHERE event_id = '{target.event_id}' SETTINGS mutations_sync = 2"
    )
    try:
        built = proof.build(store, target.event_id, LOG_NAME)
        assert built["event"]["actor"] == "agent:mallory"
        assert "fields do not hash" in str(proof.check(built, LOG))
        assert not _independent_check(built, LOG.vkey)
    finally:
        store.execute(
            f"ALTER TABLE audit_log UPDATE actor = '{target.actor}' WHERE event_id = '{target.event_id}' SETTINGS mutations_sync = 2"
        )
    assert proof.check(proof.build(store, target.event_id, LOG_NAME), LOG) is None


def test_altered_proof_fails(store: ChdbStore) -> None:
    built = proof.build(store, EVENTS[42].event_id, LOG_NAME)
    for field, value in (
        ("details", '{"value_wei":"1"}'),
        ("agent_id", "agent-9"),
        ("ts", "2020-01-01T00:00:00.000000Z"),
    ):
        forged = copy.deepcopy(built)
        forged["event"][field] = value
        assert proof.check(forged, LOG) is not None, field
    # A consistent rewrite of the event (hash recomputed) no longer reaches the signed root.
    forged = copy.deepcopy(built)
    forged["event"]["actor"] = "agent:mallory"
    e = forged["event"]
    from datetime import datetime

    from ledger.chain import integrity_hash

    e["integrity_hash"] = integrity_hash(
        e["prev_hash"],
        e["event_id"],
        e["actor"],
        e["action"],
        e["resource"],
        datetime.fromisoformat(e["ts"]),
        e["details"],
        e["intent_id"],
        e["agent_id"],
    )
    assert "does not lead to the signed merkle_root" in str(proof.check(forged, LOG))
    assert not _independent_check(forged, LOG.vkey)


def test_proof_against_a_forged_checkpoint_fails(store: ChdbStore) -> None:
    built = proof.build(store, EVENTS[42].event_id, LOG_NAME)
    note = Note.parse(built["checkpoint"])
    said = NoteCheckpoint.parse(note.text)
    altered = copy.deepcopy(built)
    altered["checkpoint"] = (
        Note(NoteCheckpoint(said.origin, said.size, bytes(32)).text, note.signatures).to_bytes().decode()
    )
    assert "signature does not verify" in str(proof.check(altered, LOG))
    assert not _independent_check(altered, LOG.vkey)
    # Re-signed by someone else's key: valid signature, wrong signer.
    chain = int(said.origin.rsplit("/", 1)[1])
    resigned = copy.deepcopy(built)
    resigned["checkpoint"] = (
        checkpoint.sign(Ed25519PrivateKey.generate(), LOG_NAME, chain, said.size - 1, "", said.root.hex(), T0)
        .note(LOG_NAME)
        .to_bytes()
        .decode()
    )
    assert "signature does not verify" in str(proof.check(resigned, LOG))
    assert not _independent_check(resigned, LOG.vkey)


def test_no_proof_without_a_covering_checkpoint(store: ChdbStore) -> None:
    # 700 events over two chains, checkpoints every 100 rows: the newest rows wait for one.
    newest = store.arrow("SELECT event_id FROM audit_log WHERE chain = 0 ORDER BY seq DESC LIMIT 1").to_pylist()[0][
        "event_id"
    ]
    with pytest.raises(proof.ProofError, match="no checkpoint covers"):
        proof.build(store, newest, LOG_NAME)
    with pytest.raises(proof.ProofError, match="no event"):
        proof.build(store, "no-such-event", LOG_NAME)
