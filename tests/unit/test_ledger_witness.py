"""The witness (`ledger.witness`): it cosigns a log's checkpoint only if it extends the last one
it cosigned, with the c2sp.org/tlog-witness status codes, and it stores before it answers. A
hostile log operator tries a fork, a replay, a rollback and a crash; each is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.merkle import consistency_path, leaf_hash, tree_hash
from ledger.note import COSIGNATURE_V1, ED25519, Note, NoteCheckpoint, NoteKey, sign, verified_by
from ledger.witness import Witness, WitnessRefused, WitnessState, parse_request, request_body

ORIGIN = "warden.example/audit/0"
LOG_KEY = Ed25519PrivateKey.generate()
LEAVES = [leaf_hash(bytes([i]) * 32) for i in range(40)]
FORK = LEAVES[:9] + [leaf_hash(b"forged" * 6)] + LEAVES[10:]
NOW = 1_764_000_000


def checkpoint(size: int, leaves: list[bytes] = LEAVES, key: Ed25519PrivateKey = LOG_KEY, origin: str = ORIGIN) -> Note:
    text = NoteCheckpoint(origin, size, tree_hash(leaves[:size])).text
    return Note(text, (sign(text, origin, key),))


def body(old: int, size: int, leaves: list[bytes] = LEAVES, **kw: Any) -> bytes:
    proof = consistency_path(leaves[:size], old) if 0 < old < size else []
    return request_body(old, proof, checkpoint(size, leaves, **kw))


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[Witness]:
    state = WitnessState(tmp_path / "witness.db")
    yield Witness(
        "witness.example/w1", Ed25519PrivateKey.generate(), {ORIGIN: [NoteKey.of(ORIGIN, ED25519, LOG_KEY)]}, state
    )
    state.close()


def refused(witness: Witness, request: bytes) -> WitnessRefused:
    with pytest.raises(WitnessRefused) as caught:
        witness.add_checkpoint(request, NOW)
    return caught.value


def test_it_cosigns_growth_and_the_cosignature_verifies_with_its_time(witness: Witness) -> None:
    first = witness.add_checkpoint(body(0, 8), NOW)
    grown = witness.add_checkpoint(body(8, 21), NOW + 1)
    assert witness.state.latest(ORIGIN) == (21, tree_hash(LEAVES[:21]))
    note = checkpoint(21).with_signatures(grown)
    assert verified_by(note, [witness.public]) == {witness.public: NOW + 1}
    assert first.key_id == grown.key_id == NoteKey.of(witness.name, COSIGNATURE_V1, witness.key).key_id
    # The same checkpoint again (its answer was lost): cosigned again, nothing moves.
    witness.add_checkpoint(body(21, 21), NOW + 2)
    assert witness.state.latest(ORIGIN)[0] == 21


def test_a_fork_a_replay_and_a_rollback_are_refused_with_the_specs_codes(witness: Witness) -> None:
    witness.add_checkpoint(body(0, 12), NOW)
    # The operator shows a forked history of the same size: another root.
    fork = refused(witness, body(12, 12, FORK))
    assert fork.status == 409 and "a fork" in str(fork)
    # A forked history that grows: no consistency proof from what the witness holds can exist.
    grown_fork = request_body(12, consistency_path(FORK[:30], 12), checkpoint(30, FORK))
    assert refused(witness, grown_fork).status == 422
    # A replayed older checkpoint: the old size is not what the witness last cosigned.
    replay = refused(witness, body(0, 8))
    assert (replay.status, replay.body, replay.content_type) == (409, "12\n", "text/x.tlog.size")
    # A rollback: an old size above the checkpoint's.
    assert refused(witness, body(12, 8)).status == 400
    assert witness.state.latest(ORIGIN) == (12, tree_hash(LEAVES[:12]))


def test_unknown_logs_untrusted_keys_and_malformed_requests_are_refused(witness: Witness) -> None:
    assert refused(witness, body(0, 4, origin="other.example/log")).status == 404
    assert refused(witness, body(0, 4, key=Ed25519PrivateKey.generate())).status == 403
    assert refused(witness, b"old 01\n\n" + checkpoint(4).to_bytes()).status == 400
    assert refused(witness, b"new 0\n\n" + checkpoint(4).to_bytes()).status == 400
    assert refused(witness, b"old 0\n" + checkpoint(4).to_bytes()).status == 400
    assert refused(witness, b"old 0\nAAAA\n\n" + checkpoint(4).to_bytes()).status == 400  # not a 32-byte hash
    assert refused(witness, request_body(0, [bytes(32)], checkpoint(4))).status == 422  # a proof from 0 is empty
    assert witness.state.latest(ORIGIN) == (0, None)
    parsed = parse_request(body(3, 7))
    assert parsed.old_size == 3 and len(parsed.proof) == len(consistency_path(LEAVES[:7], 3))


def test_a_witness_killed_between_the_check_and_the_store_answered_nothing_and_stored_nothing(tmp_path: Path) -> None:
    """The spec's race: check and store must be one step. Killed in between, nothing was stored and
    nothing answered; started again it is where it was, and it still refuses a fork of what it
    had cosigned before. Killed after storing, it cosigns the same checkpoint again, nothing else."""
    key = Ed25519PrivateKey.generate()
    logs = {ORIGIN: [NoteKey.of(ORIGIN, ED25519, LOG_KEY)]}
    path = tmp_path / "witness.db"
    witness = Witness("witness.example/w1", key, logs, WitnessState(path))
    witness.add_checkpoint(body(0, 10), NOW)

    class Killed(BaseException):
        pass

    def kill() -> None:
        raise Killed

    with pytest.raises(Killed):
        witness.add_checkpoint(body(10, 25), NOW, before_commit=kill)
    witness.state.close()
    again = Witness("witness.example/w1", key, logs, WitnessState(path))
    assert again.state.latest(ORIGIN) == (10, tree_hash(LEAVES[:10]))
    assert refused(again, body(10, 10, FORK)).status == 409
    again.add_checkpoint(body(10, 25), NOW)
    again.state.close()
    # Killed after the store, before answering: the log asks again with the old size it knew.
    restarted = Witness("witness.example/w1", key, logs, WitnessState(path))
    lost = refused(restarted, body(10, 25))
    assert (lost.status, lost.body) == (409, "25\n")
    restarted.add_checkpoint(body(25, 25), NOW)  # the same checkpoint: cosigned again
    assert refused(restarted, body(25, 25, FORK)).status == 409
    restarted.state.close()


def test_two_witnesses_on_one_state_cannot_both_advance_from_the_same_size(tmp_path: Path) -> None:
    """Request A checked, request B arrives before A stored: B waits on A's transaction, then is
    checked against what A stored (the rollback the spec's race describes cannot happen)."""
    logs = {ORIGIN: [NoteKey.of(ORIGIN, ED25519, LOG_KEY)]}
    key = Ed25519PrivateKey.generate()
    a = Witness("witness.example/w1", key, logs, WitnessState(tmp_path / "w.db"))
    b = Witness("witness.example/w1", key, logs, WitnessState(tmp_path / "w.db"))
    b.state.db.execute("PRAGMA busy_timeout = 0")
    seen: list[Exception] = []

    def b_meanwhile() -> None:
        try:
            b.add_checkpoint(body(0, 5), NOW)
        except Exception as exc:  # noqa: BLE001 - what B got is the assertion
            seen.append(exc)

    a.add_checkpoint(body(0, 20), NOW, before_commit=b_meanwhile)
    assert len(seen) == 1 and "locked" in str(seen[0])  # not cosigned while A held the check
    assert refused(b, body(0, 5)).status == 409
    assert a.state.latest(ORIGIN)[0] == 20
    a.state.close()
    b.state.close()
