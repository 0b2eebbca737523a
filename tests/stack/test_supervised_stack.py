"""`warden up` as an operator runs it: the real command, its durable broker and chain, its
supervisor, `warden status`. Kill a service in the middle of a burst of broadcast intents; stop
`warden up` and start it again on the same home.

After the signer's kill, `warden status` tells the truth about the ledger: its lag counts audit
events on the topic that are not in the ledger, so a ledger holding every event shows 0, even
when redelivered records (the restarted signer's, and one more copy written here, whose events
the ledger already holds) moved the topic's end past the last offset the ledger stored.

Before: SIGKILL of the signer under `warden up` stopped every process (0 of 300 in-flight
intents got an outcome); a restart of `warden up` began from an empty broker and chain and
deleted the signer's state; a restarted signer left broadcast transactions unconfirmed forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account

from infra.cli.status import component_state, process_runs, process_state
from infra.stack.local import REPO, LocalStack, free_port
from infra.stack.supervisor import Supervisor
from ledger.verify import NOT_BELIEVED_SQL
from runtime.config import Settings
from runtime.kafka import end_offsets, follow
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import audit_events_of
from schemas.codes import Code
from schemas.emit import audit
from schemas.intent import TransactionIntent
from schemas.outcomes import SignedTransaction
from sdk.client import load_or_create_agent_key, new_intent, wait_outcomes
from signer.changelog import SIGNATURE_BYTES
from tests.ledger_support import audit_records, ledger_event_ids, redeliver
from tests.support import make_agent, read_records, read_topic, sample
from tests.up_support import WardenUp, audit_verifies, chain_nonce, home_settings, submit_all  # noqa: F401 - a fixture

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AGENT = "agent-supervised"


def _burst(settings: Settings, key: Ed25519PrivateKey, count: int) -> list[TransactionIntent]:
    return [
        new_intent(key, agent_id=AGENT, chain="anvil", to=DEST, value="0.001", broadcast=True) for _ in range(count)
    ]


def test_a_killed_signer_is_restarted_and_a_second_warden_up_continues_the_first(
    home_settings: Settings,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = home_settings
    monkeypatch.setenv("WARDEN_HOME", str(settings.home))  # in-process custody and chain registry
    up = WardenUp(settings)
    try:
        key, address, _ = asyncio.run(make_agent(settings, AGENT, tx_to_allowlist=(DEST,), tx_max_value_eth="1"))
        start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.AUDIT_EVENTS)))
        intents = _burst(settings, key, 60)
        asyncio.run(submit_all(settings, intents[:30]))
        signer_pid = up.components()["signer"]["pid"]
        os.kill(signer_pid, signal.SIGKILL)  # mid-burst: the first half is being signed and mined
        asyncio.run(submit_all(settings, intents[30:]))
        began = time.monotonic()
        outcomes = asyncio.run(wait_outcomes(settings, intents, 180, start))
        recovered_s = time.monotonic() - began
        assert len(outcomes) == 60, up.output()
        mined = [o for o in outcomes.values() if isinstance(o, SignedTransaction)]
        assert len(mined) == len(outcomes) and {o.status for o in mined} == {"mined"}, outcomes
        # Never signed twice: one transaction hash per intent on the topic, however often re-published.
        signed = [
            SignedTransaction.from_bytes(v) for v in asyncio.run(read_topic(settings, topics.TXS_SIGNED, start=start))
        ]
        hashes: dict[str, set[str]] = {}
        for record in signed:
            hashes.setdefault(record.intent_id, set()).add(record.tx_hash)
        assert all(len(h) == 1 for h in hashes.values())
        assert asyncio.run(chain_nonce(settings, address)) == 60
        # What the signers reported after broadcast (the killed one's too) was on their changelog first.
        final = asyncio.run(wait_outcomes(settings, intents, 120, start, until_final_block=True))
        finals = [o for o in final.values() if isinstance(o, SignedTransaction)]
        assert len(finals) == len(final) and all(o.final for o in finals), [_brief(o) for o in finals if not o.final]
        early = asyncio.run(_published_before_durable(settings, start))
        assert not early, f"{len(early)} record(s) published before their changelog record, e.g. {early[:3]}"
        ledger_caught_up(settings)
        status = up.status()
        # Status counts audit events missing from the ledger, not offsets: redelivered records (the
        # restarted signer's, and the copy written above) moved the topic's end past the ledger's.
        ledger = status["ledger"]
        assert ledger["records_past_last_appended"] >= 1, ledger  # the redelivered copy, at least
        assert ledger["lag"] == 0 and ledger["exact"], ledger
        assert ledger["counts"] == f"audit events on {topics.AUDIT_EVENTS} not in the ledger"
        (signer,) = [c for c in status["components"] if c["name"] == "signer"]
        assert signer["restarts"] == 1 and signer["last_exit_code"] == -9 and signer["alive"]
        # The Intents API runs under the same supervision, at WARDEN_API_HTTP.
        (api,) = [c for c in status["components"] if c["name"] == "api"]
        assert api["alive"]
        with urllib.request.urlopen(f"http://{settings.api_http}/v1/chains", timeout=30) as answer:
            assert "anvil" in {c["name"] for c in orjson.loads(answer.read())["chains"]}
        audits = [
            e for v in asyncio.run(read_topic(settings, topics.AUDIT_EVENTS, start=start)) for e in audit_events_of(v)
        ]
        assert [a.details["component"] for a in audits if a.action == AuditAction.COMPONENT_RESTARTED] == ["signer"]
        # The same story in each component's Prometheus metrics.
        urls = {c["name"]: c["metrics"] for c in status["components"]} | {"supervisor": status["supervisor_metrics"]}
        assert sample(urls["streams"], "warden_intents_total", outcome="approved", code=Code.APPROVED) >= 60
        assert sample(urls["signer"], "warden_txs_total", status="mined") >= 1  # since its restart
        assert sample(urls["supervisor"], "warden_component_restarts_total", component="signer") == 1
        assert sample(urls["ledger"], "warden_ledger_appended_total") > 0
        assert sample(urls["streams"], "warden_consumer_lag", component="streams") >= 0  # its own group's
        print(
            f"\n60 broadcast intents, signer SIGKILLed after 30 were submitted: 60 mined, "
            f"all outcomes {recovered_s:.1f} s after the last submit"
        )
    finally:
        assert up.stop() == 0

    # The same home again: the broker's log, the chain, the signer's record and the ledger continue.
    up = WardenUp(settings)
    try:
        start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED)))
        again = _burst(settings, load_or_create_agent_key(settings.home, AGENT), 1)  # no new policy published
        asyncio.run(submit_all(settings, again))
        (outcome,) = asyncio.run(wait_outcomes(settings, again, 60, start)).values()
        assert isinstance(outcome, SignedTransaction) and outcome.status == "mined" and outcome.nonce == 60
        assert Account.recover_transaction(outcome.signed_tx) == address
        audit_verifies(up)
        status = up.status()
        assert status["ledger"] is not None and status["consumer_lag"]["signer"]["lag"] == 0
        assert status["ledger"]["records_not_believed"] == 0  # only Warden's services wrote the trail
        # A topic writer without a pinned key: the ledger keeps its record as not believed, and status says so.
        forged = audit(
            "service:signer", AuditAction.TX_SIGNED, "intent:forged", outcome.signed_at, "forged", intent_id="forged"
        )
        asyncio.run(_send_unsigned(settings, forged.value))
        # Waited for with the ledger's own count (what status reads), not a `warden status` process
        # (~1.5 s of CPU) a look; then status must say it.
        host, _, port = settings.ledger_http.rpartition(":")
        ledger = clickhouse_connect.get_client(host=host, port=int(port))
        deadline = time.monotonic() + 30
        while ledger.query(f"SELECT count() FROM audit_log WHERE {NOT_BELIEVED_SQL}").result_rows[0][0] != 1:
            assert time.monotonic() < deadline, up.status()
            time.sleep(0.5)
        assert up.status()["ledger"]["records_not_believed"] == 1
        text = subprocess.run(
            [sys.executable, "-m", "infra.cli", "status"],
            env=up.env,
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert "1 audit record(s) not believed" in text, text
        power_loss(up, settings, address)
    finally:
        if up.proc.poll() is None:  # not after the power loss, which killed it
            assert up.stop() == 0


def test_a_restart_made_while_the_broker_is_down_is_recorded_once_it_answers(tmp_path: Path) -> None:
    """The supervisor restarts a crashed service while nothing listens at the broker's address,
    then the broker starts. Once, the restart's audit record was sent right there, within the
    restart (which then waited on the bus: with a cluster below its quorum, forever), and a broker
    that did not answer lost it; no one recorded it later. Now it is queued and written when the
    broker takes it. A `sleep` stands for the service: what is tested is the supervisor."""
    settings = dataclasses.replace(
        Settings(),
        home=tmp_path / "home",
        broker=f"127.0.0.1:{free_port()}",
        broker_storage="memory",
        allow_dev_root=True,
        clickhouse_url=None,
    )
    stack = LocalStack(settings)
    stack._spawn("streams", ["sleep", "600"])
    supervisor = Supervisor(stack)
    try:
        os.kill(stack.processes["streams"].pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while supervisor.components["streams"].restarts == 0:
            assert supervisor.tick() is None
            assert time.monotonic() < deadline, "the supervisor did not restart the service"
            time.sleep(0.2)
        pid = supervisor.components["streams"].pid
        stack.start_tansu()  # the broker, after the restart
        deadline = time.monotonic() + 90
        while not (recorded := asyncio.run(_restarts_recorded(settings))):
            assert time.monotonic() < deadline, "the restart was never recorded on the audit topic"
            time.sleep(1)
        assert recorded == [("streams", pid, 1)], recorded
    finally:
        supervisor.stopping()
        stack.stop()
        supervisor.stopped()


async def _restarts_recorded(settings: Settings) -> list[tuple[str, int, int]]:
    """(component, pid, restarts) of each `component.restarted` event on the audit topic."""
    return [
        (e.details["component"], e.details["pid"], e.details["restarts"])
        for v in await read_topic(settings, topics.AUDIT_EVENTS, idle_polls=2)
        for e in audit_events_of(v)
        if e.action == AuditAction.COMPONENT_RESTARTED
    ]


def test_status_says_a_zombie_is_down_and_a_stopped_process_paused() -> None:
    """`warden status` once said "up 449 s" of a Kafka node SIGKILLed minutes before: no one had
    reaped it (the supervisor was stuck), and a zombie answers signal 0. It reads each process's
    state from /proc: running, paused (SIGSTOP), gone (a zombie too)."""
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        assert process_state(sleeper.pid) == "running"
        os.kill(sleeper.pid, signal.SIGSTOP)
        _until_state(sleeper.pid, "paused")
        os.kill(sleeper.pid, signal.SIGKILL)  # not reaped: a zombie until `wait`
        _until_state(sleeper.pid, "gone")
        assert not process_runs(sleeper.pid)
        now = time.time()
        row = {"name": "kafka-1", "pid": sleeper.pid, "restarts": 0, "last_exit_code": -9, "started_at": now - 449}
        assert component_state(row, True, now)["state"] == "down"
        waiting = component_state({**row, "restart_due_at": now + 2}, True, now)
        assert (waiting["state"], waiting["restart_in_s"], waiting["alive"]) == ("restarting", 2, False)
    finally:
        sleeper.kill()
        sleeper.wait()


def _until_state(pid: int, state: str) -> None:
    deadline = time.monotonic() + 10
    while process_state(pid) != state:
        assert time.monotonic() < deadline, f"pid {pid} is {process_state(pid)}, not {state}"
        time.sleep(0.05)


def ledger_caught_up(settings: Settings) -> None:
    """Once the ledger holds the topic's last audit record, that record is written again (the
    case where counting offsets said "behind" with nothing missing); then waits until the ledger
    holds every audit event of the topic."""
    last = asyncio.run(audit_records(settings))[-1]
    deadline = time.monotonic() + 120
    while not {e.event_id for e in audit_events_of(last.value)} <= ledger_event_ids(settings):
        assert time.monotonic() < deadline, "the ledger did not append the last audit record"
        time.sleep(0.5)
    asyncio.run(redeliver(settings, last))
    deadline = time.monotonic() + 120
    while True:
        on_topic = {e.event_id for r in asyncio.run(audit_records(settings)) for e in audit_events_of(r.value)}
        missing = on_topic - ledger_event_ids(settings)
        if not missing:
            return
        assert time.monotonic() < deadline, f"{len(missing)} events never appended"
        time.sleep(1.0)


def power_loss(up: WardenUp, settings: Settings, address: str) -> None:
    """Every process SIGKILLed at once right after a transaction is reported mined, mid-burst, then
    `warden up` again on the same home. Anvil keeps its state once a second, so the chain can come
    back some blocks shorter: no outcome may then say mined (or final) for what it does not hold,
    and the agent's address is not wedged: every intent ends final on the chain."""
    burst = _burst(settings, load_or_create_agent_key(settings.home, AGENT), 20)
    start = asyncio.run(end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.AUDIT_EVENTS)))
    asyncio.run(submit_all(settings, burst))
    told = asyncio.run(_first_mined(settings, {tp: o for tp, o in start.items() if tp.topic == topics.TXS_SIGNED}, 3))
    pids = [up.proc.pid] + [c["pid"] for c in up.components().values() if c["pid"]]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    up.proc.wait(timeout=30)
    up.log.close()

    restarted = WardenUp(settings)
    try:
        # It heals by itself: the signer's last word on each intent (the newest record on the topic)
        # comes to be final and what the chain holds at the block it names. Generous: a final record
        # the chain lost is found by the signer's watch of final records (every 30 s), on a busy machine.
        # Only the burst's records: the intent before it (nonce 60) was awaited mined, not final, so
        # its final record can come after `start` too.
        ids = {i.intent_id for i in burst}
        deadline = time.monotonic() + 480
        while True:
            records = [
                record
                for v in asyncio.run(read_topic(settings, topics.TXS_SIGNED, start=start))
                if (record := SignedTransaction.from_bytes(v)).intent_id in ids
            ]
            last = {r.intent_id: r for r in records}
            done = len(last) == 20 and all(r.status == "mined" and r.final for r in last.values())
            wrong = asyncio.run(_not_on_chain(settings, list(last.values()))) if done else None
            if done and not wrong:
                break
            assert time.monotonic() < deadline, {
                "intents with no record": (missing := [i.intent_id for i in burst if i.intent_id not in last]),
                "not final": [(i, _brief(r)) for i, r in last.items() if not (r.status == "mined" and r.final)],
                "final but not on the chain": [(r.intent_id, _brief(r)) for r in wrong or ()],
                "signer log": _log_lines(settings, missing + [r.intent_id for r in (wrong or ())]),
            }
            time.sleep(2)
        assert asyncio.run(chain_nonce(settings, address)) == 61 + 20  # every nonce used once: no gap
        # Each mined record of a block the chain came back without (told before the loss) is
        # superseded by a later record of its intent, and never published again (a stale re-publish).
        gone = asyncio.run(_not_on_chain(settings, [r for r in records if r.status == "mined"]))
        for at, record in enumerate(records):
            if record in gone:
                later = [r for r in records[at + 1 :] if r.intent_id == record.intent_id]
                assert later and record not in later, [_brief(r) for r in (record, *later)]
        print(
            f"\npower loss after {len(told)} mined reports: {len(gone)} mined record(s) the chain lost, each put right"
        )
    finally:
        assert restarted.stop() == 0


def _log_lines(settings: Settings, words: list[str]) -> list[str]:
    """The lines of the stack's logs that name any of ``words`` (for a failure's message)."""
    found = []
    for path in sorted(settings.log_dir.glob("*.log")):
        with contextlib.suppress(OSError):
            found += [
                f"{path.name}: {line}"
                for line in path.read_text(errors="replace").splitlines()
                if any(w in line for w in words)
            ]
    return found[-60:]


def _brief(record: SignedTransaction) -> tuple[object, ...]:
    return (record.status, record.block_number, record.block_hash, record.final, record.reorgs, record.error)


async def _first_mined(settings: Settings, start: dict[TopicPartition, int], count: int) -> list[SignedTransaction]:
    """The first ``count`` mined records since ``start``, as soon as they are on the topic."""
    mined: list[SignedTransaction] = []
    deadline = time.monotonic() + 120
    async for topic, value in follow(settings, (topics.TXS_SIGNED,), start, fetch_max_wait_ms=settings.fetch_wait_ms):
        assert time.monotonic() < deadline, mined
        if topic:
            record = SignedTransaction.from_bytes(value)
            if record.status == "mined":
                mined.append(record)
                if len(mined) == count:
                    return mined
    raise AssertionError("the topic ended")  # follow() yields forever


async def _published_before_durable(settings: Settings, start: dict[TopicPartition, int]) -> list[tuple[Any, ...]]:
    """Records on warden.txs.signed since ``start`` that a signer published before a changelog
    record holding their bytes was written (Kafka timestamps: the producer's clock, one process).
    A first `broadcast` is let be: it goes out before its batch is appended, and a signer killed
    in between leaves the next owner the record as signed, which sends the same bytes again."""
    durable: dict[bytes, int] = {}  # a record's bytes → the first changelog record holding them
    for record in await read_records(settings, topics.SIGNER_CHANGELOG):
        for _, args in orjson.loads(record.value[SIGNATURE_BYTES:])["writes"]:
            for arg in args:
                if isinstance(arg, dict) and "utf8" in arg:
                    raw = arg["utf8"].encode()
                    durable[raw] = min(durable.get(raw, record.timestamp), record.timestamp)
    early = []
    for record in await read_records(settings, topics.TXS_SIGNED, start):
        signed = SignedTransaction.from_bytes(record.value)
        if signed.status == "broadcast" and signed.reorgs == 0:
            continue
        at = durable.get(record.value)
        if at is None or at > record.timestamp:
            early.append((signed.intent_id, signed.status, signed.final, at, record.timestamp))
    return early


async def _not_on_chain(settings: Settings, records: list[SignedTransaction]) -> list[SignedTransaction]:
    """The mined records whose transaction the chain does not hold at the block they name."""
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
    try:
        missing = []
        for record in records:
            receipt = await node.call("eth_getTransactionReceipt", record.tx_hash)
            if receipt is None or receipt["blockHash"].lower() != (record.block_hash or "").lower():
                missing.append(record)
        return missing
    finally:
        await node.close()


async def _send_unsigned(settings: Settings, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker)
    await producer.start()
    try:
        await producer.send_and_wait(topics.AUDIT_EVENTS, value, key=b"forged")
    finally:
        await producer.stop()
