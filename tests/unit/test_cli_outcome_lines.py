"""`warden submit` and `warden tail` show one outcome as one line, whatever its kind: a reader
(and a grep) takes each line as one record; `warden submit`'s exit code says how its wait ended."""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import pytest

from infra.cli.submit import _describe_outcome, _report
from schemas.outcomes import (
    IntentParked,
    IntentRejected,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
)
from tests.schemas_support import sample_records

OUTCOMES = (IntentParked, IntentRejected, SignedSolanaMessage, SignedSolanaTransaction, SignedTransaction)


def test_every_outcome_kind_is_one_line_starting_with_its_word() -> None:
    outcomes = [record for record in sample_records() if isinstance(record, OUTCOMES)]
    assert {type(outcome) for outcome in outcomes} == set(OUTCOMES)
    for outcome in outcomes:
        line = _describe_outcome(outcome)
        assert "\n" not in line, line
        assert line.startswith(("SIGNED ", "REJECTED ", "PARKED ")) and outcome.intent_id in line, line


def test_submit_exits_with_how_its_wait_ended_and_says_so_in_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    """Signed 0, refused 1, nothing heard within --timeout 3 (it exited 0, with ``"outcome": null``),
    still parked 4; --no-wait waited for nothing: 0, "published". --json is one document."""
    samples = {type(record): record for record in sample_records() if isinstance(record, OUTCOMES)}
    cases: list[tuple[Any, bool, int, str]] = [
        (samples[SignedTransaction], True, 0, "signed"),
        (samples[IntentRejected], True, 1, "rejected"),
        (None, True, 3, "no_outcome"),
        (samples[IntentParked], True, 4, "parked"),
        (None, False, 0, "published"),
    ]
    for outcome, wait, code, ended in cases:
        args = argparse.Namespace(json=True, wait=wait, timeout=15.0)
        assert _report(args, {"intent": {"intent_id": "i-1"}}, outcome, None) == code, ended
        doc = orjson.loads(capsys.readouterr().out)
        assert (doc["ended"], doc["intent"]) == (ended, {"intent_id": "i-1"}), doc
        assert doc["outcome"] == (None if outcome is None else outcome.model_dump(mode="json", by_alias=True))
    args = argparse.Namespace(json=False, wait=True, timeout=15.0)
    assert _report(args, {}, None, None) == 3
    said = capsys.readouterr()
    assert not said.out and "no outcome within 15 s" in said.err, said
