"""Tampering with a real chDB ledger, each way the issue names: verify detects
it and names the first bad row and why."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pyarrow.lib import Table

from ledger import checkpoint, merkle
from ledger.batch import checkpoint_table
from ledger.chain import integrity_hash
from ledger.chain_check import ChainProblem
from ledger.keys import public_key_hex
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG, DDL, INTEGRITY_HASH_SQL
from ledger.store import ChdbPairHasher, ChdbStore
from ledger.verify import VerifyReport, verify
from schemas.actions import AuditAction
from tests.ledger_support import LOG_NAME, T0, build_ledger, mth, pipeline_events

KEY = Ed25519PrivateKey.generate()
PUBLIC = bytes.fromhex(public_key_hex(KEY))
EVENTS = pipeline_events(1_000)  # two chains of 500 rows, a checkpoint every 50


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChdbStore, Table, Table]]:
    store = ChdbStore(tmp_path_factory.mktemp("ledger") / "clickhouse")
    store.ensure_schema()
    build_ledger(store, EVENTS, KEY)
    log = store.arrow(f"SELECT * FROM {AUDIT_LOG} ORDER BY chain, seq")
    cps = store.arrow(f"SELECT * FROM {AUDIT_CHECKPOINTS} ORDER BY chain, seq")
    yield store, log, cps
    store.close()


@pytest.fixture
def store(pristine: tuple[ChdbStore, Table, Table]) -> ChdbStore:
    store, log, cps = pristine
    for table in (AUDIT_LOG, AUDIT_CHECKPOINTS):
        store.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in DDL:
        store.execute(statement)
    store.insert(AUDIT_LOG, log)
    store.insert(AUDIT_CHECKPOINTS, cps)
    return store


def _row(store: ChdbStore, chain: int, seq: int) -> dict[str, Any]:
    row: dict[str, Any] = store.arrow(f"SELECT * FROM {AUDIT_LOG} WHERE chain = {chain} AND seq = {seq}").to_pylist()[0]
    return row


def _mutate(store: ChdbStore, sql: str) -> None:
    store.execute(f"{sql} SETTINGS mutations_sync = 2")


def _renumber(store: ChdbStore, chain: int, where: str, new_seq: Callable[[int], int]) -> None:
    """Move rows to other seqs the way a writer must (seq is a key column):
    read them, delete them, insert them back renumbered."""
    rows = store.arrow(f"SELECT * FROM {AUDIT_LOG} WHERE chain = {chain} AND {where}")
    moved = rows.to_pylist()
    for row in moved:
        row["seq"] = new_seq(row["seq"])
    _mutate(store, f"ALTER TABLE {AUDIT_LOG} DELETE WHERE chain = {chain} AND {where}")
    store.insert(AUDIT_LOG, pa.Table.from_pylist(moved, schema=rows.schema))


def _only_problem(report: VerifyReport) -> ChainProblem:
    assert not report.ok
    assert len(report.problems) == 1, [p.describe() for p in report.problems]
    return report.problems[0]


def test_sql_and_python_compute_the_same_hash_for_awkward_fields(store: ChdbStore) -> None:
    # Separators, escapes, quotes and non-ASCII in every text field.
    awkward = {
        "event_id": "e|1%7C",
        "actor": "agent:a|b",
        "action": "x%25|y",
        "resource": "key:m/44'/60'|0",
        "intent_id": "ü|€",
        "agent_id": "\\n|",
    }
    _mutate(
        store,
        "ALTER TABLE audit_log UPDATE "
        + ", ".join(
            f"{k} = '{v.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'" for k, v in awkward.items()
        )
        + " WHERE chain = 0 AND seq = 3",
    )
    row = _row(store, 0, 3)
    python = integrity_hash(
        row["prev_hash"],
        row["event_id"],
        row["actor"],
        row["action"],
        row["resource"],
        row["ts"],
        row["details"],
        row["intent_id"],
        row["agent_id"],
    )
    sql = store.arrow(f"SELECT {INTEGRITY_HASH_SQL} AS h FROM {AUDIT_LOG} WHERE chain = 0 AND seq = 3").to_pylist()[0][
        "h"
    ]
    assert row["event_id"] == awkward["event_id"] and python == sql != row["integrity_hash"]


def test_intact_ledger_verifies(store: ChdbStore) -> None:
    report = verify(store, PUBLIC)
    assert report.ok, [p.describe() for p in report.problems]
    assert report.rows == 1_000
    assert [c.checkpoints for c in report.chains] == [10, 10]
    assert report.to_dict()["problems"] == []


def test_modified_field_names_the_row(store: ChdbStore) -> None:
    victim = _row(store, 1, 123)
    _mutate(store, "ALTER TABLE audit_log UPDATE actor = 'agent:mallory' WHERE chain = 1 AND seq = 123")
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.chain, problem.seq, problem.kind, problem.event_id) == (1, 123, "modified", victim["event_id"])


def test_modified_details_names_the_row(store: ChdbStore) -> None:
    seq = store.arrow(
        "SELECT seq FROM audit_log WHERE chain = 0 AND action = 'tx.signed' ORDER BY seq LIMIT 1 OFFSET 20"
    ).to_pylist()[0]["seq"]
    _mutate(
        store,
        f"""ALTER TABLE audit_log UPDATE details = replaceOne(details, '10000000000000000', '90000000000000000')
                       WHERE chain = 0 AND seq = {seq}""",
    )
    assert _row(store, 0, seq)["details"].count("90000000000000000") == 1
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.seq, problem.kind) == (seq, "modified")


def test_deleted_row_names_the_gap(store: ChdbStore) -> None:
    _mutate(store, "ALTER TABLE audit_log DELETE WHERE chain = 0 AND seq = 77")
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.chain, problem.seq, problem.kind) == (0, 77, "deleted")
    assert "77..77 are missing" in problem.reason


def test_inserted_row_with_a_taken_seq_names_the_intruder(store: ChdbStore) -> None:
    row = _row(store, 1, 40)
    store.execute("""INSERT INTO audit_log SELECT * REPLACE ('forged-event' AS event_id, 'agent:mallory' AS actor)
                      FROM audit_log WHERE chain = 1 AND seq = 40""")
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.chain, problem.seq, problem.kind, problem.event_id) == (1, 40, "inserted", "forged-event")
    assert row["event_id"] != "forged-event"


def test_inserted_row_with_renumbering_names_the_intruder(store: ChdbStore) -> None:
    # A careful forger: shifts later rows up and gives the new row a correct
    # hash that links to its predecessor. The next row still links past it.
    _renumber(store, 0, "seq >= 310", lambda seq: seq + 1)
    before = _row(store, 0, 309)
    forged_hash = integrity_hash(
        before["integrity_hash"], "forged", "agent:mallory", AuditAction.TX_SIGNED, "intent:x", T0, "{}", "x", "agent-0"
    )
    store.execute(f"""INSERT INTO audit_log SELECT * REPLACE (toUInt64(310) AS seq, 'forged' AS event_id,
        'agent:mallory' AS actor, 'tx.signed' AS action, 'intent:x' AS resource, toDateTime64('{T0:%Y-%m-%d %H:%M:%S}', 6, 'UTC') AS ts,
        '{{}}' AS details, 'x' AS intent_id, 'agent-0' AS agent_id, integrity_hash AS prev_hash, '{forged_hash}' AS integrity_hash)
        FROM (SELECT * FROM audit_log WHERE chain = 0 AND seq = 309)""")
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.seq, problem.kind, problem.event_id) == (310, "inserted", "forged")


def test_reordered_rows_name_the_first_moved_row(store: ChdbStore) -> None:
    first, second = _row(store, 1, 250), _row(store, 1, 253)
    _renumber(store, 1, "seq IN (250, 253)", lambda seq: 503 - seq)
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.chain, problem.seq, problem.kind, problem.event_id) == (1, 250, "reordered", second["event_id"])
    assert first["event_id"] != second["event_id"]


def test_adjacent_swap_is_reordered_not_inserted(store: ChdbStore) -> None:
    moved = _row(store, 0, 8)
    _renumber(store, 0, "seq IN (7, 8)", lambda seq: 15 - seq)
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.seq, problem.kind, problem.event_id) == (7, "reordered", moved["event_id"])


def test_truncated_tail_is_caught_by_the_last_checkpoint(store: ChdbStore) -> None:
    _mutate(store, "ALTER TABLE audit_log DELETE WHERE chain = 1 AND seq >= 480")
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.chain, problem.seq, problem.kind) == (1, 480, "truncated")
    assert "480..499" in problem.reason


def test_forged_checkpoint_is_named(store: ChdbStore) -> None:
    _mutate(
        store, f"""ALTER TABLE {AUDIT_CHECKPOINTS} UPDATE merkle_root = '{"ab" * 32}' WHERE chain = 0 AND seq = 149"""
    )
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.chain, problem.seq, problem.kind) == (0, 149, "forged_checkpoint")


def test_checkpoint_signed_by_another_key_is_forged(store: ChdbStore) -> None:
    head = _row(store, 1, 499)
    mallory = Ed25519PrivateKey.generate()
    forged = checkpoint.sign(mallory, LOG_NAME, 1, 499, head["integrity_hash"], "00" * 32, T0 + timedelta(days=1))
    store.insert(AUDIT_CHECKPOINTS, checkpoint_table([(forged, ())]))
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.chain, problem.seq, problem.kind) == (1, 499, "forged_checkpoint")


def test_rehashed_chain_is_caught_by_signed_checkpoints(store: ChdbStore) -> None:
    # Whoever can write the table can recompute every later hash; the signed
    # checkpoints are what they cannot redo.
    _mutate(store, "ALTER TABLE audit_log UPDATE actor = 'agent:mallory' WHERE chain = 0 AND seq = 120")
    rows = store.arrow(f"SELECT * FROM {AUDIT_LOG} WHERE chain = 0 AND seq >= 120 ORDER BY seq").to_pylist()
    prev = _row(store, 0, 119)["integrity_hash"]
    for row in rows:
        new = integrity_hash(
            prev,
            row["event_id"],
            row["actor"],
            row["action"],
            row["resource"],
            row["ts"],
            row["details"],
            row["intent_id"],
            row["agent_id"],
        )
        row["prev_hash"], row["integrity_hash"], prev = prev, new, new
    _mutate(store, "ALTER TABLE audit_log DELETE WHERE chain = 0 AND seq >= 120")
    store.insert(AUDIT_LOG, pa.Table.from_pylist(rows, schema=store.arrow(f"SELECT * FROM {AUDIT_LOG} LIMIT 0").schema))
    problem = _only_problem(verify(store, PUBLIC))
    assert (problem.chain, problem.seq, problem.kind) == (0, 100, "rewritten")
    assert "seq 149" in problem.reason


def test_verify_since_starts_at_a_checkpoint_and_still_catches_tampering(store: ChdbStore) -> None:
    since = T0 + timedelta(seconds=150)
    clean = verify(store, PUBLIC, since=since)
    assert clean.ok and 0 < clean.rows < 1_000
    assert all(c.first_seq is not None and c.first_seq % 50 == 0 and c.first_seq > 0 for c in clean.chains)
    _mutate(store, "ALTER TABLE audit_log UPDATE resource = 'intent:other' WHERE chain = 0 AND seq = 450")
    problem = _only_problem(verify(store, PUBLIC, chains=[0], since=since))
    assert (problem.seq, problem.kind) == (450, "modified")
    early = verify(store, PUBLIC, chains=[0], until=T0 + timedelta(seconds=100))
    assert early.ok and early.rows < 500


def test_clickhouse_hashes_merkle_pairs_in_order(pristine: tuple[ChdbStore, Table, Table]) -> None:
    """verify has ClickHouse hash the big levels of its Merkle fold. Each node must be
    SHA-256(0x01 || left || right) of its own pair, in input order: past ~100k rows ClickHouse
    reorders the rows of the Python() table unless it reads them on one thread."""
    hasher = pristine[0].pair_hasher()
    try:
        for count in (ChdbPairHasher.MIN_PAIRS - 1, ChdbPairHasher.MIN_PAIRS, 150_000):
            pairs = b"".join(hashlib.sha512(i.to_bytes(4, "big")).digest() for i in range(count))
            expected = b"".join(hashlib.sha256(b"\x01" + pairs[i : i + 64]).digest() for i in range(0, len(pairs), 64))
            assert hasher(memoryview(pairs)) == expected, count
    finally:
        hasher.close()


@pytest.mark.parametrize("start", [0, 1, 3, 4097])
def test_a_merkle_fold_hashed_by_clickhouse_gives_the_rfc_tree_hash(
    pristine: tuple[ChdbStore, Table, Table], start: int
) -> None:
    data = [hashlib.sha256(str(i).encode()).digest() for i in range(10_000)]
    frontier = merkle.Frontier()
    for d in data[:start]:
        frontier.append(d)
    wanted = [start + 1, 4096, 5000, 8191, 8192, 9999, 10_000]
    hasher = pristine[0].pair_hasher()
    try:
        roots = frontier.extend(b"".join(merkle.leaf_hash(d) for d in data[start:]), wanted, hasher)
    finally:
        hasher.close()
    assert roots == {m: mth(data[:m]) for m in wanted if m > start}
