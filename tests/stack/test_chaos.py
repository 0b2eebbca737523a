"""Chaos on the supervised stack: SIGKILL the streams worker and the signer at once, then the
ledger sink, each in the middle of a burst of broadcast intents; then stop `warden up` and start
it again on the same home for one more burst.

After every burst: each intent has exactly one final outcome, none was signed twice, the
sender's chain nonce equals the number of transactions mined; at the end `warden audit verify`
passes and every audit event on the topic is in the ledger. The figures are printed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest

from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas import topics
from schemas.outcomes import SignedTransaction
from sdk.client import load_or_create_agent_key, new_intent, wait_outcomes
from tests.support import make_agent, read_topic
from tests.up_support import (  # noqa: F401 - a fixture
    WardenUp,
    chain_nonce,
    home_settings,
    ledger_holds_the_topic_and_verifies,
    submit_all,
)

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "agent-chaos"
# Each service is killed once mid-burst: the two that sign and decide together (neither can lean
# on the other to redeliver), then the sink. A round of its own per service, or more intents per
# burst, exercised the same recovery paths again at a minute each. A burst is long enough for the
# kill, after its first half is submitted, to land while intents are being decided and mined.
BURST = 60
ROUNDS = (("streams", "signer"), ("ledger",))


def burst(settings: Settings, up: WardenUp, kill: tuple[str, ...], address: str, mined_before: int) -> dict[str, Any]:
    key = load_or_create_agent_key(settings.home, AGENT)
    intents = [
        new_intent(key, agent_id=AGENT, chain="anvil", to=DEST, value="0.0001", broadcast=True) for _ in range(BURST)
    ]
    start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED)))
    asyncio.run(submit_all(settings, intents[: BURST // 2]))
    pids = {name: c["pid"] for name, c in up.components().items()}
    for name in kill:
        os.kill(pids[name], signal.SIGKILL)
    asyncio.run(submit_all(settings, intents[BURST // 2 :]))
    began = time.monotonic()
    outcomes = asyncio.run(wait_outcomes(settings, intents, 240, start))
    seconds = time.monotonic() - began
    records = [
        SignedTransaction.from_bytes(v) for v in asyncio.run(read_topic(settings, topics.TXS_SIGNED, start=start))
    ]
    hashes: dict[str, set[str]] = {}
    for record in records:
        hashes.setdefault(record.intent_id, set()).add(record.tx_hash)
    mined = sum(1 for o in outcomes.values() if isinstance(o, SignedTransaction) and o.status == "mined")
    figures = {
        "killed": "+".join(kill) or "(warden up restarted)",
        "intents": BURST,
        "outcomes": len(outcomes),
        "mined": mined,
        "seconds_to_all_outcomes": round(seconds, 1),
        "signed_twice": sum(1 for h in hashes.values() if len(h) > 1),
    }
    print(f"\n{figures}")
    assert len(outcomes) == BURST, (figures, up.output())
    assert mined == BURST, [o for o in outcomes.values() if getattr(o, "status", None) != "mined"]
    assert figures["signed_twice"] == 0
    assert asyncio.run(chain_nonce(settings, address)) == mined_before + mined
    return figures


def test_every_intent_ends_once_whatever_is_killed(home_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - the fixture
    settings = home_settings
    monkeypatch.setenv("WARDEN_HOME", str(settings.home))
    up = WardenUp(settings)
    mined = 0
    try:
        _, address, _ = asyncio.run(make_agent(settings, AGENT, tx_to_allowlist=(DEST,)))
        for kill in ROUNDS:
            mined += burst(settings, up, kill, address, mined)["mined"]
            # Each killed component is back before the next round.
            deadline = time.monotonic() + 120
            while not all(c["alive"] for c in up.components().values()):
                assert time.monotonic() < deadline, up.output()
                time.sleep(0.2)  # a file read, not a process
        restarts = {c["name"]: c["restarts"] for c in up.status()["components"]}
        assert restarts == {
            "kafka-1": 0,
            "anvil": 0,
            "solana": 0,
            "bitcoin": 0,
            "bitcoin-miner": 0,
            "ledger": 1,
            "streams": 1,
            "signer": 1,
            "api": 0,
            "console": 0,
        }
    finally:
        assert up.stop() == 0
    up = WardenUp(settings)
    try:
        mined += burst(settings, up, (), address, mined)["mined"]
        events = ledger_holds_the_topic_and_verifies(settings, up)
        print(
            f"\n{mined} transactions mined over {len(ROUNDS) + 1} bursts; {len(events)} audit events on the "
            f"topic, every one in the ledger; verify ok"
        )
    finally:
        assert up.stop() == 0
