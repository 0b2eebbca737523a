"""Checking one chain's rows, page by page, against their links and the checkpoints signed for them.

Pure arithmetic over arrays (numpy), no store: ``ChainCheck`` is fed ``Page``s in seq order and
stops at the first ``ChainProblem``, which it names with a kind (``modified``, ``deleted``,
``inserted``, ``reordered``, ``truncated``, ``rewritten``; `ledger.verify` adds
``forged_checkpoint`` and, from `ledger.witnessed`, ``rewritten_after_witnessing``) and the reason. `ledger.verify` pages the rows out of the store into it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ledger.chain import format_ts
from ledger.checkpoint import Checkpoint
from ledger.merkle import Frontier, PairHasher, hash_pairs


@dataclass(frozen=True)
class ChainProblem:
    """What `warden audit verify` found wrong at one row of one chain: its ``kind`` and ``reason``,
    and who disagrees with the store when a witness or a kept receipt does."""

    chain: int
    seq: int
    kind: str
    reason: str
    event_id: str | None = None
    # Who disagrees with the store (`ledger.witnessed`): a pinned witness's name, or a kept receipt's file.
    witness: str | None = None
    receipt: str | None = None

    def describe(self) -> str:
        row = f"chain {self.chain} seq {self.seq}" + (f" (event {self.event_id})" if self.event_id else "")
        return f"{row}: {self.kind}: {self.reason}"


@dataclass
class ChainResult:
    chain: int
    rows: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    last_checkpoint_seq: int | None = None
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def uncovered_rows(self) -> int:
        """Rows after the last checkpoint: protected by the chain alone until the next one."""
        if self.last_seq is None:
            return 0
        return self.last_seq - (self.last_checkpoint_seq if self.last_checkpoint_seq is not None else -1)


@dataclass
class Page:
    """Rows of one chain in (seq, event_id) order; hashes as 32-byte values (numpy V32), the
    Merkle leaf hashes concatenated (32 bytes per row)."""

    seq: np.ndarray
    ok: np.ndarray
    prev: np.ndarray
    head: np.ndarray
    leaf: bytes
    event_ids: Callable[[int], list[str]]

    def __len__(self) -> int:
        return len(self.seq)


def _v32(text_hex: str) -> np.void:
    value: np.void = np.frombuffer(bytes.fromhex(text_hex), dtype="V32")[0]  # one V32 element
    return value


def _event_id(page: Page, seq: list[int], j: int) -> str:
    """The event id of the page's row ``j`` (rows sharing a seq are told apart by their place)."""
    same = page.event_ids(seq[j])
    first = seq.index(seq[j])
    return same[j - first] if j - first < len(same) else ""


class ChainCheck:
    """Checks one chain from ``start`` on, page by page; stops at the first problem."""

    def __init__(
        self,
        chain: int,
        start: int,
        anchor: str,
        frontier: Frontier,
        checkpoints: list[Checkpoint],
        to_end: bool,
        hasher: PairHasher = hash_pairs,
    ) -> None:
        self.result = ChainResult(chain)
        self.next_seq = start
        self.frontier = frontier
        self.hasher = hasher
        # The hashes of the last two rows seen (or the anchor), newest last.
        self.recent: list[np.void] = [_v32(anchor)]
        self.pending = [cp for cp in checkpoints if cp.seq >= start]
        self.to_end = to_end
        self.last_good_checkpoint = start - 1
        self.done = False

    def feed(self, page: Page) -> None:
        if self.done or not len(page):
            return
        n = len(page)
        expected = np.arange(self.next_seq, self.next_seq + n, dtype=np.uint64)
        linked = np.empty(n, dtype=bool)
        linked[0] = page.prev[0] == self.recent[-1]
        linked[1:] = page.prev[1:] == page.head[:-1]
        bad = ~page.ok | ~linked | (page.seq != expected)
        first_bad = int(np.argmax(bad)) if bad.any() else n
        good = first_bad
        if self.result.first_seq is None:
            self.result.first_seq = self.next_seq
        if self._checkpoints(page, good):
            return
        self.result.rows += good
        if good:
            self.result.last_seq = int(page.seq[good - 1])
        if first_bad < n:
            self.result.problems.append(self._classify(page, first_bad))
            self.done = True
            return
        self.next_seq += n
        self.recent = [self.recent[-1] if n == 1 else page.head[-2], page.head[-1]]

    def _checkpoints(self, page: Page, good: int) -> bool:
        """Checks the checkpoints that fall on the page's good rows; True on a problem."""
        last = self.next_seq + good - 1
        here = [cp for cp in self.pending if cp.seq <= last]
        if not here and not good:
            return False
        roots = self.frontier.extend(memoryview(page.leaf)[: 32 * good], [cp.tree_size for cp in here], self.hasher)
        for cp in here:
            at = cp.seq - self.next_seq
            if page.head[at] != _v32(cp.head_hash):
                self._rewritten(cp, f"its hash differs from the head_hash signed at seq {cp.seq}")
                return True
            if roots[cp.tree_size].hex() != cp.merkle_root:
                self._rewritten(cp, f"the rows up to seq {cp.seq} do not hash to the merkle_root signed for them")
                return True
            self.result.checkpoints += 1
            self.result.last_checkpoint_seq = cp.seq
            self.last_good_checkpoint = cp.seq
        self.pending = self.pending[len(here) :]
        return False

    def _rewritten(self, cp: Checkpoint, why: str) -> None:
        first = self.last_good_checkpoint + 1
        self.result.problems.append(
            ChainProblem(
                self.result.chain,
                first,
                "rewritten",
                f"row seq {cp.seq}: {why}; the chain was rewritten at or after seq {first} "
                f"(the last checkpoint that still matches is at seq {self.last_good_checkpoint}) "
                "with hashes recomputed so the rows look consistent",
            )
        )
        self.done = True

    def _classify(self, page: Page, i: int) -> ChainProblem:
        """Names what went wrong at row ``i``, the page's first row that does not check."""
        chain = self.result.chain
        seq = [int(s) for s in page.seq]
        s = seq[i]
        expected = self.next_seq + i
        if s < expected:
            return self._second_claim(page, seq, i)
        if s > expected:
            return ChainProblem(
                chain,
                expected,
                "deleted",
                f"rows seq {expected}..{s - 1} are missing: deleted (the next row present is seq {s})",
            )
        misplaced = self._misplaced(page, seq, i)
        if misplaced is not None:
            return misplaced
        return self._unlinked(page, seq, i)

    def _second_claim(self, page: Page, seq: list[int], i: int) -> ChainProblem:
        """A seq already seen: which of the two rows claiming it was inserted."""
        s = seq[i]
        # A second row with a seq already seen: the genuine one is the one
        # the chain links into; the other was inserted.
        before = i - 1
        intruder = i if page.prev[before] == self._head_at(page, before - 1) and page.ok[before] else before
        return ChainProblem(
            self.result.chain,
            s,
            "inserted",
            f"two rows claim seq {s} and the chain links only one; this one was inserted",
            _event_id(page, seq, intruder),
        )

    def _misplaced(self, page: Page, seq: list[int], i: int) -> ChainProblem | None:
        """Rows reordered or inserted, told by what row ``i`` (or the next) links to; None if neither."""
        chain = self.result.chain
        s = seq[i]
        by_hash = {bytes(h): j for j, h in enumerate(page.head)}
        j = by_hash.get(bytes(page.prev[i]))
        if j is not None and j > i:
            return ChainProblem(
                chain,
                s,
                "reordered",
                f"it links to row seq {seq[j]}, which comes after it, instead of seq {s - 1}: rows were reordered",
                _event_id(page, seq, i),
            )
        if j is not None and j == i - 2 or (j is None and i < 2 and page.prev[i] == self._head_at(page, i - 2)):
            return ChainProblem(
                chain,
                s - 1,
                "inserted",
                f"row seq {s} links to seq {s - 2}, past this row: it was inserted (and later rows renumbered)",
                _event_id(page, seq, i - 1) if i >= 1 else None,
            )
        if j is not None and j < i - 2:
            return ChainProblem(
                chain,
                s,
                "reordered",
                f"it links to row seq {seq[j]} instead of seq {s - 1}: rows were reordered",
                _event_id(page, seq, i),
            )
        if i + 1 < len(page) and seq[i + 1] == s + 1 and page.prev[i + 1] == self._head_at(page, i - 1):
            return ChainProblem(
                chain,
                s,
                "inserted",
                f"row seq {s + 1} links to seq {s - 1}, past this row: it was inserted (and later rows renumbered)",
                _event_id(page, seq, i),
            )
        return None

    def _unlinked(self, page: Page, seq: list[int], i: int) -> ChainProblem:
        """Row ``i`` in its place but not checking: modified, or the row it should link to is gone."""
        chain = self.result.chain
        s = seq[i]
        if not page.ok[i]:
            return ChainProblem(
                chain,
                s,
                "modified",
                "its fields do not hash to its integrity_hash: a field (or the stored hash) was modified",
                _event_id(page, seq, i),
            )
        if s == 0:
            return ChainProblem(
                chain,
                0,
                "deleted",
                f"it does not start from chain {chain}'s genesis hash: the chain's first rows were deleted or replaced",
                _event_id(page, seq, i),
            )
        return ChainProblem(
            chain,
            s,
            "deleted",
            f"its prev_hash matches no row: row seq {s - 1} was deleted (and later rows renumbered), "
            "or replaced by a row with a recomputed hash",
            _event_id(page, seq, i),
        )

    def _head_at(self, page: Page, j: int) -> np.void | None:
        """The hash of the page's row ``j``; negative: of the rows before the page (None before the anchor)."""
        if j >= 0:
            head: np.void = page.head[j]  # page.head holds V32 values
            return head
        back = len(self.recent) + j
        return self.recent[back] if back >= 0 else None

    def finish(self) -> ChainResult:
        if not self.done and self.to_end and self.pending:
            cp = self.pending[-1]
            gone = self.next_seq
            self.result.problems.append(
                ChainProblem(
                    self.result.chain,
                    gone,
                    "truncated",
                    f"the chain ends at seq {gone - 1} but the checkpoint signed at {format_ts(cp.ts)} covers seq "
                    f"{cp.seq}: rows {gone}..{cp.seq} were deleted from the tail",
                )
            )
        return self.result
