"""The pure ledger modules against references written from the specs: the
chain encoding, RFC 9162 Merkle trees and proofs, and the append processor."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import numpy as np
import pytest

from ledger import merkle
from ledger.append import Ledger, SeenIds, id_hash64
from ledger.chain import genesis_hash, integrity_hash
from schemas.actions import AuditAction
from schemas.audit import AuditEvent
from tests.ledger_support import T0, mth, pipeline_events

DATA = [hashlib.sha256(str(i).encode()).digest() for i in range(70)]


def test_known_answer_for_the_documented_encoding() -> None:
    message = (
        f"{genesis_hash(3)}|e%7C1|agent:a%25b|intent.submitted|intent:i-1|2026-11-21T10:00:00.000000Z|"
        f"{hashlib.sha256(b'{}').hexdigest()}||agent-1"
    )
    assert genesis_hash(3) == hashlib.sha256(b"warden.audit.v1|genesis|3").hexdigest()
    assert integrity_hash(
        genesis_hash(3), "e|1", "agent:a%b", AuditAction.INTENT_SUBMITTED, "intent:i-1", T0, "{}", "", "agent-1"
    ) == (hashlib.sha256(message.encode()).hexdigest())


def test_moving_a_separator_between_fields_changes_the_hash() -> None:
    a = integrity_hash("00" * 32, "e", "agent:x|y", "z", "r", T0, "{}", "", "")
    b = integrity_hash("00" * 32, "e", "agent:x", "y|z", "r", T0, "{}", "", "")
    assert a != b


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 64, 70])
def test_frontier_root_is_the_rfc_tree_hash(n: int) -> None:
    frontier = merkle.Frontier()
    for d in DATA[:n]:
        frontier.append(d)
    assert frontier.root() == mth(DATA[:n])
    leaves = [merkle.leaf_hash(d) for d in DATA[:n]]
    roots = merkle.Frontier().extend(leaves, range(1, n + 1))
    assert all(roots[m] == mth(DATA[:m]) for m in range(1, n + 1))
    resumed = merkle.Frontier(frontier.size, frontier.nodes)
    resumed.append(b"next")
    assert resumed.root() == mth(DATA[:n] + [b"next"])


@pytest.mark.parametrize("start", [0, 1, 3, 8, 13, 32, 45])
def test_extend_from_any_frontier_folds_subtrees_to_the_rfc_tree_hash(start: int) -> None:
    """extend hashes the new leaves' aligned subtrees level by level and appends the largest that
    fit before each wanted size; from any resumed frontier the roots are the RFC's."""
    data = [hashlib.sha256(str(i).encode()).digest() for i in range(200)]
    frontier = merkle.Frontier()
    for d in data[:start]:
        frontier.append(d)
    resumed = merkle.Frontier(frontier.size, frontier.nodes)
    leaves = b"".join(merkle.leaf_hash(d) for d in data[start:])
    wanted = [start, start + 1, start + 2, 64, 100, 127, 128, 129, 199, 200, 201]
    roots = resumed.extend(leaves, wanted)
    assert roots == {m: mth(data[:m]) for m in wanted if start < m <= 200}
    assert resumed.size == 200 and resumed.root() == mth(data)
    with pytest.raises(ValueError):
        merkle.Frontier(3, resumed.nodes[:0] + [b"x" * 32] * 2).append_subtree(b"y" * 32, 1)


def test_every_inclusion_path_verifies_and_a_wrong_one_does_not() -> None:
    for size in range(1, 34):
        leaves = [merkle.leaf_hash(d) for d in DATA[:size]]
        root = mth(DATA[:size])
        for index in range(size):
            path = merkle.inclusion_path(leaves, index)
            assert merkle.root_from_path(index, size, leaves[index], path) == root
            if index + 1 < size:
                assert merkle.root_from_path(index, size, leaves[index + 1], path) != root
            if path:
                assert merkle.root_from_path(index, size, leaves[index], path[:-1]) != root
            # The same path claimed for a bigger tree does not reach that tree's root.
            assert merkle.root_from_path(index, size + 1, leaves[index], path) != mth(DATA[: size + 1])


def test_ledger_chains_rows_skips_redeliveries_and_owes_checkpoints_on_count_or_time() -> None:
    events = pipeline_events(10)
    ledger = Ledger({}, SeenIds(np.array([id_hash64(events[9].event_id)], dtype=np.uint64)))
    appended = [ledger.append(0, i, e, T0) for i, e in enumerate(events[:5] + events[:2])]
    assert appended == [True] * 5 + [False, False]
    assert ledger.next_offsets == {0: 7}
    cols = ledger.take_batch().columns
    assert cols["seq"] == [0, 1, 2, 3, 4] and cols["prev_hash"][0] == genesis_hash(0)
    assert cols["prev_hash"][1:] == cols["integrity_hash"][:-1]
    assert ledger.seen.stored_candidates([events[9].event_id, events[8].event_id]) == [events[9].event_id]
    assert ledger.append(0, 7, events[9], T0, stored_duplicates={events[9].event_id}) is False

    assert ledger.due_checkpoints(T0 + timedelta(seconds=4), every=10, interval=timedelta(seconds=5)) == []
    (due,) = ledger.due_checkpoints(T0 + timedelta(seconds=5), every=10, interval=timedelta(seconds=5))
    assert (due.seq, due.head_hash) == (4, cols["integrity_hash"][-1])
    assert due.merkle_root == mth([bytes.fromhex(h) for h in cols["integrity_hash"]]).hex()
    ledger.checkpointed(0, 4)
    assert ledger.due_checkpoints(T0 + timedelta(hours=1), every=10, interval=timedelta(seconds=5)) == []
    for i in range(10):
        ledger.append(
            0, 8 + i, AuditEvent(event_id=f"x{i}", actor="service:ledger", action="a", resource="r", ts=T0), T0
        )
    (due,) = ledger.due_checkpoints(T0, every=10, interval=timedelta(hours=1))
    assert due.seq == 14
