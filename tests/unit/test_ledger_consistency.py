"""RFC 9162 consistency proofs (`ledger.merkle.consistency_path`, `consistent`): the proofs of the
RFC's own example tree, as the RFC lists them, and for every pair of sizes up to 33, checked
against roots computed by the RFC's recursive definition (`tests.ledger_support.mth`); a proof of
a forked history, or an altered one, fails. Then between two signed checkpoints of a chDB ledger,
as `warden audit consistency` builds them and `check-consistency` checks them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import checkpoint, proof
from ledger.cosigning import log_key
from ledger.merkle import consistency_path, consistent, leaf_hash, node_hash
from ledger.note import Note, NoteCheckpoint
from ledger.store import ChdbStore
from tests.ledger_support import LOG_NAME, T0, build_ledger, mth, pipeline_events

DATA = [hashlib.sha256(bytes([n])).digest() for n in range(33)]
LEAVES = [leaf_hash(d) for d in DATA]


def test_the_rfcs_example_tree_gives_the_proofs_the_rfc_lists() -> None:
    # RFC 6962 §2.1.3 (RFC 9162 §2.1.5): seven leaves d0..d6, a..f and j their leaf hashes,
    # g = (a, b), h = (c, d), i = (e, f), k = (g, h), l = (i, j).
    a, b, c, d, e, f, j = LEAVES[:7]
    g, h, i = node_hash(a, b), node_hash(c, d), node_hash(e, f)
    k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 - the RFC's names
    assert node_hash(k, l) == mth(DATA[:7])
    assert consistency_path(LEAVES[:7], 3) == [c, d, g, l]
    assert consistency_path(LEAVES[:7], 4) == [l]
    assert consistency_path(LEAVES[:7], 6) == [i, j, k]


def test_every_prefix_is_proven_consistent_with_every_larger_tree() -> None:
    for new in range(1, len(DATA) + 1):
        new_root = mth(DATA[:new])
        for old in range(1, new + 1):
            path = consistency_path(LEAVES[:new], old)
            assert consistent(old, new, mth(DATA[:old]), new_root, path), (old, new)


def test_a_forked_or_altered_history_is_not_consistent() -> None:
    new = 21
    new_root = mth(DATA[:new])
    for old in range(1, new):
        path = consistency_path(LEAVES[:new], old)
        old_root = mth(DATA[:old])
        # The sink showed someone a tree whose last old leaf differs: a split view.
        forked = mth(DATA[: old - 1] + [hashlib.sha256(b"forked").digest()])
        assert not consistent(old, new, forked, new_root, path), old
        assert not consistent(old, new, old_root, mth(DATA[: new - 1] + [DATA[0]]), path), old
        for n in range(len(path)):  # any node altered
            altered = path[:n] + [hashlib.sha256(path[n]).digest()] + path[n + 1 :]
            assert not consistent(old, new, old_root, new_root, altered), (old, n)
        assert not consistent(old, new, old_root, new_root, path + [path[-1]]), old  # a node too many
    assert not consistent(0, new, b"", new_root, [])
    assert consistent(new, new, new_root, new_root, [])
    assert not consistent(new, new, new_root, new_root, [new_root])


# -- between two signed checkpoints of a real chDB ledger (`warden audit consistency`) --------------

KEY = Ed25519PrivateKey.generate()
LOG = log_key(LOG_NAME, KEY)


def _said(signed: str) -> NoteCheckpoint:
    """What a proof's signed note says (read, not checked)."""
    return NoteCheckpoint.parse(Note.parse(signed).text)


def _signed(key: Ed25519PrivateKey, chain: int, size: int, root: str) -> str:
    """A checkpoint of ``size`` rows with ``root``, its note signed with ``key`` under the log's name."""
    return checkpoint.sign(key, LOG_NAME, chain, size - 1, "", root, T0).note(LOG_NAME).to_bytes().decode()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    store = ChdbStore(tmp_path_factory.mktemp("ledger") / "clickhouse")
    store.ensure_schema()
    build_ledger(store, pipeline_events(500), KEY, checkpoint_every=60)
    yield store
    store.close()


def _sizes(store: ChdbStore, chain: int) -> list[int]:
    query = f"SELECT seq + 1 AS size FROM audit_checkpoints WHERE chain = {chain} ORDER BY seq"
    sizes: list[int] = store.arrow(query).column("size").to_pylist()
    return sizes


def test_a_later_checkpoint_is_proven_to_extend_every_earlier_one(store: ChdbStore) -> None:
    sizes = _sizes(store, 0)
    assert len(sizes) >= 3, sizes
    for old in sizes:
        built = proof.build_consistency(store, 0, old, sizes[-1], LOG_NAME)
        assert proof.check_consistency(built, LOG) is None, old
        assert (_said(built["old"]).size, _said(built["new"]).size) == (old, sizes[-1])


def test_a_forked_checkpoint_signed_with_the_ledgers_own_key_is_caught(store: ChdbStore) -> None:
    sizes = _sizes(store, 0)
    built = proof.build_consistency(store, 0, sizes[0], sizes[-1], LOG_NAME)
    old = _said(built["old"])
    # The sink's operator shows someone a history of the same size with other rows, and signs it.
    forged_root = hashlib.sha256(b"another history of as many rows").hexdigest()
    forked = _signed(KEY, 0, old.size, forged_root)
    reason = proof.check_consistency({**built, "old": forked}, LOG)
    assert reason is not None and "does not extend" in str(reason), reason
    # A checkpoint no key of the ledger signed.
    other = _signed(Ed25519PrivateKey.generate(), 0, old.size, old.root.hex())
    reason = proof.check_consistency({**built, "old": other}, LOG)
    assert reason is not None and "signature does not verify" in str(reason), reason
    # A node of the path altered.
    path = list(built["consistency_path"])
    path[0] = hashlib.sha256(bytes.fromhex(path[0])).hexdigest()
    assert "does not extend" in str(proof.check_consistency({**built, "consistency_path": path}, LOG))


def test_a_size_with_no_checkpoint_is_refused_with_the_sizes_there_are(store: ChdbStore) -> None:
    sizes = _sizes(store, 0)
    with pytest.raises(proof.ProofError, match="no signed checkpoint of") as refused:
        proof.build_consistency(store, 0, sizes[0] + 1, sizes[-1], LOG_NAME)
    assert str(sizes[-1]) in str(refused.value)
    with pytest.raises(proof.ProofError, match="1 <= OLD <= NEW"):
        proof.build_consistency(store, 0, sizes[-1], sizes[0], LOG_NAME)
