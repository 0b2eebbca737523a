"""Ledger inclusion proofs built by Python, checked by the Node.js auditor written from docs/wire-
formats.md alone (tests/node/check_proof.mjs): a proof verifies, a tampered one or one under
another log key fails in Node and in Python, and so does one checked against a broken rule of the
page. Node.js is required."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.cosigning import log_key
from ledger.note import Note, NoteCheckpoint, NoteKey
from ledger.note import sign as sign_note
from schemas.audit import AuditEvent
from tests.ledger_support import LOG_NAME
from tests.wire_support import run_node

LEDGER_KEY = Ed25519PrivateKey.generate()
LOG = log_key(LOG_NAME, LEDGER_KEY)


def _ledger_events() -> tuple[list[AuditEvent], list[AuditEvent]]:
    from schemas.audit import AuditEvent, event_id
    from tests.ledger_support import pipeline_events

    events = pipeline_events(40)
    # Fields that need escaping, no intent id, non-ASCII details and an integer past 2**53.
    tricky = [
        AuditEvent(
            event_id=event_id("wire", str(i)),
            actor="admin:ops|night%shift",
            action="note.added",
            resource=f"intent:a|b%7C{i}",
            ts=events[3].ts + timedelta(microseconds=500 + i),
            intent_id=None,
            agent_id=f"agent-{i}",
            details={"note": "über ✓ \u2028", "n": 2**60 + i},
        )
        for i in range(2)
    ]
    return events[:4] + tricky + events[4:], tricky


@pytest.fixture(scope="module")
def proofs(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    from ledger import proof
    from ledger.store import ChdbStore
    from tests.ledger_support import build_ledger

    events, tricky = _ledger_events()
    store = ChdbStore(tmp_path_factory.mktemp("wire-ledger") / "clickhouse")
    store.ensure_schema()
    try:
        build_ledger(store, events, LEDGER_KEY, chains=2, checkpoint_every=7)
        built: dict[str, dict[str, Any]] = {}
        for event in events:
            with contextlib.suppress(proof.ProofError):  # the newest rows of a chain wait for their checkpoint
                built[event.event_id] = proof.build(store, event.event_id, LOG_NAME)
    finally:
        store.close()
    assert all(t.event_id in built for t in tricky)
    return built, [t.event_id for t in tricky]


def _check_cases(items: Iterable[dict[str, Any]], log: NoteKey = LOG) -> list[dict[str, Any]]:
    return [{"proof": p, "log_key": log.vkey} for p in items]


def test_ledger_proofs_built_by_python_verify_in_node(
    proofs: tuple[dict[str, dict[str, Any]], list[str]],
) -> None:
    from ledger import proof

    built, tricky = proofs
    assert len(built) >= 30
    sizes = {(p["leaf_index"], p["tree_size"]) for p in built.values()}
    assert any(i == s - 1 for i, s in sizes) and any(i % 2 for i, _ in sizes) and len({s for _, s in sizes}) >= 3
    for p in built.values():
        assert proof.check(p, LOG) is None
    answers = run_node("check_proof.mjs", _check_cases(built.values()))
    assert [a for a in answers if a != {"ok": True}] == []


def _rehashed(p: dict[str, Any], **edits: Any) -> dict[str, Any]:
    """The event edited and its row hash recomputed: consistent, but not the row the ledger signed."""
    from ledger.chain import integrity_hash

    e = p["event"]
    e.update(edits)
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
    return p


def _note_edited(p: dict[str, Any], size: int = 0, root: bytes | None = None) -> dict[str, Any]:
    """The checkpoint note's text edited (``size`` rows more, another ``root``), its signatures kept."""
    note = Note.parse(p["checkpoint"])
    said = NoteCheckpoint.parse(note.text)
    text = NoteCheckpoint(said.origin, said.size + size, said.root if root is None else root).text
    p["checkpoint"] = Note(text, note.signatures).to_bytes().decode()
    return p


def _resigned_checkpoint(p: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The checkpoint note signed again, under the log's name, by ``key``."""
    text = Note.parse(p["checkpoint"]).text
    p["checkpoint"] = Note(text, (sign_note(text, LOG_NAME, key),)).to_bytes().decode()
    return p


def _flip(hex_text: str) -> str:
    return ("0" if hex_text[0] != "0" else "1") + hex_text[1:]


PROOF_TAMPERS: dict[str, Callable[[dict[str, Any]], object]] = {
    "actor edited": lambda p: p["event"].update(actor="agent:mallory"),
    "details edited": lambda p: p["event"].update(details=p["event"]["details"].replace("}", ',"x":1}', 1)),
    "ts edited": lambda p: p["event"].update(ts="2020-01-01T00:00:00.000000Z"),
    "agent_id edited": lambda p: p["event"].update(agent_id="agent-99"),
    "actor edited and the row hash recomputed": lambda p: _rehashed(p, actor="agent:mallory"),
    "a path node flipped": lambda p: p["audit_path"].__setitem__(0, _flip(p["audit_path"][0])),
    "the path reversed": lambda p: p["audit_path"].reverse(),
    "the path one node short": lambda p: p["audit_path"].pop(),
    "the path one node long": lambda p: p["audit_path"].append("ab" * 32),
    "leaf_index moved": lambda p: p.update(leaf_index=p["leaf_index"] - 1),
    "leaf_index and seq moved together": lambda p: (
        p.update(leaf_index=p["leaf_index"] - 1),
        p["event"].update(seq=p["event"]["seq"] - 1),
    ),
    "tree_size changed": lambda p: p.update(tree_size=p["tree_size"] + 1),
    "checkpoint root replaced": lambda p: _note_edited(p, root=bytes(32)),
    "checkpoint size and tree_size moved together": lambda p: (
        _note_edited(p, size=1),
        p.update(tree_size=p["tree_size"] + 1),
    ),
    "checkpoint re-signed by another key": lambda p: _resigned_checkpoint(p, Ed25519PrivateKey.generate()),
    "checkpoint's signature line dropped": lambda p: p.update(checkpoint=Note.parse(p["checkpoint"]).text + "\n"),
    "another version": lambda p: p.update(version="warden.audit.proof.v1"),
}


def _victims(built: dict[str, Any]) -> list[dict[str, Any]]:
    """Proofs with a path of three or more nodes, a right-hand leaf among them."""
    deep = [
        p for p in built.values() if len(p["audit_path"]) >= 3 and len(set(p["audit_path"])) > 1 and p["leaf_index"] > 0
    ]
    odd = [p for p in deep if p["leaf_index"] % 2]
    return [deep[0], odd[-1]]


@pytest.mark.parametrize("what", list(PROOF_TAMPERS))
def test_a_tampered_proof_fails_in_node_and_in_python(
    proofs: tuple[dict[str, dict[str, Any]], list[str]], what: str
) -> None:
    from ledger import proof

    built, tricky = proofs
    cases = []
    for original in _victims(built) + [built[tricky[0]]]:
        assert original["leaf_index"] > 0
        altered = copy.deepcopy(original)
        PROOF_TAMPERS[what](altered)
        assert altered != original
        assert proof.check(altered, LOG) is not None
        cases.append(altered)
    answers = run_node("check_proof.mjs", _check_cases(cases))
    assert all(a["ok"] is False for a in answers), answers


def test_a_proof_under_another_log_key_fails(
    proofs: tuple[dict[str, dict[str, Any]], list[str]],
) -> None:
    built, _ = proofs
    other = log_key(LOG_NAME, Ed25519PrivateKey.generate())
    (answer,) = run_node("check_proof.mjs", _check_cases([next(iter(built.values()))], log=other))
    assert answer["ok"] is False and "signature" in answer["why"]


@pytest.mark.parametrize(
    "rule", ["no_escape", "hex_leaf", "no_leaf_prefix", "left_to_right", "text_without_newline", "whole_note"]
)
def test_a_proof_checked_against_a_rule_of_the_page_fails(
    proofs: tuple[dict[str, dict[str, Any]], list[str]], rule: str
) -> None:
    built, tricky = proofs
    victim = built[tricky[0]] if rule == "no_escape" else _victims(built)[1]
    case = _check_cases([victim])[0]
    ok, broken = run_node("check_proof.mjs", [case, {**case, "break": rule}])
    assert ok == {"ok": True} and broken["ok"] is False, (ok, broken)
