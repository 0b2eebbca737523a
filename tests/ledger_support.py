"""Helpers for the ledger tests: a Tansu broker on a free port, audit events
shaped like the pipeline's, and a ledger built without Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import clickhouse_connect
import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.stack.local import LocalStack, free_port, local_settings
from ledger import checkpoint
from ledger.append import Ledger, SeenIds
from ledger.batch import checkpoint_table
from ledger.keys import load_or_create_signing_key, load_or_create_witness_key
from ledger.note import COSIGNATURE_V1, Note, NoteCheckpoint, NoteKey, verified_by
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG
from ledger.store import ChdbStore, Store, store_path
from runtime.config import Settings
from runtime.trust import audit_signer
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_events_of, event_id
from schemas.auth import AuditSigner, Role
from tests.support import read_records

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 Merkle Tree Hash of the leaf data, recursively, as the RFC writes it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


@contextlib.contextmanager
def broker_alone(storage: str = "memory") -> Iterator[str]:
    """A broker with Warden's topics, on free ports (the stack's own broker start-up): Tansu, or
    with ``storage="durable"`` one Apache Kafka node. Yields its address."""
    with tempfile.TemporaryDirectory() as home:
        stack = LocalStack(local_settings(Path(home), broker_storage=storage))
        try:
            stack.start(("broker",))
            yield stack.settings.broker
        finally:
            stack.stop()


def intent_digest_of(intent_id: str) -> str:
    """The made-up intent digest `pipeline_events` names in each event about ``intent_id``."""
    return hashlib.sha256(intent_id.encode()).hexdigest()


def pipeline_events(n: int, agents: int = 8, start: datetime = T0) -> list[AuditEvent]:
    """``n`` events in the pipeline's vocabulary: an intent is submitted, passes
    stages, and is approved and signed, or rejected."""
    events: list[AuditEvent] = []
    i = 0
    while len(events) < n:
        agent = f"agent-{i % agents}"
        intent = f"intent-{i}"
        ts = start + timedelta(seconds=i)
        rejected = i % 5 == 4
        digest = intent_digest_of(intent)

        def add(actor: str, action: AuditAction, details: dict[str, Any], step: str) -> None:
            events.append(
                AuditEvent(
                    event_id=event_id(intent, step),
                    actor=actor,
                    action=action,
                    resource=f"intent:{intent}",
                    ts=ts + timedelta(microseconds=len(events)),
                    intent_id=intent,
                    agent_id=agent,
                    details={"intent_digest": digest, **details},
                )
            )

        add(f"agent:{agent}", AuditAction.INTENT_SUBMITTED, {"chain": "base", "value": "0.01"}, "submitted")
        add(
            "service:streams",
            AuditAction.STAGE_PASSED,
            {"stage": "chain", "code": "ok", "reason": "chain allowed", "facts": {}},
            "chain",
        )
        if rejected:
            details = {"stage": "value_cap", "code": "over_cap", "reason": "0.01 is over the 0.005 cap"}
            add(
                "service:streams",
                AuditAction.STAGE_FAILED,
                {**details, "facts": {"cap_wei": "5000000000000000"}},
                "value_cap",
            )
            add("service:streams", AuditAction.INTENT_REJECTED, details, "rejected")
        else:
            add(
                "service:streams",
                AuditAction.STAGE_PASSED,
                {"stage": "value_cap", "code": "ok", "reason": "under cap", "facts": {}},
                "value_cap",
            )
            # What the worker reserves: the value plus the worst-case fee (none here: sign-only, priced at 0).
            spend = {"chain": "base", "value_wei": "10000000000000000", "spend_wei": "10000000000000000"}
            add("service:streams", AuditAction.INTENT_APPROVED, {**spend, "asset_spend": {}}, "approved")
            add(
                "service:signer",
                AuditAction.TX_SIGNED,
                {
                    "chain": "base",
                    "chain_id": 8453,
                    "tx_hash": "0x" + f"{i:064x}",
                    "from": "0x" + "11" * 20,
                    "to": "0x" + "22" * 20,
                    "nonce": i,
                    "value_wei": "10000000000000000",
                    "status": "sign_only",
                    "tee": "none",
                },
                "signed",
            )
        i += 1
    return events[:n]


def chain_of(event: AuditEvent, chains: int) -> int:
    assert event.agent_id is not None, event
    return int(event.agent_id.rsplit("-", 1)[1]) % chains


LOG_NAME = "warden.local/audit"  # the default log name: what `warden audit` assumes


@contextlib.contextmanager
def chdb_ledger(home: Path, events: list[AuditEvent]) -> Iterator[ChdbStore]:
    """A chDB ledger under ``home`` holding ``events`` as the sink appends them (`build_ledger`,
    with the home's ledger key), closed whatever happens: chDB holds one store per process, and the
    next test opens its own."""
    store = ChdbStore(store_path(Settings(home=home)))
    try:
        store.ensure_schema()
        build_ledger(store, events, load_or_create_signing_key(home))
        yield store
    finally:
        store.close()


def build_ledger(
    store: Store, events: list[AuditEvent], key: Ed25519PrivateKey, chains: int = 2, checkpoint_every: int = 50
) -> Ledger:
    """Append ``events`` as the sink would (chain = agent's partition), with a
    checkpoint every ``checkpoint_every`` rows of a chain."""
    ledger = Ledger({}, SeenIds(np.array([], dtype=np.uint64)))
    offsets = dict.fromkeys(range(chains), 0)
    for event in events:
        chain = chain_of(event, chains)
        ledger.append(chain, offsets[chain], event, event.ts)
        offsets[chain] += 1
        due = ledger.due_checkpoints(event.ts, checkpoint_every, timedelta(days=1))
        if due:
            store.insert(AUDIT_LOG, ledger.take_batch().to_arrow())
            # Each checkpoint's note signed as the sink signs it (no witnesses here).
            signed = [
                (checkpoint.sign(key, LOG_NAME, d.chain, d.seq, d.head_hash, d.merkle_root, event.ts), d.frontier)
                for d in due
            ]
            store.insert(AUDIT_CHECKPOINTS, checkpoint_table(signed))
            for cp, _ in signed:
                ledger.checkpointed(cp.chain, cp.seq)
    if len(ledger.batch):
        store.insert(AUDIT_LOG, ledger.take_batch().to_arrow())
    return ledger


def writer_headers(settings: Settings, value: bytes) -> list[tuple[str, bytes]]:
    """The headers the service that writes ``value`` would sign it with, using the services' keys
    under ``settings.home`` (the ones the sink pins there): the signer's when its events are the
    signer's, else the worker's."""
    actors = {event.actor for event in audit_events_of(value)}
    return _writer(settings, "signer" if "service:signer" in actors else "worker").headers(value)


_writers: dict[tuple[Path, str], AuditSigner] = {}


def _writer(settings: Settings, role: Role) -> AuditSigner:
    # Once per service and home, as a service loads its key once when it starts.
    key = (settings.home, role)
    if key not in _writers:
        _writers[key] = audit_signer(settings, role)
    return _writers[key]


async def audit_records(settings: Settings) -> list[Any]:
    """Every record on warden.audit.events, headers too, until the topic is quiet."""
    return await read_records(settings, topics.AUDIT_EVENTS)


async def redeliver(settings: Settings, record: Any) -> None:
    """The same record again, bytes and signature headers: what a restarted service sends."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker)
    await producer.start()
    try:
        await producer.send_and_wait(
            record.topic, record.value, key=record.key, partition=record.partition, headers=list(record.headers)
        )
    finally:
        await producer.stop()


def ledger_event_ids(settings: Settings) -> set[str]:
    """Every event id the ledger holds, read through its SQL endpoint."""
    host, _, port = settings.ledger_http.rpartition(":")
    client = clickhouse_connect.get_client(host=host, port=int(port))
    return {row[0] for row in client.query("SELECT event_id FROM audit_log").result_rows}


async def published_checkpoints(broker: str) -> list[dict[str, Any]]:
    """Every record on warden.audit.checkpoints, as the JSON objects the sink published."""
    consumer = AIOKafkaConsumer(
        topics.AUDIT_CHECKPOINTS, bootstrap_servers=broker, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        found = []
        for _ in range(10):
            batch = await consumer.getmany(timeout_ms=300)
            found += [orjson.loads(m.value) for messages in batch.values() for m in messages]
        return found
    finally:
        await consumer.stop()


def published_checkpoint(body: dict[str, Any], log: NoteKey) -> NoteCheckpoint:
    """What one record of warden.audit.checkpoints says, once its note holds under the log's key
    and lines up with the chain and seq beside it (NoteError or AssertionError if not)."""
    assert set(body) == {"chain", "seq", "head_hash", "ts", "note"}, body
    note = Note.parse(body["note"])
    assert log in verified_by(note, [log])
    said = NoteCheckpoint.parse(note.text)
    assert (said.origin, said.size) == (f"{log.name}/{body['chain']}", body["seq"] + 1), body
    return said


REPO = Path(__file__).resolve().parents[1]


PRODUCE_DEADLINE_MS = 300_000


PRODUCE_SLICE = 1_000


async def produce(settings: Settings, payloads: list[tuple[Any, ...]]) -> None:
    """``(key, value)`` records signed as the service that writes them signs (`writer_headers`),
    or ``(key, value, headers)`` records sent as they are."""
    # A generous deadline per batch: aiokafka's default (40 s) expired a burst's batches on a busy
    # machine while the sink under test read the same broker (KafkaTimeoutError). And a slice at a
    # time: a send's deadline runs from the call, so the last of 16,000 sent at once waited for all
    # the others, and on a machine three times oversubscribed even 300 s ran out.
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker, acks="all", linger_ms=5, request_timeout_ms=PRODUCE_DEADLINE_MS
    )
    await producer.start()
    try:
        for first in range(0, len(payloads), PRODUCE_SLICE):
            batch = [
                producer.send(
                    topics.AUDIT_EVENTS,
                    value,
                    key=key.encode(),
                    headers=rest[0] if rest else writer_headers(settings, value),
                )
                for key, value, *rest in payloads[first : first + PRODUCE_SLICE]
            ]
            await asyncio.gather(*batch)
    finally:
        await producer.stop()


def count_via_endpoint(settings: Settings) -> int:
    try:
        client = clickhouse_connect.get_client(
            host="127.0.0.1", port=int(settings.ledger_http.rsplit(":", 1)[1]), compress=False
        )
        try:
            return int(str(client.command(f"SELECT count() FROM {AUDIT_LOG}")))
        finally:
            client.close()
    except Exception:
        return -1


class WitnessProcess:
    def __init__(self, name: str, directory: Path, log_vkey: str):
        self.name, self.directory, self.log_vkey = name, directory, log_vkey
        self.port = free_port()
        key = load_or_create_witness_key(directory)
        self.key = NoteKey.of(name, COSIGNATURE_V1, key)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        args = ["witness", "run", "--name", self.name, "--dir", str(self.directory), "--log", self.log_vkey]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", *args, "--listen", f"127.0.0.1:{self.port}"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=(self.directory / "witness.log").open("ab"),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # it prints its address once it serves
        assert self.key.vkey in line, (line, (self.directory / "witness.log").read_text())

    def kill(self) -> None:
        assert self.proc is not None, "the witness never started"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def post(self, body: bytes) -> tuple[int, str]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"{self.url}/add-checkpoint", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
