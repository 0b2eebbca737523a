"""Which changelog record of an intent's decision a restoring worker keeps (`streams.decision.supersedes`,
applied by `streams.topology.DecisionsTable`): a stalled worker's late record never replaces the
decision the partition's owner made and published after it, and legitimate changes always do."""

from __future__ import annotations

import faust

from streams.decision import supersedes
from streams.topology import DecisionsTable


def _stored(outcome: str, at_us: int, generation: int, record: str = "r") -> dict:
    return {"agent_id": "a", "outcome": outcome, "at_us": at_us, "record": record, "generation": generation}


def test_a_stalled_workers_late_record_does_not_replace_the_owners_decision():
    owners = _stored("rejected", at_us=9_000_000, generation=5, record="owner's INTENT_EXPIRED")
    stale = _stored("approved", at_us=1_000_000, generation=4, record="decided before the stall")
    assert not supersedes(owners, stale)
    assert supersedes(stale, owners)  # in the other order, the owner's still wins


def test_legitimate_changes_replace_the_decision():
    approved = _stored("approved", at_us=1_000_000, generation=4)
    released = _stored("released", at_us=1_000_000, generation=6)  # a release keeps the approval's time
    assert supersedes(approved, released)
    assert supersedes(approved, _stored("released", at_us=1_000_000, generation=4))  # same generation
    # A broker that forgot its groups starts generations again: a later decision still counts.
    assert supersedes(_stored("parked", 1_000_000, 40), _stored("approved", 1_000_000, 1))
    assert supersedes(_stored("rejected", 1_000_000, 40), _stored("rejected", 2_000_000, 1))
    assert supersedes(None, approved)
    assert supersedes({"at_us": 5, "outcome": "approved"}, approved)  # stored before generations were


class _Message:
    def __init__(self, value, partition: int = 0) -> None:
        self.value, self.partition = value, partition


class _Event:
    def __init__(self, key: str, value: dict) -> None:
        self.key, self.value, self.message = key, value, _Message(value)


def test_the_decisions_table_applies_its_changelog_by_that_rule():
    app = faust.App("test-decisions-changelog", store="memory://")
    table = DecisionsTable(app, name="warden-decisions", partitions=1, key_type=str)
    owners = _stored("rejected", at_us=9_000_000, generation=5, record="owner")
    stale = _stored("approved", at_us=1_000_000, generation=4, record="stale")
    table.apply_changelog_batch([_Event("i1", owners), _Event("i1", stale), _Event("i2", stale)])
    assert table.data["i1"]["record"] == "owner" and table.data["i2"]["record"] == "stale"
