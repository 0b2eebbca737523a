"""Inclusion proofs on a real chDB ledger: a proof verifies (with Warden, and
with nothing but hashlib and an Ed25519 library, following docs/ledger.md); a proof
for a tampered row or against a forged checkpoint fails."""

from __future__ import annotations

import copy
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger import checkpoint, proof
from ledger.checkpoint import public_key_hex
from ledger.store import ChdbStore
from tests.ledger_support import build_ledger, pipeline_events

KEY = Ed25519PrivateKey.generate()
PUBLIC = bytes.fromhex(public_key_hex(KEY))
EVENTS = pipeline_events(700)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = ChdbStore(tmp_path_factory.mktemp("ledger") / "clickhouse")
    store.ensure_schema()
    build_ledger(store, EVENTS, KEY, checkpoint_every=100)
    yield store
    store.close()


def _independent_check(p: dict, public_key: bytes) -> bool:
    """docs/ledger.md's procedure, written from the document alone."""
    e = p["event"]
    esc = lambda s: s.replace("%", "%25").replace("|", "%7C")  # noqa: E731
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
    c = p["checkpoint"]
    statement = f"warden.audit.checkpoint.v1|{c['chain']}|{c['seq']}|{c['head_hash']}|{c['merkle_root']}|{c['ts']}"
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(bytes.fromhex(c["signature"]), statement.encode())
    except InvalidSignature:
        return False
    return (
        sn == 0
        and node.hex() == c["merkle_root"]
        and c["chain"] == e["chain"]
        and p["leaf_index"] == e["seq"]
        and p["tree_size"] == c["seq"] + 1
    )


@pytest.mark.parametrize("index", [0, 1, 99, 100, 250, 333, 450])
def test_proof_verifies_with_warden_and_without(store, index):
    built = proof.build(store, EVENTS[index].event_id)
    assert built["event"]["event_id"] == EVENTS[index].event_id
    assert proof.check(built, PUBLIC) is None
    assert _independent_check(built, PUBLIC)


def test_proof_for_a_tampered_row_fails(store):
    target = EVENTS[120]
    store.execute(
        f"ALTER TABLE audit_log UPDATE actor = 'agent:mallory' WHERE event_id = '{target.event_id}' SETTINGS mutations_sync = 2"
    )
    try:
        built = proof.build(store, target.event_id)
        assert built["event"]["actor"] == "agent:mallory"
        assert "fields do not hash" in proof.check(built, PUBLIC)
        assert not _independent_check(built, PUBLIC)
    finally:
        store.execute(
            f"ALTER TABLE audit_log UPDATE actor = '{target.actor}' WHERE event_id = '{target.event_id}' SETTINGS mutations_sync = 2"
        )
    assert proof.check(proof.build(store, target.event_id), PUBLIC) is None


def test_altered_proof_fails(store):
    built = proof.build(store, EVENTS[42].event_id)
    for field, value in (
        ("details", '{"value_wei":"1"}'),
        ("agent_id", "agent-9"),
        ("ts", "2020-01-01T00:00:00.000000Z"),
    ):
        forged = copy.deepcopy(built)
        forged["event"][field] = value
        assert proof.check(forged, PUBLIC) is not None, field
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
    assert "does not lead to the signed merkle_root" in proof.check(forged, PUBLIC)
    assert not _independent_check(forged, PUBLIC)


def test_proof_against_a_forged_checkpoint_fails(store):
    built = proof.build(store, EVENTS[42].event_id)
    altered = copy.deepcopy(built)
    altered["checkpoint"]["merkle_root"] = "00" * 32
    assert "signature does not verify" in proof.check(altered, PUBLIC)
    # Re-signed by someone else's key: valid signature, wrong signer.
    cp = checkpoint.Checkpoint.from_dict(built["checkpoint"])
    resigned = copy.deepcopy(built)
    resigned["checkpoint"] = checkpoint.sign(
        Ed25519PrivateKey.generate(), cp.chain, cp.seq, cp.head_hash, cp.merkle_root, cp.ts
    ).to_dict()
    assert "signature does not verify" in proof.check(resigned, PUBLIC)
    assert not _independent_check(resigned, PUBLIC)


def test_no_proof_without_a_covering_checkpoint(store):
    # 700 events over two chains, checkpoints every 100 rows: the newest rows wait for one.
    newest = store.arrow("SELECT event_id FROM audit_log WHERE chain = 0 ORDER BY seq DESC LIMIT 1").to_pylist()[0][
        "event_id"
    ]
    with pytest.raises(proof.ProofError, match="no checkpoint covers"):
        proof.build(store, newest)
    with pytest.raises(proof.ProofError, match="no event"):
        proof.build(store, "no-such-event")
