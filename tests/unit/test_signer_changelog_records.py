"""The signer's changelog records: each is read only as what it says, and blobs read back as the
same bytes whichever form they travel in."""

from __future__ import annotations

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from signer.changelog import DOMAIN, ChangelogError, UnreadableRecord, open_record, seal
from tests.support import AGENT, KEYS, NOW_US, PINNED


def test_a_record_is_read_only_as_what_it_says_and_only_its_named_writes() -> None:
    key = KEYS["signer-a"]
    value = seal(partition=2, prev=7, writer="signer-a", writes=[("refused", ("i", AGENT, b"\x00\xff", 3))], key=key)
    entry = open_record(value, 2, PINNED.get)
    assert (entry.prev, entry.writer, entry.writes) == (7, "signer-a", [("refused", ("i", AGENT, b"\x00\xff", 3))])
    with pytest.raises(ChangelogError, match="found on partition 3"):
        open_record(value, 3, PINNED.get)
    with pytest.raises(ChangelogError, match="not signer-a's"):
        open_record(value, 2, {"signer-a": PINNED["signer-b"]}.get)
    with pytest.raises(ChangelogError, match="not a pinned signer"):
        open_record(value, 2, lambda writer: None)
    tampered = value[:-3] + b"9}]"
    with pytest.raises(ChangelogError):
        open_record(tampered, 2, PINNED.get)
    # Only the named statements, with their arity: a record cannot ask for SQL of its own. Signed by
    # a pinned signer, such a record is another version's, not void: reading stops (it may hold
    # signatures that were published); under any other key it is void.
    for writes, why in (
        ([("DROP TABLE spend", ())], "is not \\[one of"),
        ([("spend", ("i", AGENT, 1))], "takes 4 arguments, not 3"),
        ([("spend", ("i", AGENT, 1, 2.5))], "neither text, integer"),
    ):
        bad = seal(partition=2, prev=7, writer="signer-a", writes=writes, key=key)
        with pytest.raises(UnreadableRecord, match=why):
            open_record(bad, 2, PINNED.get)
        forged = seal(partition=2, prev=7, writer="signer-a", writes=writes, key=Ed25519PrivateKey.generate())
        with pytest.raises(ChangelogError, match="not signer-a's"):
            open_record(forged, 2, PINNED.get)


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@example(b"\xed\xa0\x80")  # a UTF-16 surrogate in UTF-8's form: not valid UTF-8, so it must go as hex
@example(b"\xc0\x80")  # an overlong NUL: the same
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_a_blob_reads_back_as_the_same_bytes_whichever_form_it_travels_in(blob: bytes) -> None:
    """Blobs travel as {"utf8": text} when they are UTF-8 (records and intents are JSON), else as
    hex: either way a replaying signer must get the very bytes back (a record re-published after a
    restore must verify under the signature it was published with)."""
    value = seal(
        partition=1, prev=3, writer="signer-a", writes=[("refused", ("i", AGENT, blob, 3))], key=KEYS["signer-a"]
    )
    assert open_record(value, 1, PINNED.get).writes == [("refused", ("i", AGENT, blob, 3))]


def test_a_record_written_with_hex_blobs_still_reads_and_a_utf8_record_is_smaller() -> None:
    """Signers before the {"utf8"} form wrote every blob as hex: their records on the log still
    restore. A record is JSON, so it now travels at about its own size, not twice it."""
    record = orjson.dumps({"intent_id": "i", "status": "sign_only", "signed_tx": "0x02" + "ab" * 110})
    body = orjson.dumps(
        {
            "partition": 1,
            "prev": 3,
            "writer": "signer-a",
            "writes": [["signed", ["i", AGENT, {"hex": record.hex()}, NOW_US]]],
        }
    )
    older = KEYS["signer-a"].sign(DOMAIN + body) + body
    assert open_record(older, 1, PINNED.get).writes == [("signed", ("i", AGENT, record, NOW_US))]
    newer = seal(
        partition=1, prev=3, writer="signer-a", writes=[("signed", ("i", AGENT, record, NOW_US))], key=KEYS["signer-a"]
    )
    assert len(newer) < len(older) - len(record) * 8 // 10
    for bad in ({"utf8": 5}, {"hex": "ab", "utf8": "x"}, {"base64": "AA=="}):
        body = orjson.dumps(
            {"partition": 1, "prev": 3, "writer": "signer-a", "writes": [["refused", ["i", AGENT, bad, 3]]]}
        )
        with pytest.raises(UnreadableRecord, match="neither text, integer"):
            open_record(KEYS["signer-a"].sign(DOMAIN + body) + body, 1, PINNED.get)


class _Failed(Exception):
    pass


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(("sign", "sign_then_fail", "settle", "bump", "spent", "replay")),
            st.integers(0, 7),
            st.sampled_from(("a", "b")),
            st.integers(-3_600, 40_000),
            st.integers(0, 2**200),
        ),
        max_size=40,
    )
)
@example(
    operations=[
        ("spent", 0, "a", 0, 0),
        ("sign", 1, "a", 10, 5),
        ("spent", 1, "a", 10, 0),
        ("bump", 1, "a", 10, 9),
        ("spent", 1, "a", 0, 0),
        ("settle", 1, "a", 0, 3),
        ("spent", 1, "a", 0, 0),
    ]
)
# Asked a moment before the copy's, after the copy dropped a reservation that counts then: the table answers.
@example(
    operations=[
        ("sign", 1, "a", 0, 5),
        ("spent", 0, "a", 40_000, 0),
        ("spent", 0, "a", 40_000, 0),
        ("spent", 0, "a", 6_410, 0),
        ("spent", 0, "a", -3_600, 0),
    ]
)
def test_the_kept_spend_is_always_what_the_table_says(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, int, str, int, int]]
) -> None:
    """The signer keeps each agent's window in memory, in step with its spend rows: whatever
    is signed, rolled back, settled, bumped or replayed from a changelog, and at whatever moment
    it is asked, it must say what summing the table says."""
    from rules.window import SpendWindow
    from signer.state import SignerState

    folder = tmp_path_factory.mktemp("kept")
    state, twin = SignerState(folder / "a.db", fsync=False), SignerState(folder / "b.db", fsync=False)
    clock = NOW_US
    for op, n, agent, step, wei in operations:
        # The clock mostly runs forward, as a signer's does (and now and then a moment before).
        clock += step * 1_000_000
        intent_id, at = f"i-{n}", clock
        if op in ("sign", "sign_then_fail"):
            try:
                with state.intent_scope():
                    state.agent(agent).record_signed(
                        intent_id=intent_id,
                        record=b"{}",
                        now_us=at,
                        chain="anvil",
                        address="0x00000000000000000000000000000000000000aa",
                        nonce=n,
                        spend_wei=wei,
                        counts=True,
                        policy_version=1,
                        idempotency_slot=None,
                    )
                    if op == "sign_then_fail":
                        raise _Failed
            except _Failed:
                pass
        elif op == "settle":
            state.agent(agent).settle_spend(intent_id, wei, executed=bool(n % 2))
        elif op == "bump":
            state.agent(agent).record_replacement(
                intent_id=intent_id, tx_hash=f"0x{n:064x}", record=b"{}", now_us=at, spend_wei=wei
            )
        elif op == "replay":  # the same writes arriving from the log, on a file that holds a copy too
            twin.agent(agent).spent(at)
            twin.replay(state.writes)
            assert twin.agent(agent).spent(at) == SpendWindow(twin.agent(agent).spend_entries(at)).spent(at)
            twin.rollback()
        else:
            table = SpendWindow(state.agent(agent).spend_entries(at)).spent(at)
            assert state.agent(agent).spent(at) == table
            entries = state.agent(agent).spend_entries(at)
            entries.pop(intent_id, None)
            assert state.agent(agent).spent(at, excluding=intent_id) == SpendWindow(entries).spent(at)
    state.close()
    twin.close()
