"""A rewritten ledger on a real chDB ledger: the operator holds the ledger's key, rewrites a row,
recomputes the chain from there and signs the checkpoints (and their notes) again. Every hash and
every log signature agree, so the ledger's own checks pass; `verify` still says "rewritten after
witnessing", naming the witness whose cosignature no longer verifies, or the receipt a client kept."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyarrow.lib import Table

from ledger.chain import format_ts
from ledger.checkpoint import origin_of
from ledger.cosigning import log_key, store_signatures
from ledger.keys import public_key_hex
from ledger.merkle import consistency_path, inclusion_path
from ledger.note import Note, NoteError, NoteKey, Signature
from ledger.proof import build_receipt
from ledger.receipt import Receipt
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG, AUDIT_NOTE_SIGNATURES, DDL, EVENT_COLUMNS
from ledger.store import ChdbStore, chain_leaves
from ledger.verify import load_checkpoints, verify
from ledger.witness import Witness, WitnessState, request_body
from ledger.witnessed import REWRITTEN_AFTER_WITNESSING, kept_receipt
from tests.ledger_rewrite_support import rewrite_and_resign
from tests.ledger_support import LOG_NAME, build_ledger, pipeline_events

KEY = Ed25519PrivateKey.generate()
PUBLIC = bytes.fromhex(public_key_hex(KEY))
LOG = log_key(LOG_NAME, KEY)
TABLES = (AUDIT_LOG, AUDIT_CHECKPOINTS, AUDIT_NOTE_SIGNATURES)
NOW_S = 1_764_000_000


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChdbStore, NoteKey, dict[str, Table]]]:
    """Two chains of 500 rows, a checkpoint every 50, each cosigned by one witness as the sink has it
    cosigned (a consistency proof from the size it cosigned before)."""
    home = tmp_path_factory.mktemp("ledger")
    store = ChdbStore(home / "clickhouse")
    store.ensure_schema()
    build_ledger(store, pipeline_events(1_000), KEY)
    state = WitnessState(home / "witness.db")
    witness = Witness(
        "witness.test/w1", Ed25519PrivateKey.generate(), {origin_of(LOG_NAME, c): [LOG] for c in (0, 1)}, state
    )
    for chain in (0, 1):
        leaves = chain_leaves(store, chain, 10**9)
        old = 0
        for cp, _ in load_checkpoints(store, chain):
            proof = consistency_path(leaves[: cp.tree_size], old) if old else []
            cosignature = witness.add_checkpoint(request_body(old, proof, cp.note(LOG_NAME)), NOW_S)
            store_signatures(store, cp, [(witness.public, cosignature)], cp.ts)
            old = cp.tree_size
    state.close()
    saved = {table: store.arrow(f"SELECT * FROM {table}") for table in TABLES}
    yield store, witness.public, saved
    store.close()


@pytest.fixture
def ledger(pristine: tuple[ChdbStore, NoteKey, dict[str, Table]]) -> tuple[ChdbStore, NoteKey]:
    store, witness, saved = pristine
    for table in TABLES:
        store.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in DDL:
        store.execute(statement)
    for table in TABLES:
        store.insert(table, saved[table])
    return store, witness


def _event_at(store: ChdbStore, chain: int, seq: int) -> str:
    row = store.arrow(f"SELECT event_id FROM {AUDIT_LOG} WHERE chain = {chain} AND seq = {seq}").to_pylist()[0]
    event_id: str = row["event_id"]
    return event_id


def _rogue_rewrite(store: ChdbStore) -> int:
    """The operator rewrites chain 0's row 120 unseen by the chain; how many checkpoints it signed again."""
    row = store.arrow(f"SELECT details FROM {AUDIT_LOG} WHERE chain = 0 AND seq = 120").to_pylist()[0]
    return rewrite_and_resign(store, 0, 120, {"rewritten": row["details"], "value_wei": "9" * 20}, KEY, LOG_NAME)


def test_an_intact_witnessed_ledger_verifies_with_every_cosignature(ledger: tuple[ChdbStore, NoteKey]) -> None:
    store, witness = ledger
    report = verify(store, PUBLIC, log_name=LOG_NAME, witnesses=[witness])
    assert report.ok, [p.describe() for p in report.problems]
    assert {c: held[witness.name].checkpoints for c, held in report.cosigned.items()} == {0: 10, 1: 10}
    assert report.to_dict()["chains"][0]["cosigned"] == {witness.name: {"checkpoints": 10, "last_seq": 499}}
    # Not pinned: its lines are counted as unchecked, never believed.
    assert verify(store, PUBLIC, log_name=LOG_NAME).unchecked_cosignatures == 20


def test_a_rewrite_signed_again_with_the_ledgers_key_is_named_by_the_witness(ledger: tuple[ChdbStore, NoteKey]) -> None:
    store, witness = ledger
    assert _rogue_rewrite(store) == 8  # the checkpoints at seq 149..499
    # What verify saw before: every hash and log signature agree.
    assert verify(store, PUBLIC, log_name=LOG_NAME).ok
    report = verify(store, PUBLIC, log_name=LOG_NAME, witnesses=[witness])
    assert not report.ok
    (problem,) = report.problems
    assert (problem.chain, problem.seq, problem.kind, problem.witness) == (
        0,
        149,
        REWRITTEN_AFTER_WITNESSING,
        witness.name,
    )
    assert "rewritten after witnessing" in problem.reason and "checkpoint of 150 rows" in problem.reason
    assert "rows after seq 99 up to seq 149" in problem.reason and "7 later checkpoint(s)" in problem.reason
    assert report.to_dict()["problems"][0]["witness"] == witness.name
    assert report.cosigned[0][witness.name].last_seq == 99 and report.cosigned[1][witness.name].checkpoints == 10


def test_a_cosignature_whose_checkpoint_was_removed_disagrees(ledger: tuple[ChdbStore, NoteKey]) -> None:
    store, witness = ledger
    store.execute(f"ALTER TABLE {AUDIT_CHECKPOINTS} DELETE WHERE chain = 1 AND seq = 499 SETTINGS mutations_sync = 2")
    (problem,) = verify(store, PUBLIC, log_name=LOG_NAME, witnesses=[witness]).problems
    assert (problem.chain, problem.seq, problem.kind) == (1, 499, REWRITTEN_AFTER_WITNESSING)
    assert "no checkpoint is stored at that seq any more" in problem.reason


def _older_receipt(store: ChdbStore, seq: int, checkpoint_seq: int) -> Receipt:
    """The receipt a client was given when checkpoint ``checkpoint_seq`` was the chain's newest."""
    event = store.arrow(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {AUDIT_LOG} WHERE chain = 0 AND seq = {seq}"
    ).to_pylist()[0]
    (cp,) = [cp for cp, _ in load_checkpoints(store, 0) if cp.seq == checkpoint_seq]
    lines = store.arrow(
        f"SELECT line FROM {AUDIT_NOTE_SIGNATURES} WHERE chain = 0 AND seq = {checkpoint_seq} ORDER BY line"
    ).column("line")
    note = Note(cp.text(LOG_NAME), tuple(Signature.from_line(line) for line in [cp.signature, *lines.to_pylist()]))
    path = inclusion_path(chain_leaves(store, 0, cp.tree_size), seq)
    return Receipt(seq, tuple(path), note, orjson.dumps({**event, "ts": format_ts(event["ts"])}))


@pytest.mark.parametrize("kept_at", [499, 149])
def test_a_kept_receipt_names_the_rewrite_even_with_the_cosignatures_deleted(
    ledger: tuple[ChdbStore, NoteKey], kept_at: int
) -> None:
    store, witness = ledger
    if kept_at == 499:
        receipt = build_receipt(store, _event_at(store, 0, 130), LOG_NAME)  # what `warden audit receipt` prints
    else:
        receipt = _older_receipt(store, 130, kept_at)
    kept = kept_receipt("kept/receipt-1", receipt.text, LOG, [witness])
    assert kept.checkpoint.size == kept_at + 1
    if kept_at == 149:
        # Its checkpoint is no longer stored: the newer one must be shown to extend it.
        store.execute(
            f"ALTER TABLE {AUDIT_CHECKPOINTS} DELETE WHERE chain = 0 AND seq = 149 SETTINGS mutations_sync = 2"
        )
    assert verify(store, PUBLIC, log_name=LOG_NAME, receipts=[kept]).ok  # it agrees with the intact store

    _rogue_rewrite(store)
    # The thorough operator deletes the witness's cosignatures of what was rewritten as well.
    store.execute(
        f"ALTER TABLE {AUDIT_NOTE_SIGNATURES} DELETE WHERE chain = 0 AND seq >= 120 AND signer = '{witness.vkey}' "
        "SETTINGS mutations_sync = 2"
    )
    assert verify(store, PUBLIC, log_name=LOG_NAME, witnesses=[witness]).ok  # the limit docs/known-limits.md names
    report = verify(store, PUBLIC, log_name=LOG_NAME, witnesses=[witness], receipts=[kept])
    (problem,) = report.problems
    assert (problem.chain, problem.seq, problem.kind, problem.receipt) == (
        0,
        kept_at,
        REWRITTEN_AFTER_WITNESSING,
        "kept/receipt-1",
    )
    assert "rewritten after witnessing" in problem.reason and "kept/receipt-1" in problem.reason
    assert report.to_dict()["problems"][0]["receipt"] == "kept/receipt-1"


def test_a_receipt_past_the_stored_checkpoints_is_checked_against_the_rows(ledger: tuple[ChdbStore, NoteKey]) -> None:
    store, _ = ledger
    kept = kept_receipt("r", build_receipt(store, _event_at(store, 1, 10), LOG_NAME).text, LOG, [])
    store.execute(f"ALTER TABLE {AUDIT_CHECKPOINTS} DELETE WHERE chain = 1 AND seq >= 149 SETTINGS mutations_sync = 2")
    assert verify(store, PUBLIC, log_name=LOG_NAME, receipts=[kept]).ok
    store.execute(f"ALTER TABLE {AUDIT_LOG} DELETE WHERE chain = 1 AND seq >= 490 SETTINGS mutations_sync = 2")
    (problem,) = verify(store, PUBLIC, log_name=LOG_NAME, receipts=[kept]).problems
    assert (problem.seq, problem.receipt) == (499, "r") and "holds 490 rows" in problem.reason


def test_a_receipt_the_log_did_not_sign_is_no_evidence(ledger: tuple[ChdbStore, NoteKey]) -> None:
    store, witness = ledger
    text = build_receipt(store, _event_at(store, 0, 5), LOG_NAME).text
    with pytest.raises(NoteError, match="kept/r2 does not hold under the log's key"):
        kept_receipt("kept/r2", text, log_key(LOG_NAME, Ed25519PrivateKey.generate()), [witness])
