"""``warden bench ledger``: append and verify rates of the audit ledger on chDB.

Append is the sink's path minus the broker: raw audit records (the bytes and
headers a consumer hands over) have their writer's signature checked, are
parsed, de-duplicated, chained and inserted in batches, with a signed
checkpoint every 1,000 rows per chain. Verify is
``warden audit verify`` over the whole store. Targets (2 cores): append >=
50,000 events/s, verify >= 1,000,000 events/s.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.cli.output import note, print_json
from ledger.append import Batch, Ledger, SeenIds
from ledger.batch import append_records, sign_checkpoints
from ledger.checks import Record, WriterChecks
from ledger.keys import public_key_hex
from ledger.store import ChdbStore
from ledger.verify import verify
from runtime.config import Settings
from schemas.actions import AuditAction
from schemas.audit import audit_record
from schemas.auth import AuditSigner
from schemas.auth import public_key_hex as auth_public_key_hex
from schemas.stages import Stage

APPEND_TARGET = 50_000
VERIFY_TARGET = 1_000_000
CHAINS = 4
CHECKPOINT_EVERY = 1_000
LOG_NAME = "warden.local/audit"  # the default log name: a benchmark's checkpoints are signed as the sink's are
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
MAX_RECORD_BYTES = Settings().max_record_bytes
BATCH_RECORDS = Settings().ledger.batch_max
BATCH_BYTES = Settings().ledger.batch_max_bytes
# Events per audit record in the pipeline: the demo's ledger held 215 events from 61 records.
EVENTS_PER_RECORD = 4


class _Keys:
    """The one writer the generated records come from (``schemas.auth.AuditKeys``)."""

    def __init__(self, public_hex: str):
        self.public_hex = public_hex

    def audit_key(self, role: str, key_id: str) -> str | None:
        return self.public_hex if (role, key_id) == ("worker", "bench-worker") else None


def records(n: int, per_record: int, writer: AuditSigner) -> list[tuple[int, bytes, list[tuple[str, bytes]]]]:
    """(partition, record bytes, headers): ``n`` events shaped like the pipeline's stage verdicts,
    ``per_record`` of one agent's to a record (as `schemas.emit.join_audits` joins them), each
    record signed by ``writer`` as the worker signs its own."""
    out = []
    for lo in range(0, n, per_record):
        group = []
        for i in range(lo, min(n, lo + per_record)):
            agent = f"agent-{lo // per_record % 64}"
            body = {
                "schema_version": 1,
                "event_id": f"{i:032x}",
                "actor": "service:streams",
                "action": AuditAction.STAGE_PASSED,
                "resource": f"intent:intent-{lo // per_record}",
                "ts": (T0 + timedelta(microseconds=i * 250)).isoformat().replace("+00:00", "Z"),
                "intent_id": f"intent-{lo // per_record}",
                "agent_id": agent,
                "details": {
                    "stage": Stage.DAILY_LIMIT,
                    "code": "ok",
                    "reason": "within the rolling 24 h limit",
                    "facts": {"spent_wei": str(i * 10**15), "limit_wei": "5000000000000000000"},
                },
            }
            group.append(orjson.dumps(body))
        value = group[0] if per_record == 1 else audit_record(group)
        out.append((lo // per_record % 64 % CHAINS, value, writer.headers(value)))
    return out


def append(
    store: ChdbStore, raw: list[tuple[int, bytes, list[Any]]], keys: _Keys, key: Ed25519PrivateKey, batch: int
) -> float:
    """The sink's append path (ledger.batch.append_records and sign_checkpoints) over
    ``raw`` in batches of ``batch`` records and at most ``BATCH_BYTES`` (WARDEN_LEDGER_BATCH_BYTES),
    as the sink's loop runs it minus the broker:
    every record's signature checked (a batch's checks start before the previous batch is
    appended, as the sink starts them when it fetches), parsed, chained, stored."""
    ledger = Ledger({}, SeenIds(np.array([], dtype=np.uint64)))
    offsets = dict.fromkeys(range(CHAINS), 0)
    batches: list[list[Record]] = []
    chunk: list[Record] = []
    size = 0
    for partition, value, headers in raw:
        if chunk and (len(chunk) >= batch or size + len(value) > BATCH_BYTES):  # as the sink gathers
            batches.append(chunk)
            chunk, size = [], 0
        chunk.append((partition, offsets[partition], value, headers))
        offsets[partition] += 1
        size += len(value)
    batches.append(chunk)
    checks = WriterChecks()
    try:
        # pyarrow loads its time-zone data on the first zoned timestamp column it builds (~0.3 s),
        # and the checking processes start: costs of the process, once, not of appending.
        Batch().to_arrow()
        checks.submit(batches[0][:1], keys, MAX_RECORD_BYTES).writers()
        started = time.perf_counter()
        checked = checks.submit(batches[0], keys, MAX_RECORD_BYTES)
        for i, chunk in enumerate(batches):
            following = checks.submit(batches[i + 1], keys, MAX_RECORD_BYTES) if i + 1 < len(batches) else None
            now = datetime.now(timezone.utc)
            append_records(store, ledger, chunk, checked, now, MAX_RECORD_BYTES, keys)
            sign_checkpoints(store, ledger, key, LOG_NAME, now, CHECKPOINT_EVERY, timedelta(seconds=10))
            if following is None:  # that was the last batch
                break
            checked = following
        return time.perf_counter() - started
    finally:
        checks.close()


def run(events: int, batch: int, per_record: int, progress: Callable[[str], object]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="warden-bench-ledger-"))
    try:
        progress(f"generating {events:,} audit events, {per_record} to a signed record")
        writer_key = Ed25519PrivateKey.generate()
        raw = records(events, per_record, AuditSigner("worker", "bench-worker", writer_key))
        keys = _Keys(auth_public_key_hex(writer_key))
        key = Ed25519PrivateKey.generate()
        store = ChdbStore(workdir / "clickhouse")
        try:
            store.ensure_schema()
            # As the sink does once started (run_sink): what exists now lives on, so the collector
            # stops rescanning it; the generated records stand in for the broker's.
            gc.freeze()
            progress(f"appending in batches of {batch:,} records")
            append_seconds = append(store, raw, keys, key, batch)
            del raw
            progress("verifying")
            report = verify(store, bytes.fromhex(public_key_hex(key)), log_name=LOG_NAME)
        finally:
            store.close()
        if not report.ok:
            raise RuntimeError(f"the benchmark ledger did not verify: {report.problems[0].describe()}")
        append_rate = events / append_seconds
        verify_rate = report.rows / report.seconds
        return {
            "events": events,
            "chains": CHAINS,
            "batch_records": batch,
            "batch_bytes": BATCH_BYTES,
            "events_per_record": per_record,
            "append_seconds": round(append_seconds, 3),
            "append_events_per_s": round(append_rate),
            "verify_seconds": round(report.seconds, 3),
            "verify_events_per_s": round(verify_rate),
            "checkpoints_verified": sum(c.checkpoints for c in report.chains),
            "targets": {"append_events_per_s": APPEND_TARGET, "verify_events_per_s": VERIFY_TARGET},
            "met": {"append": append_rate >= APPEND_TARGET, "verify": verify_rate >= VERIFY_TARGET},
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warden bench ledger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="store size (default: %(default)s)")
    parser.add_argument(
        "--batch",
        type=int,
        default=BATCH_RECORDS,
        help="records per INSERT (default: %(default)s, WARDEN_LEDGER_BATCH: what the sink "
        "takes at once when records wait), and at most WARDEN_LEDGER_BATCH_BYTES of them",
    )
    parser.add_argument(
        "--events-per-record",
        type=int,
        default=EVENTS_PER_RECORD,
        help="events a producer joins into one signed record (default: %(default)s, as in the "
        "pipeline; 1 is the worst case: a signature check per event)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.events_per_record < 1:
        parser.error("--events-per-record must be at least 1")
    result = run(args.events, args.batch, args.events_per_record, lambda line: note(f"bench ledger: {line}"))
    if args.json:
        print_json(result)
    else:
        mark = {True: "meets", False: "MISSES"}
        print(
            f"append: {result['append_events_per_s']:,} events/s ({mark[result['met']['append']]} {APPEND_TARGET:,})\n"
            f"verify: {result['verify_events_per_s']:,} events/s over {events_label(result)} "
            f"({mark[result['met']['verify']]} {VERIFY_TARGET:,})"
        )
    return 0 if all(result["met"].values()) else 1


def events_label(result: dict[str, Any]) -> str:
    return f"{result['events']:,} events in {result['chains']} chains, {result['events_per_record']} to a signed record"


if __name__ == "__main__":
    sys.exit(main())
