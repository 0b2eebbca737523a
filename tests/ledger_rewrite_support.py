"""A rogue ledger operator, for the tests: one who holds the ledger's key and writes its store.

`rewrite_and_resign` changes one row's details and then redoes, with the key, everything the
ledger's own checks look at: the chain's hashes from that row on and every later checkpoint (head,
Merkle root, frontier and its C2SP note signature). Afterwards every hash chain and every log
signature agree; only what witnesses cosigned, or a receipt a client kept, differs.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import checkpoint as checkpoints
from ledger.batch import checkpoint_table
from ledger.chain import canonical_details, row_hash
from ledger.merkle import Frontier, tree_hash
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG
from ledger.store import Store, chain_leaves


def _mutate(store: Store, sql: str) -> None:
    store.execute(f"{sql} SETTINGS mutations_sync = 2")


def rewrite_and_resign(
    store: Store, chain: int, seq: int, details: dict[str, Any], key: Ed25519PrivateKey, log_name: str
) -> int:
    """Row ``seq`` of ``chain`` given ``details``, and the chain and its checkpoints made consistent
    again with ``key`` (the ledger's own). Returns how many checkpoints were signed again."""
    table = store.arrow(f"SELECT * FROM {AUDIT_LOG} WHERE chain = {chain} AND seq >= {seq} ORDER BY seq")
    rows = table.to_pylist()
    assert rows and rows[0]["seq"] == seq, f"chain {chain} has no row {seq}"
    rows[0]["details"] = canonical_details(details)
    prev = rows[0]["prev_hash"]
    for row in rows:
        row["prev_hash"] = prev
        row["integrity_hash"] = prev = row_hash(row)
    _mutate(store, f"ALTER TABLE {AUDIT_LOG} DELETE WHERE chain = {chain} AND seq >= {seq}")
    store.insert(AUDIT_LOG, pa.Table.from_pylist(rows, schema=table.schema))

    stale = store.arrow(
        f"SELECT seq, ts FROM {AUDIT_CHECKPOINTS} WHERE chain = {chain} AND seq >= {seq} ORDER BY seq"
    ).to_pylist()
    if not stale:
        return 0
    leaves = chain_leaves(store, chain, stale[-1]["seq"] + 1)
    heads = {row["seq"]: row["integrity_hash"] for row in rows}
    signed = []
    for old in stale:
        size = old["seq"] + 1
        frontier = Frontier()
        frontier.extend(leaves[:size])
        root = tree_hash(leaves[:size]).hex()
        cp = checkpoints.sign(key, log_name, chain, old["seq"], heads[old["seq"]], root, old["ts"])
        signed.append((cp, tuple(node.hex() for node in frontier.nodes)))
    _mutate(store, f"ALTER TABLE {AUDIT_CHECKPOINTS} DELETE WHERE chain = {chain} AND seq >= {seq}")
    store.insert(AUDIT_CHECKPOINTS, checkpoint_table(signed))
    return len(signed)
