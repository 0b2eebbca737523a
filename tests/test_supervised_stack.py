"""`warden up` as an operator runs it: the real command, its durable broker and chain, its
supervisor, `warden status`. Kill a service in the middle of a burst of broadcast intents; stop
`warden up` and start it again on the same home.

Before: SIGKILL of the signer under `warden up` stopped every process (0 of 300 in-flight
intents got an outcome); a restart of `warden up` began from an empty broker and chain and
deleted the signer's state; a restarted signer left broadcast transactions unconfirmed forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest
from eth_account import Account

from infra.client import Client, load_or_create_agent_key, new_intent, wait_outcomes
from infra.stack import REPO, free_port
from runtime.config import Settings, child_environment
from runtime.kafka import end_offsets
from runtime.readiness import ready_file
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.models import AuditEvent, SignedTransaction
from tests.support import make_agent, read_topic

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "agent-supervised"


@pytest.fixture
def home_settings(tmp_path) -> Settings:
    return dataclasses.replace(
        Settings(), home=tmp_path / "home", broker=f"127.0.0.1:{free_port()}",
        rpc_url=f"http://127.0.0.1:{free_port()}", ledger_http=f"127.0.0.1:{free_port()}", clickhouse_url=None,
        allow_dev_root=True, allow_unattested_signer=True, broker_storage="durable")


class WardenUp:
    """`warden up` in a subprocess, as a person would start it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.env = child_environment(settings) | {"PYTHONPATH": str(REPO)}
        self.env.pop("WARDEN_CLICKHOUSE_URL", None)
        self.log = (settings.home.parent / "warden-up.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "infra.cli", "up"], env=self.env, cwd=str(REPO),
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            status = self.status()
            if status.get("up") and all(c["alive"] for c in status["components"]) and \
                    all(ready_file(settings, name).exists() for name in ("ledger", "streams", "signer")):
                return
            assert self.proc.poll() is None, self.output()
            time.sleep(1)
        raise AssertionError(f"warden up was not ready within 180 s:\n{self.output()}")

    def status(self) -> dict:
        result = subprocess.run([sys.executable, "-m", "infra.cli", "status", "--json"], env=self.env,
                                cwd=str(REPO), capture_output=True, timeout=60)
        return orjson.loads(result.stdout) if result.stdout.strip() else {}

    def output(self) -> str:
        return (self.settings.home.parent / "warden-up.log").read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=90)
        finally:
            self.log.close()


def _burst(settings: Settings, key, count: int) -> list:
    return [new_intent(key, agent_id=AGENT, chain="anvil", to=DEST, value="0.001", broadcast=True)
            for _ in range(count)]


async def _submit(settings: Settings, intents) -> dict:
    async with Client(settings) as client:
        for intent in intents:
            await client.submit(intent)
        await client.flush()


async def _chain_nonce(settings: Settings, address: str) -> int:
    node = JsonRpc(settings.rpc_url_for("anvil"))
    try:
        return int(await node.call("eth_getTransactionCount", address, "latest"), 16)
    finally:
        await node.close()


def test_a_killed_signer_is_restarted_and_a_second_warden_up_continues_the_first(home_settings, monkeypatch):
    settings = home_settings
    monkeypatch.setenv("WARDEN_HOME", str(settings.home))  # in-process custody and chain registry
    up = WardenUp(settings)
    try:
        key, address, _ = asyncio.run(make_agent(settings, AGENT, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
        start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.AUDIT_EVENTS)))
        intents = _burst(settings, key, 60)
        asyncio.run(_submit(settings, intents[:30]))
        signer_pid = next(c["pid"] for c in up.status()["components"] if c["name"] == "signer")
        os.kill(signer_pid, signal.SIGKILL)  # mid-burst: the first half is being signed and mined
        asyncio.run(_submit(settings, intents[30:]))
        began = time.monotonic()
        outcomes = asyncio.run(wait_outcomes(settings, intents, 180, start))
        recovered_s = time.monotonic() - began
        assert len(outcomes) == 60, up.output()
        assert {o.status for o in outcomes.values()} == {"mined"}, {o.status for o in outcomes.values()}
        # Never signed twice: one transaction hash per intent on the topic, however often re-published.
        signed = [SignedTransaction.from_bytes(v) for v in asyncio.run(read_topic(settings, topics.TXS_SIGNED,
                                                                                    start=start))]
        hashes: dict[str, set[str]] = {}
        for record in signed:
            hashes.setdefault(record.intent_id, set()).add(record.tx_hash)
        assert all(len(h) == 1 for h in hashes.values())
        assert asyncio.run(_chain_nonce(settings, address)) == 60
        status = up.status()
        (signer,) = [c for c in status["components"] if c["name"] == "signer"]
        assert signer["restarts"] == 1 and signer["last_exit_code"] == -9 and signer["alive"]
        audits = [AuditEvent.from_bytes(v) for v in asyncio.run(read_topic(settings, topics.AUDIT_EVENTS,
                                                                             start=start))]
        assert [a.details["component"] for a in audits if a.action == "component.restarted"] == ["signer"]
        print(f"\n60 broadcast intents, signer SIGKILLed after 30 were submitted: 60 mined, "
              f"all outcomes {recovered_s:.1f} s after the last submit")
    finally:
        assert up.stop() == 0

    # The same home again: the broker's log, the chain, the signer's record and the ledger continue.
    up = WardenUp(settings)
    try:
        start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED)))
        again = _burst(settings, load_or_create_agent_key(settings.home, AGENT), 1)  # no new policy published
        asyncio.run(_submit(settings, again))
        (outcome,) = asyncio.run(wait_outcomes(settings, again, 60, start)).values()
        assert isinstance(outcome, SignedTransaction) and outcome.status == "mined" and outcome.nonce == 60
        assert Account.recover_transaction(outcome.signed_tx) == address
        verify = subprocess.run([sys.executable, "-m", "infra.cli", "audit", "verify", "--json"], env=up.env,
                                cwd=str(REPO), capture_output=True, timeout=120)
        report = orjson.loads(verify.stdout)
        assert report["ok"] and report["source_changes"] == [], report
        status = up.status()
        assert status["ledger"] is not None and status["consumer_lag"]["signer"]["lag"] == 0
    finally:
        assert up.stop() == 0
