"""One batch of audit records into the ledger, and the checkpoints it makes due: the sink's work
between reading records and publishing, Kafka-free.

Each record's rows (`decode`: its events, or one event saying why it is unreadable or not
believed), event ids the store already holds skipped, chained (`ledger.append.Ledger`) and stored
in one INSERT (`append_records`); then the checkpoints the chains owe, signed and stored
(`sign_checkpoints`)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta

import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import checkpoint as checkpoints
from ledger.append import Ledger
from ledger.checks import Checked, Record, Verdict
from ledger.records import Row, parse, row_of
from ledger.schema import AUDIT_CHECKPOINTS, AUDIT_LOG
from ledger.store import Store, sql_string
from ledger.verify import NOT_BELIEVED
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, event_id
from schemas.auth import AuditKeys, audit_writer, claimed_service

_UTC_US = pa.timestamp("us", tz="UTC")
CHECKPOINT_ARROW_SCHEMA = pa.schema(
    [
        ("chain", pa.uint16()),
        ("seq", pa.uint64()),
        ("head_hash", pa.string()),
        ("merkle_root", pa.string()),
        ("ts", _UTC_US),
        ("signature", pa.string()),
        ("frontier", pa.list_(pa.string())),
    ]
)


def unreadable_event_id(partition: int, offset: int) -> str:
    """The event id of `unreadable_event` for the record at ``offset`` of ``partition``."""
    return event_id("ledger", "unreadable", topics.AUDIT_EVENTS, str(partition), str(offset))


def unreadable_event(partition: int, offset: int, raw: bytes | None, reason: str, now: datetime) -> AuditEvent:
    """A record the sink cannot read still takes its place in the chain, so the
    ledger accounts for every offset of the topic."""
    payload = raw or b""
    return AuditEvent(
        event_id=unreadable_event_id(partition, offset),
        actor="service:ledger",
        action=AuditAction.DLQ_RECORDED,
        resource=f"record:{topics.AUDIT_EVENTS}/{partition}/{offset}",
        ts=now,
        details={
            "reason": reason,
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "payload_b64": base64.b64encode(payload).decode(),
        },
    )


def decode(
    partition: int,
    offset: int,
    raw: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    max_bytes: int,
    now: datetime,
    keys: AuditKeys,
    writer: Verdict | None = None,
) -> list[Row]:
    """The rows of one record: its events in order, or the one event saying why it is unreadable
    or not believed (a record that is not wholly valid is kept whole, as its payload, never split).
    A record is believed when a key ``keys`` pins for its writer's role signed it (``headers``)
    and none of its events claims to be another of Warden's services (`schemas.auth`).
    ``writer``: `audit_writer`'s verdict on the record, when the caller already has it."""
    if raw is None:
        return [row_of(unreadable_event(partition, offset, raw, "record has no value (tombstone)", now))]
    if len(raw) > max_bytes:
        return [
            row_of(
                unreadable_event(
                    partition,
                    offset,
                    raw[:max_bytes],
                    f"record is {len(raw)} bytes, over WARDEN_MAX_RECORD_BYTES={max_bytes}",
                    now,
                )
            )
        ]
    role, forged = writer or audit_writer(raw, headers, keys)
    if forged is not None:
        return [row_of(unreadable_event(partition, offset, raw, NOT_BELIEVED + str(forged), now))]
    try:
        rows = parse(raw)
        claimed = claimed_service(role, [row.actor for row in rows])
        if claimed is not None:
            return [row_of(unreadable_event(partition, offset, raw, NOT_BELIEVED + str(claimed), now))]
        return rows
    except ValueError as exc:
        return [
            row_of(
                unreadable_event(
                    partition, offset, raw, f"neither an AuditEvent nor a JSON array of them: {str(exc)[:500]}", now
                )
            )
        ]
    except TypeError as exc:
        # An AuditEvent whose details have no canonical JSON (orjson writes no integer beyond 64
        # bits): recorded, not a crash that the restarted sink would meet again on the same offset.
        return [
            row_of(
                unreadable_event(
                    partition, offset, raw, f"details cannot be written as canonical JSON: {str(exc)[:500]}", now
                )
            )
        ]


def stored_ids(store: Store, candidates: list[str]) -> set[str]:
    if not candidates:
        return set()
    listed = ", ".join(sql_string(c) for c in candidates)
    table = store.arrow(f"SELECT DISTINCT event_id FROM {AUDIT_LOG} WHERE event_id IN ({listed})")
    return set(table.column("event_id").to_pylist())


def checkpoint_table(signed: list[tuple[checkpoints.Checkpoint, tuple[str, ...]]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{**asdict(cp), "frontier": list(frontier)} for cp, frontier in signed],
        schema=CHECKPOINT_ARROW_SCHEMA,
    )


def append_records(
    store: Store,
    ledger: Ledger,
    records: Sequence[Record],
    checked: Checked,
    now: datetime,
    max_bytes: int,
    keys: AuditKeys,
) -> tuple[int, int]:
    """One batch of raw records ``(partition, offset, value, headers)`` into the ledger: their
    writers' signatures as ``checked`` found them (`WriterChecks.submit` on the same records),
    parsed (`decode`: a record may hold several events, each its own row), event ids the ledger
    holds skipped, chained, and stored in one INSERT. Returns (events read, events appended). On a
    StoreError the ledger's state is ahead of the store: resume from the store."""
    rows = [
        (p, offset, row)
        for (p, offset, raw, headers), writer in zip(records, checked.writers(), strict=True)
        for row in decode(p, offset, raw, headers, max_bytes, now, keys, writer)
    ]
    candidates = ledger.seen.stored_candidates([row.event_id for _, _, row in rows])
    duplicates = stored_ids(store, candidates)
    appended = ledger.append_rows(rows, now, duplicates)
    batch = ledger.take_batch()
    if len(batch):
        store.insert(AUDIT_LOG, batch.to_arrow())
    return len(rows), appended


def sign_checkpoints(
    store: Store,
    ledger: Ledger,
    key: Ed25519PrivateKey,
    log_name: str,
    now: datetime,
    every: int,
    interval: timedelta,
) -> list[checkpoints.Checkpoint]:
    """Signs (each as its note, under ``log_name``) and stores the checkpoints the chains owe (call
    once their rows are stored); returns them, to be sent to witnesses and published."""
    due = ledger.due_checkpoints(now, every, interval)
    if not due:
        return []
    signed = [
        (checkpoints.sign(key, log_name, d.chain, d.seq, d.head_hash, d.merkle_root, now), d.frontier) for d in due
    ]
    store.insert(AUDIT_CHECKPOINTS, checkpoint_table(signed))
    for cp, _ in signed:
        ledger.checkpointed(cp.chain, cp.seq)
    return [cp for cp, _ in signed]
