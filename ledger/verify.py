"""``warden audit verify``: replay each chain against its signed checkpoints.

Per chain, in seq order, every row must (1) hash to its ``integrity_hash``
(ClickHouse recomputes the chain encoding next to the data, in parallel), (2)
carry the previous row's hash as ``prev_hash`` (the genesis hash for seq 0), and
(3) have the next seq. Every checkpoint must be a C2SP note the log signed (its
stored signature line verifies over its note text under the log's verifier key,
the vkey the verifier trusts), name a row whose hash is its head_hash, and have
as merkle_root the RFC 9162 tree hash of the rows up to it. A row that
fails is named with the reason, classified as:

- ``modified``: its fields do not hash to its integrity_hash;
- ``deleted``: seqs are missing (or a row's prev_hash matches no row);
- ``inserted``: a row the chain does not link (a second row with a seq, or one
  the next row links past);
- ``reordered``: a row links to a row other than its predecessor;
- ``truncated``: the chain ends before a signed checkpoint does;
- ``rewritten``: rows whose hashes were recomputed to look consistent, caught
  by a checkpoint's head_hash or signed merkle_root that no longer matches;
- ``forged_checkpoint``: a checkpoint whose note signature (the one witnesses cosigned and
  receipts carry) does not verify under the log's key over the note the checkpoint is;
- ``rewritten_after_witnessing``: a pinned witness's cosignature that no longer verifies over the
  checkpoint stored at its seq, or a kept receipt whose tree the store no longer holds
  (`ledger.witnessed`): caught even when every hash and every log signature agree, as they do
  after the key's holder rewrote rows and signed the checkpoints again.

The arithmetic is in ``ChainCheck`` (`ledger/chain_check.py`: pure, fed arrays); ``verify``
plans each chain from its valid checkpoints and pages rows out of the store, fetching the next page
while the current one is checked, into the ``VerifyReport`` the CLI prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from ledger.chain import format_ts, genesis_hash
from ledger.chain_check import ChainCheck, ChainProblem, ChainResult, Page
from ledger.checkpoint import Checkpoint, signature_problem
from ledger.merkle import Frontier, PairHasher, hash_pairs
from ledger.note import ED25519, NoteKey
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG, INTEGRITY_HASH_SQL, LEAF_HASH_SQL
from ledger.store import Store, sql_string
from ledger.witnessed import (
    Cosigned,
    KeptReceipt,
    cosignature_lines,
    cosignature_problems,
    receipt_problem,
    unchecked_cosignatures,
)
from schemas.actions import AuditAction

# Rows per page: small enough that the first page arrives (and the last is folded) while the other
# core works, large enough that a query's fixed cost is noise. A power of two: a page that starts
# at a multiple of it is one perfect Merkle subtree.
PAGE_ROWS = 1 << 17


@dataclass
class VerifyReport:
    chains: list[ChainResult]
    log_key: str  # the vkey the checkpoints were checked under
    seconds: float = 0.0
    witnesses: list[str] = field(default_factory=list)  # the pinned witnesses' names
    cosigned: dict[int, dict[str, Cosigned]] = field(default_factory=dict)  # chain → witness → what holds
    receipts: int = 0  # kept receipts checked against the store
    unchecked_cosignatures: int = 0  # signature lines of signers not pinned: not checked

    @property
    def ok(self) -> bool:
        return not any(c.problems for c in self.chains)

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.chains)

    @property
    def problems(self) -> list[ChainProblem]:
        return [p for c in self.chains for p in c.problems]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows_checked": self.rows,
            "checkpoints_checked": sum(c.checkpoints for c in self.chains),
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds) if self.seconds else None,
            "log_key": self.log_key,
            "witnesses": self.witnesses,
            "receipts_checked": self.receipts,
            "unchecked_cosignatures": self.unchecked_cosignatures,
            "chains": [
                {
                    "chain": c.chain,
                    "rows": c.rows,
                    "first_seq": c.first_seq,
                    "last_seq": c.last_seq,
                    "checkpoints": c.checkpoints,
                    "last_checkpoint_seq": c.last_checkpoint_seq,
                    "uncovered_rows": c.uncovered_rows,
                    "cosigned": {name: asdict(held) for name, held in self.cosigned.get(c.chain, {}).items()},
                }
                for c in self.chains
            ],
            "problems": [asdict(p) for p in self.problems],
        }


def _fixed32(column: pa.ChunkedArray) -> np.ndarray:
    """A FixedString(32) column as numpy V32 values, without a Python object per row."""
    array = column.combine_chunks()
    if len(array) == 0:
        return np.empty(0, dtype="V32")
    if array.type != pa.binary(32):
        # A ClickHouse client may hand FixedString over as variable-length binary.
        array = pa.array(array.to_pylist(), type=pa.binary(32))
    return np.frombuffer(array.buffers()[1], dtype="V32", count=len(array), offset=array.offset * 32)


def _page_sql(chain: int, lo: int, hi: int, order: str) -> str:
    return (
        f"SELECT seq, ({INTEGRITY_HASH_SQL}) = integrity_hash AS ok, "
        "toFixedString(substring(unhex(prev_hash), 1, 32), 32) AS p, "
        "toFixedString(substring(unhex(integrity_hash), 1, 32), 32) AS h, "
        f"toFixedString({LEAF_HASH_SQL}, 32) AS leaf "
        f"FROM {AUDIT_LOG} WHERE chain = {chain} AND seq >= {lo} AND seq < {hi} ORDER BY {order}"
    )


def _ts_sql(ts: datetime) -> str:
    return f"toDateTime64('{format_ts(ts)[:-1].replace('T', ' ')}', 6, 'UTC')"


def load_checkpoints(store: Store, chain: int | None = None) -> list[tuple[Checkpoint, list[str]]]:
    where = f"WHERE chain = {chain}" if chain is not None else ""
    rows = store.arrow(
        "SELECT chain, seq, head_hash, merkle_root, ts, signature, frontier "
        f"FROM {AUDIT_CHECKPOINTS} {where} ORDER BY chain, seq, signature"
    ).to_pylist()
    return [(Checkpoint.from_row(row), row["frontier"]) for row in rows]


def verify(
    store: Store,
    public_key: bytes,
    chains: list[int] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    log_name: str = "warden.local/audit",
    witnesses: Sequence[NoteKey] = (),
    receipts: Sequence[KeptReceipt] = (),
) -> VerifyReport:
    """``witnesses``: the witness keys the verifier pins (their stored cosignatures are checked);
    ``receipts``: receipts clients kept (`ledger.witnessed.kept_receipt`), checked against the store."""
    started = time.perf_counter()
    log = NoteKey(log_name, ED25519, public_key)
    report = VerifyReport([], log.vkey, witnesses=[w.name for w in witnesses], receipts=len(receipts))
    if chains is None:
        chains = _chains_to_check(store, receipts)
    report.unchecked_cosignatures = unchecked_cosignatures(store, [log, *witnesses])
    # Two connections when the store allows: each chain's plan (its checkpoints' signatures
    # verify outside the GIL) and then the pages are fetched on both, ahead of this thread,
    # which checks the page before: ClickHouse hashes rows while this thread folds the Merkle
    # tree (with the store's pair hasher where it has one).
    sibling = store.sibling()
    handles = [store] if sibling is None else [store, sibling]
    pair_hasher = None
    try:
        pair_hasher = store.pair_hasher()
        hasher = hash_pairs if pair_hasher is None else pair_hasher
        with ThreadPoolExecutor(max_workers=len(handles)) as fetcher:
            # Each chain's plan, the chains spread over the handles, all submitted before any is awaited.
            planned = [
                fetcher.submit(
                    _plan,
                    handles[k % len(handles)],
                    chain,
                    public_key,
                    since,
                    until,
                    report,
                    hasher,
                    log_name,
                    witnesses,
                    [kept for kept in receipts if kept.chain == chain],
                )
                for k, chain in enumerate(chains)
            ]
            plans = [future.result() for future in planned]
            _check_pages(fetcher, handles, plans, progress)
    finally:
        if sibling is not None:
            sibling.close()
        if pair_hasher is not None:
            pair_hasher.close()
    for check, _ in plans:
        report.chains.append(check.finish())
    report.seconds = time.perf_counter() - started
    return report


def _chains_to_check(store: Store, receipts: Sequence[KeptReceipt]) -> list[int]:
    """Every chain the store holds rows or checkpoints of, and every kept receipt's chain."""
    listed = store.arrow(
        f"SELECT DISTINCT chain FROM (SELECT chain FROM {AUDIT_LOG} UNION ALL SELECT chain FROM {AUDIT_CHECKPOINTS}) ORDER BY chain"
    )
    chains = [int(c) for c in listed.column("chain").to_pylist()] if listed.num_rows else []
    # A receipt's chain the store no longer holds at all is checked too: it disagrees.
    return sorted(set(chains) | {kept.chain for kept in receipts})


def _check_pages(
    fetcher: ThreadPoolExecutor,
    handles: list[Store],
    plans: list[tuple[ChainCheck, tuple[int, int]]],
    progress: Callable[[int, int], None] | None,
) -> None:
    """Feeds every planned page to its chain's check in order, one page per handle fetched ahead."""
    total = sum(max(0, hi - lo) for _, (lo, hi) in plans)
    done = 0
    pages = [
        (check, page_lo, min(page_lo + PAGE_ROWS, hi))
        for check, (lo, hi) in plans
        for page_lo in range(lo, hi, PAGE_ROWS)
    ]
    ahead = len(handles)
    futures = [
        fetcher.submit(_fetch, handles[k % len(handles)], *_page_args(pages[k])) for k in range(min(ahead, len(pages)))
    ]
    for k, (check, lo, hi) in enumerate(pages):
        page = futures[k].result()
        if k + ahead < len(pages):
            futures.append(fetcher.submit(_fetch, handles[(k + ahead) % len(handles)], *_page_args(pages[k + ahead])))
        check.feed(page)
        done += hi - lo
        if progress:
            progress(done, total)


def _page_args(page: tuple[ChainCheck, int, int]) -> tuple[int, int, int]:
    check, lo, hi = page
    return check.result.chain, lo, hi


def _fetch(store: Store, chain: int, lo: int, hi: int) -> Page:
    # ORDER BY seq reads the table in its key order; breaking ties by event_id as well costs a
    # third more, and ties exist only where a row was inserted: then the page is read again so.
    table = store.arrow(_page_sql(chain, lo, hi, "seq"))
    seq = table.column("seq").to_numpy()
    if len(seq) > 1 and bool((seq[1:] == seq[:-1]).any()):
        table = store.arrow(_page_sql(chain, lo, hi, "seq, event_id"))
        seq = table.column("seq").to_numpy()

    def event_ids(seq: int) -> list[str]:
        found = store.arrow(f"SELECT event_id FROM {AUDIT_LOG} WHERE chain = {chain} AND seq = {seq} ORDER BY event_id")
        return [str(e) for e in found.column("event_id").to_pylist()]

    return Page(
        seq=seq,
        ok=table.column("ok").to_numpy().astype(bool),
        prev=_fixed32(table.column("p")),
        head=_fixed32(table.column("h")),
        leaf=_fixed32(table.column("leaf")).tobytes(),
        event_ids=event_ids,
    )


def _plan(
    store: Store,
    chain: int,
    public_key: bytes,
    since: datetime | None,
    until: datetime | None,
    report: VerifyReport,
    hasher: PairHasher,
    log_name: str,
    witnesses: Sequence[NoteKey],
    receipts: Sequence[KeptReceipt],
) -> tuple[ChainCheck, tuple[int, int]]:
    """Where to start and stop: the seq range the time range covers, widened
    down to the last valid checkpoint before it, whose head (a leaf of its signed root) anchors it."""
    valid: list[tuple[Checkpoint, list[str]]] = []
    forged: list[ChainProblem] = []
    log_key = NoteKey(log_name, ED25519, public_key)
    # The witnesses' lines before the checkpoints: a live sink stores a checkpoint before it asks
    # the witnesses, so every line read names a checkpoint the read below finds. Read after them, a
    # line of a checkpoint signed meanwhile named one not read, and looked like a rewrite.
    lines = cosignature_lines(store, chain, witnesses)
    loaded = load_checkpoints(store, chain)
    for cp, nodes in loaded:
        unsigned = signature_problem(cp, log_key)
        if unsigned is None:
            valid.append((cp, nodes))
        else:
            forged.append(
                ChainProblem(
                    chain,
                    cp.seq,
                    "forged_checkpoint",
                    f"the checkpoint for seq {cp.seq} (ts {format_ts(cp.ts)}): its note signature does not verify "
                    f"under the log's key {log_key.vkey} ({unsigned}): it was forged or altered",
                )
            )
    # What the witnesses and the receipts saw, against what is stored now.
    disagree, report.cosigned[chain] = cosignature_problems(chain, [cp for cp, _ in loaded], lines, witnesses, log_name)
    forged += disagree
    for kept in receipts:
        problem = receipt_problem(store, kept, [cp for cp, _ in valid])
        if problem is not None:
            forged.append(problem)
    filters = []
    if since is not None:
        filters.append(f"minIf(seq, ts >= {_ts_sql(since)})")
    else:
        filters.append("toUInt64(0)")
    if until is not None:
        filters.append(f"maxIf(seq, ts < {_ts_sql(until)})")
    else:
        filters.append("max(seq)")
    bounds = store.arrow(
        f"SELECT {filters[0]} AS lo, {filters[1]} AS hi, count() AS n FROM {AUDIT_LOG} WHERE chain = {chain}"
    ).to_pylist()[0]
    hi = int(bounds["hi"]) + 1 if bounds["n"] else 0
    lo = min(int(bounds["lo"]), hi) if since is not None else 0
    anchor = genesis_hash(chain)
    frontier = Frontier()
    start = 0
    for cp, nodes in reversed([(cp, f) for cp, f in valid if cp.seq < lo]):
        try:
            frontier = Frontier(cp.tree_size, [bytes.fromhex(n) for n in nodes])
        except ValueError:
            # The stored frontier is not signed; a damaged one just means
            # starting from an earlier checkpoint.
            continue
        start, anchor = cp.seq + 1, cp.head_hash
        break
    hi = max(hi, start) if until is not None else max(hi, start, max((cp.seq + 1 for cp, _ in valid), default=0))
    check = ChainCheck(chain, start, anchor, frontier, [cp for cp, _ in valid], until is None, hasher)
    check.result.problems.extend(forged)
    return check, (start, hi)


# How the reason of a record the sink did not believe begins (`ledger.batch.decode`), for those who count them.
NOT_BELIEVED = "not believed: "
# The ledger's own rows for the records it did not believe (`ledger.batch.decode`).
NOT_BELIEVED_SQL = (
    f"actor = 'service:ledger' AND action = 'dlq.recorded' "
    f"AND startsWith(JSONExtractString(details, 'reason'), {sql_string(NOT_BELIEVED)})"
)


def not_believed(store: Store, since: dict[int, int] | None = None) -> int:
    """How many records on warden.audit.events the ledger did not believe (unsigned, signed by a
    key it does not pin, or speaking as another service); ``since`` (partition → offset): only
    those from there on."""
    read_from = (
        " OR ".join(f"(source_partition = {int(p)} AND source_offset >= {int(o)})" for p, o in (since or {}).items())
        or "1"
    )
    counted: int = (  # count() is a UInt64: an int
        store.arrow(f"SELECT count() AS n FROM {AUDIT_LOG} WHERE {NOT_BELIEVED_SQL} AND ({read_from})")
        .column("n")[0]
        .as_py()
    )
    return counted


def source_changes(store: Store) -> list[dict[str, Any]]:
    """The ledger.source_changed events the sink appended: where the ledger may have a gap (its
    broker changed, and records the previous one held past the offsets it names were never
    appended)."""
    rows = store.arrow(
        f"SELECT ts, details FROM {AUDIT_LOG} WHERE action = {sql_string(AuditAction.LEDGER_SOURCE_CHANGED)} ORDER BY ts"
    ).to_pylist()
    return [{"ts": str(row["ts"]), **orjson.loads(row["details"])} for row in rows]
