"""One vocabulary of audit actions (`schemas.actions.AuditAction`): every event a service writes
names its action through the enum, never as a string literal; every transaction and Solana status
has its action; the ledger's SQL and the JSON Schema name only actions there are."""

from __future__ import annotations

import io
import json
import pathlib
import re
import tokenize
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import get_args

import pytest

from schemas.actions import AuditAction, admin_record_action, solana_action, tx_action
from schemas.audit import AuditEvent
from schemas.emit import audit
from schemas.export import export
from schemas.outcomes import SolanaStatus, TxStatus
from tests.layers_support import PACKAGES, REPO, sources

ACTIONS = {action.value for action in AuditAction}
# A vault log's event types are their own vocabulary (signer.custody.events, and the SDK's reader
# of its key records, sdk.signing_keys), most of whose names are also actions; the log's records
# are not audit events.
OTHER_VOCABULARIES = {"signer/custody/events.py", "sdk/signing_keys.py"}


def _literals(path: pathlib.Path) -> Iterator[tuple[int, str]]:
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.STRING and token.string[:1] in "\"'" and token.string[1:-1] in ACTIONS:
            yield token.start[0], token.string


def test_no_module_spells_an_action_as_a_string_literal() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line}: {text}"
        for path in sources((*PACKAGES, "tests"))  # the tests too: they compare with the enum, as the services do
        if path.name != "actions.py"
        and path != pathlib.Path(__file__).resolve()
        and str(path.relative_to(REPO)) not in OTHER_VOCABULARIES
        for line, text in _literals(path)
    ]
    assert not found, "use schemas.actions.AuditAction instead of:\n" + "\n".join(found)


def test_every_status_has_its_action_and_nothing_else_is_one() -> None:
    assert {tx_action(status) for status in get_args(TxStatus)} <= set(AuditAction)
    assert {solana_action(status) for status in get_args(SolanaStatus)} <= set(AuditAction)
    assert admin_record_action("chains", adopted=False) is AuditAction.CHAINS_REFUSED
    with pytest.raises(ValueError, match="tx.exploded is not an audit action; add it to schemas.actions.AuditAction"):
        tx_action("exploded")


def test_the_ledger_sql_names_only_actions_there_are() -> None:
    sql = "".join(p.read_text() for p in sorted((REPO / "ledger").glob("*.py")))
    named = set(re.findall(r"'([a-z]+\.[a-z_]+)'", sql))
    assert named, "no action found in the ledger's SQL: the pattern looks in the wrong place"
    assert named <= ACTIONS, sorted(named - ACTIONS)


def test_an_event_carries_the_plain_action_and_the_json_schema_lists_every_action(tmp_path: pathlib.Path) -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    emitted = audit("service:streams", AuditAction.INTENT_REJECTED, "intent:i1", now, "i1", intent_id="i1")
    event = AuditEvent.model_validate_json(emitted.value)
    assert event.action == "intent.rejected" and type(event.action) is str
    assert emitted.value == AuditEvent(**{**event.model_dump(), "action": "intent.rejected"}).to_bytes()
    export(tmp_path)
    schema = json.loads((tmp_path / "AuditEvent.schema.json").read_text())
    assert set(schema["properties"]["action"]["examples"]) == ACTIONS
