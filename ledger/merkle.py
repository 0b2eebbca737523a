"""RFC 9162 (Certificate Transparency v2) Merkle trees over a chain's rows.

Leaf ``i`` of chain C is the row with ``seq = i``; its leaf data is the 32 raw
bytes of that row's ``integrity_hash``. A checkpoint at ``seq = S`` signs the
Merkle Tree Hash of leaves ``0..S`` (tree size ``S + 1``), so one checkpoint
proves every row up to it, and any RFC 9162 library can check our proofs:

    leaf_hash(d) = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)

Pure functions and one small accumulator; no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np

_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


# Hashes many node pairs at once: given ``left || right`` for each pair (64 bytes each,
# concatenated), returns ``node_hash(left, right)`` for each (32 bytes each, concatenated).
PairHasher = Callable[[memoryview], bytes]


def hash_pairs(pairs: memoryview | bytes) -> bytes:
    """The PairHasher in Python: ``0x01 || left || right`` for every pair built by numpy, then
    hashed in one tight hashlib loop (~0.55 µs a pair here, most of it the per-call cost)."""
    count = len(pairs) // 64
    joined = np.empty((count, 65), dtype=np.uint8)
    joined[:, 0] = 1
    joined[:, 1:] = np.frombuffer(pairs, dtype=np.uint8, count=64 * count).reshape(count, 64)
    buffer = joined.tobytes()
    sha = _sha256
    return b"".join([sha(buffer[i : i + 65]).digest() for i in range(0, len(buffer), 65)])


class Frontier:
    """The roots of the perfect subtrees covering the leaves seen so far (largest
    first): enough to append a leaf and compute the tree hash in O(log n), and
    small enough to store with a checkpoint so the sink resumes without
    re-reading the whole chain."""

    __slots__ = ("size", "nodes")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if len(nodes) != bin(size).count("1"):
            raise ValueError(f"a frontier of {size} leaves has {bin(size).count('1')} nodes, got {len(nodes)}")
        self.size = size
        self.nodes = list(nodes)

    def append_leaf_hash(self, leaf: bytes) -> None:
        self.append_subtree(leaf, 0)

    def append(self, data: bytes) -> None:
        self.append_leaf_hash(_sha256(b"\x00" + data).digest())

    def append_subtree(self, node: bytes, height: int) -> None:
        """Append the root of a perfect subtree of ``2**height`` leaves; the frontier's size
        must be a multiple of ``2**height`` (the subtree is aligned, as in RFC 9162's tree)."""
        if self.size & ((1 << height) - 1):
            raise ValueError(f"a subtree of 2**{height} leaves cannot start at leaf {self.size}")
        nodes = self.nodes
        n = self.size >> height
        h = node
        while n & 1:
            h = _sha256(b"\x01" + nodes.pop() + h).digest()
            n >>= 1
        nodes.append(h)
        self.size += 1 << height

    def extend(
        self,
        leaf_hashes: Iterable[bytes] | bytes | bytearray | memoryview,
        sizes: Iterable[int] = (),
        hasher: PairHasher = hash_pairs,
    ) -> dict[int, bytes]:
        """Append leaf hashes (32-byte values, or all of them concatenated); return the tree
        hash at each of ``sizes`` passed on the way.

        The hot loop of verification. Every aligned perfect subtree inside the new leaves is
        hashed level by level (``subtree_levels``: one ``hasher`` call per level), then each
        stretch up to the next wanted size is appended as the largest such subtrees it holds:
        O(log n) appends per wanted size instead of one per leaf. Same hashes, same tree."""
        leaves = leaf_hashes if isinstance(leaf_hashes, (bytes, bytearray, memoryview)) else b"".join(leaf_hashes)
        if len(leaves) % 32:
            raise ValueError(f"leaf hashes are 32 bytes each; got {len(leaves)} bytes")
        end = self.size + len(leaves) // 32
        levels = subtree_levels(leaves, self.size, hasher)
        wanted = sorted(s for s in set(sizes) if self.size < s <= end)
        out: dict[int, bytes] = {}
        for stop in wanted:
            self._advance(levels, stop)
            out[stop] = self.root()
        self._advance(levels, end)
        return out

    def _advance(self, levels: list[tuple[int, bytes]], stop: int) -> None:
        """Append, from ``subtree_levels``, the largest subtrees that start at the current size
        (aligned), end by ``stop`` and were hashed, until the size is ``stop``."""
        while self.size < stop:
            n = self.size
            height = min((stop - n).bit_length() - 1, len(levels) - 1)
            if n:
                height = min(height, (n & -n).bit_length() - 1)
            first, nodes = levels[height]
            at = 32 * ((n >> height) - first)
            self.append_subtree(nodes[at : at + 32], height)

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        nodes = self.nodes
        h = nodes[-1]
        for left in reversed(nodes[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h


def subtree_levels(
    leaves: bytes | bytearray | memoryview, first: int, hasher: PairHasher = hash_pairs
) -> list[tuple[int, bytes]]:
    """Every aligned perfect subtree inside the leaves ``first .. first + n - 1`` (their hashes
    concatenated), per height h: ``(j, nodes)`` where ``nodes`` holds the roots of the
    subtrees ``k * 2**h .. (k + 1) * 2**h - 1`` for k = j, j + 1, ... (32 bytes each)."""
    levels = [(first, bytes(leaves))]
    start, nodes = first, levels[0][1]
    while True:
        skip = start & 1  # a left child sits at an even index
        pairs = (len(nodes) // 32 - skip) // 2
        if pairs <= 0:
            return levels
        # The pairs are the level's nodes as they lie, from the first left child on.
        hashed = hasher(memoryview(nodes)[32 * skip : 32 * skip + 64 * pairs])
        if len(hashed) != 32 * pairs:
            raise ValueError(f"the pair hasher returned {len(hashed)} bytes for {pairs} pairs; expected {32 * pairs}")
        nodes = hashed
        start = (start + skip) >> 1
        levels.append((start, nodes))


def tree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (already ``leaf_hash``ed)."""
    frontier = Frontier()
    for leaf in leaf_hashes:
        frontier.append_leaf_hash(leaf)
    return frontier.root()


def inclusion_path(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:n]) for n = len(leaf_hashes)."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf {index} is outside a tree of {n} leaves")
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if index - lo < k:
            path.append(tree_hash(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(tree_hash(leaf_hashes[lo : lo + k]))
            lo = lo + k
    path.reverse()
    return path


def root_from_path(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root a path leads to, or None when the path cannot
    belong to a tree of that size."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def consistency_path(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[0:n]) for m = ``old_size``, n = len(leaf_hashes): the nodes that
    show the tree of the first m leaves is a prefix of this one."""
    n = len(leaf_hashes)
    if not 0 < old_size <= n:
        raise ValueError(f"a consistency proof goes from 1..{n} leaves to {n}, not from {old_size}")
    return _subproof(old_size, leaf_hashes, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[0:n], b)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [tree_hash(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return _subproof(m, leaves[:k], complete) + [tree_hash(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [tree_hash(leaves[:k])]


def consistent(old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: whether ``path`` shows that the tree of ``old_size`` leaves with
    ``old_root`` is a prefix of the tree of ``new_size`` leaves with ``new_root``."""
    if old_size == new_size:
        return not path and old_root == new_root
    if not 0 < old_size < new_size or not path:
        return False
    nodes = list(path)
    if old_size & (old_size - 1) == 0:  # a power of 2: the old tree is a node of the new one
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
