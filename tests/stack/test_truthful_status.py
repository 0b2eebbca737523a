"""`warden status` tells the truth about the ledger after a signer is killed mid-burst: its lag
counts audit events on the topic that are not in the ledger, so a ledger holding every event of
the topic shows 0, even when redelivered records (the restarted signer's, and one more copy
written here, whose events the ledger already holds) moved the topic's end past the last offset
the ledger stored."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from runtime.kafka import end_offsets
from schemas import topics
from schemas.audit import audit_events_of
from sdk.client import new_intent, wait_outcomes
from tests.ledger_support import audit_records, ledger_event_ids, redeliver
from tests.support import make_agent
from tests.up_support import WardenUp, home_settings, submit_all  # noqa: F401 - a fixture

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "agent-status-lag"


def test_ledger_lag_is_zero_when_the_ledger_holds_every_event_after_a_signer_kill(home_settings, monkeypatch):  # noqa: F811
    settings = home_settings
    monkeypatch.setenv("WARDEN_HOME", str(settings.home))  # in-process custody and chain registry
    up = WardenUp(settings)
    try:
        start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED)))
        key = asyncio.run(make_agent(settings, AGENT, tx_to_allowlist=(DEST,)))[0]
        intents = [new_intent(key, agent_id=AGENT, chain="anvil", to=DEST, value="0.001") for _ in range(40)]
        asyncio.run(submit_all(settings, intents[:20]))
        signer_pid = up.components()["signer"]["pid"]
        os.kill(signer_pid, signal.SIGKILL)  # mid-burst: its audit records are sent again after the restart
        asyncio.run(submit_all(settings, intents[20:]))
        assert len(asyncio.run(wait_outcomes(settings, intents, 180, start, final=False))) == 40, up.output()

        # One more redelivered record at the topic's end, whose events the ledger holds: the case
        # where counting offsets said "behind" and nothing was missing.
        records = asyncio.run(audit_records(settings))
        last = records[-1]
        deadline = time.monotonic() + 120
        while not {e.event_id for e in audit_events_of(last.value)} <= ledger_event_ids(settings):
            assert time.monotonic() < deadline, "the ledger did not append the last audit record"
            time.sleep(0.5)
        asyncio.run(redeliver(settings, last))

        # Caught up: the ledger holds every event of the topic. Then status says 0.
        deadline = time.monotonic() + 120
        while True:
            on_topic = {e.event_id for r in asyncio.run(audit_records(settings)) for e in audit_events_of(r.value)}
            if on_topic <= ledger_event_ids(settings):
                break
            assert time.monotonic() < deadline, f"{len(on_topic - ledger_event_ids(settings))} events never appended"
            time.sleep(1.0)
        ledger = up.status()["ledger"]
        assert ledger["records_past_last_appended"] >= 1, ledger  # the redelivered copy, at least
        assert ledger["lag"] == 0 and ledger["exact"], ledger
        assert ledger["counts"] == f"audit events on {topics.AUDIT_EVENTS} not in the ledger"
        restarted = next(c for c in up.status()["components"] if c["name"] == "signer")
        assert restarted["restarts"] == 1 and restarted["alive"], restarted
    finally:
        assert up.stop() == 0
