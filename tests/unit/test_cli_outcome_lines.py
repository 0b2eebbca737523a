"""`warden submit` and `warden tail` show one outcome as one line, whatever its kind: a reader
(and a grep) takes each line as one record."""

from __future__ import annotations

from infra.cli.submit import _describe_outcome
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
