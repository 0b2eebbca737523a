"""Every "has the ledger caught up" counts events, not offsets. A copy of the last audit record
(same bytes and headers, events the ledger holds) adds no row, so the ledger's last stored offset
trails the topic's end with nothing missing: the demo's `verify_ledger` still ends its wait because
no event is missing, and the sink's `warden_ledger_append_lag` goes back to 0."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from infra.stack import demo
from infra.stack.local import LocalStack
from ledger.store import open_reader
from ledger.tail import event_lag
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.metrics import metrics_file
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import audit_events_of
from sdk.client import new_intent, wait_outcomes
from tests.ledger_support import audit_records, ledger_event_ids, redeliver
from tests.support import make_agent, sample, submitted

AGENT = "agent-caught-up"
ALLOWED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
STRANGER = "0x000000000000000000000000000000000000dEaD"


def _records(settings: Settings) -> list[Any]:
    return asyncio.run(audit_records(settings))


def _actions(records: list[Any]) -> set[tuple[str, str | None]]:
    return {(e.action, e.agent_id) for r in records for e in audit_events_of(r.value)}


def _gauge_settles_at_zero(url: str, deadline: float) -> float:
    while (value := sample(url, "warden_ledger_append_lag")) != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return value


def test_a_redelivered_last_record_is_no_lag_for_the_demo_nor_the_sink(stack: LocalStack) -> None:
    settings = stack.settings
    metrics = metrics_file(settings, "ledger").read_text().strip()
    # Audit records of this test's own: an agent's policy and an intent it rejects.
    key = asyncio.run(make_agent(settings, AGENT, tx_to_allowlist=(ALLOWED,)))[0]
    start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED)))
    intent = new_intent(key, agent_id=AGENT, chain="anvil", to=STRANGER, value="0.001")
    asyncio.run(submitted(settings, intent))
    assert intent.intent_id in asyncio.run(wait_outcomes(settings, [intent], 120, start))

    # The last record must stay the last of its partition: wait for the signer's record of the
    # policy too, which it writes when it reads the policy, later than the worker's.
    deadline = time.monotonic() + 120
    wanted = {(AuditAction.POLICY_ENFORCED, AGENT), (AuditAction.INTENT_REJECTED, AGENT)}
    while not wanted <= _actions(records := _records(settings)):
        assert time.monotonic() < deadline, "the signer and the worker did not record the agent's policy and intent"
        time.sleep(0.5)
    last = records[-1]
    copied = [e.event_id for e in audit_events_of(last.value)]
    deadline = time.monotonic() + 120
    while not set(copied) <= ledger_event_ids(settings):
        assert time.monotonic() < deadline, "the ledger did not append the last audit record"
        time.sleep(0.5)
    redelivered = sample(metrics, "warden_ledger_redelivered_events_total")
    asyncio.run(redeliver(settings, last))
    # The sink read the copy and skipped its events as held.
    deadline = time.monotonic() + 120
    while sample(metrics, "warden_ledger_redelivered_events_total") < redelivered + len(copied):
        assert time.monotonic() < deadline, "the sink never read the redelivered record"
        time.sleep(0.5)

    store = open_reader(settings)
    try:
        lag = event_lag(settings, store)
    finally:
        store.close()
    assert lag.records_past >= 1 and lag.lag == 0, lag  # offsets say behind; no event is missing

    report = demo.verify_ledger(settings, progress=lambda m: None)
    assert report["caught_up"] and report["events_missing"] == 0, report  # not ended by its timeout
    assert report["ok"], report

    assert _gauge_settles_at_zero(metrics, time.monotonic() + 60) == 0
    store = open_reader(settings)
    try:
        # Still past the last stored offset: no later record made offsets catch up meanwhile.
        assert event_lag(settings, store).records_past >= 1, "a later audit record followed the copy"
    finally:
        store.close()
