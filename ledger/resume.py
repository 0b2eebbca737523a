"""Resuming the ledger from the store: the chain heads, Merkle frontiers, Kafka offsets and event
ids the store proves, and the latest signed checkpoints. Nothing is trusted from memory; a chain
the store shows truncated or with a gap is refused, never appended onto."""

from __future__ import annotations

from ledger import checkpoint as checkpoints
from ledger.append import ChainHead, Ledger, SeenIds
from ledger.merkle import Frontier
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG, ID_HASH64_SQL
from ledger.store import Store, StoreError


class ResumeRefused(StoreError):
    pass


def resume(store: Store) -> Ledger:
    """The ledger state the store proves: nothing is trusted from memory."""
    heads: dict[int, ChainHead] = {}
    last = store.arrow(
        f"SELECT chain, max(seq) AS last_seq, argMax(integrity_hash, seq) AS head FROM {AUDIT_LOG} GROUP BY chain"
    )
    cps = store.arrow(
        f"SELECT chain, seq, frontier FROM {AUDIT_CHECKPOINTS} ORDER BY chain, seq DESC LIMIT 1 BY chain"
    ).to_pylist()
    cp_by_chain = {row["chain"]: row for row in cps}
    for row in last.to_pylist():
        chain, seq = row["chain"], row["last_seq"]
        cp = cp_by_chain.pop(chain, None)
        if cp is not None and cp["seq"] > seq:
            raise ResumeRefused(_truncated(chain, seq, cp["seq"]))
        frontier = Frontier(cp["seq"] + 1, [bytes.fromhex(n) for n in cp["frontier"]]) if cp else Frontier()
        leaves = store.arrow(
            f"SELECT integrity_hash FROM {AUDIT_LOG} WHERE chain = {chain} AND seq >= {frontier.size} ORDER BY seq"
        ).column("integrity_hash")
        for leaf in leaves.to_pylist():
            frontier.append(bytes.fromhex(leaf))
        if frontier.size != seq + 1:
            raise ResumeRefused(
                f"chain {chain} has a gap (seq {seq} is its last row but {frontier.size} rows lead to it); "
                f"run `warden audit verify --chain {chain}` to find the missing rows and restore them from a backup"
            )
        heads[chain] = ChainHead(
            chain,
            next_seq=seq + 1,
            head_hash=row["head"],
            frontier=frontier,
            checkpoint_seq=cp["seq"] if cp else -1,
        )
    if cp_by_chain:
        chain, cp = next(iter(cp_by_chain.items()))
        raise ResumeRefused(_truncated(chain, -1, cp["seq"]))
    fps = store.arrow(f"SELECT {ID_HASH64_SQL} AS fp FROM {AUDIT_LOG}").column("fp").to_numpy()
    return Ledger(heads, SeenIds(fps), next_offsets(store))


def next_offsets(store: Store) -> dict[int, int]:
    """Per partition of warden.audit.events, the offset after the last record the store holds rows of."""
    rows = store.arrow(
        f"SELECT source_partition AS p, max(source_offset) AS o FROM {AUDIT_LOG} GROUP BY source_partition"
    ).to_pylist()
    return {row["p"]: row["o"] + 1 for row in rows}


def _truncated(chain: int, seq: int, signed: int) -> str:
    return (
        f"chain {chain} ends at seq {seq} but a signed checkpoint covers seq {signed}: rows were deleted from "
        f"{AUDIT_LOG}. The sink will not append onto a truncated chain; run `warden audit verify --chain {chain}` "
        "and restore the rows from a backup or a witness's copy"
    )


def latest_checkpoints(store: Store) -> list[checkpoints.Checkpoint]:
    rows = store.arrow(
        f"SELECT chain, seq, head_hash, merkle_root, ts, signature FROM {AUDIT_CHECKPOINTS} "
        "ORDER BY chain, seq DESC LIMIT 1 BY chain"
    ).to_pylist()
    return [checkpoints.Checkpoint.from_row(row) for row in rows]
