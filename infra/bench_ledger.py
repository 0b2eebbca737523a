"""``warden bench ledger``: append and verify rates of the audit ledger on chDB.

Append is the sink's path minus the broker: raw audit records (the bytes a
consumer hands over) are parsed, de-duplicated, chained and inserted in
batches, with a signed checkpoint every 1,000 rows per chain. Verify is
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.cli.output import note, print_json
from runtime.config import Settings
from streams.ledger.checkpoint import public_key_hex
from streams.ledger.append import Batch, Ledger, SeenIds
from streams.ledger.sink import append_records, sign_checkpoints
from streams.ledger.store import ChdbStore
from streams.ledger.verify import verify

APPEND_TARGET = 50_000
VERIFY_TARGET = 1_000_000
CHAINS = 4
CHECKPOINT_EVERY = 1_000
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
MAX_RECORD_BYTES = Settings().max_record_bytes


def records(n: int) -> list[tuple[int, bytes]]:
    """(partition, record bytes) shaped like the pipeline's stage verdicts."""
    out = []
    for i in range(n):
        agent = f"agent-{i % 64}"
        body = {
            "schema_version": 1,
            "event_id": f"{i:032x}",
            "actor": "service:streams",
            "action": "stage.passed",
            "resource": f"intent:intent-{i // 6}",
            "ts": (T0 + timedelta(microseconds=i * 250)).isoformat().replace("+00:00", "Z"),
            "intent_id": f"intent-{i // 6}",
            "agent_id": agent,
            "details": {
                "stage": "daily_limit",
                "code": "ok",
                "reason": "within the rolling 24 h limit",
                "facts": {"spent_wei": str(i * 10**15), "limit_wei": "5000000000000000000"},
            },
        }
        out.append((i % 64 % CHAINS, orjson.dumps(body)))
    return out


def append(store: ChdbStore, raw: list[tuple[int, bytes]], key: Ed25519PrivateKey, batch: int) -> float:
    """The sink's append path (streams.ledger.sink.append_records and sign_checkpoints) over
    ``raw`` in batches, as the sink's loop runs it minus the broker."""
    ledger = Ledger({}, SeenIds(np.array([], dtype=np.uint64)))
    offsets = dict.fromkeys(range(CHAINS), 0)
    # pyarrow loads its time-zone data on the first zoned timestamp column it builds (~0.3 s): a
    # cost of the process, once, not of appending, so it is paid before the clock starts.
    Batch().to_arrow()
    started = time.perf_counter()
    for lo in range(0, len(raw), batch):
        now = datetime.now(timezone.utc)
        records = []
        for partition, value in raw[lo : lo + batch]:
            records.append((partition, offsets[partition], value))
            offsets[partition] += 1
        append_records(store, ledger, records, now, MAX_RECORD_BYTES)
        sign_checkpoints(store, ledger, key, now, CHECKPOINT_EVERY, timedelta(seconds=10))
    return time.perf_counter() - started


def run(events: int, batch: int, progress) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="warden-bench-ledger-"))
    try:
        progress(f"generating {events:,} audit records")
        raw = records(events)
        key = Ed25519PrivateKey.generate()
        store = ChdbStore(workdir / "clickhouse")
        try:
            store.ensure_schema()
            # As the sink does once started (run_sink): what exists now lives on, so the collector
            # stops rescanning it; the generated records stand in for the broker's.
            gc.freeze()
            progress(f"appending in batches of {batch:,}")
            append_seconds = append(store, raw, key, batch)
            del raw
            progress("verifying")
            report = verify(store, bytes.fromhex(public_key_hex(key)))
        finally:
            store.close()
        if not report.ok:
            raise RuntimeError(f"the benchmark ledger did not verify: {report.problems[0].describe()}")
        append_rate = events / append_seconds
        verify_rate = report.rows / report.seconds
        return {
            "events": events,
            "chains": CHAINS,
            "batch": batch,
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
    parser.add_argument("--batch", type=int, default=10_000, help="events per INSERT (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = run(args.events, args.batch, lambda line: note(f"bench ledger: {line}"))
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


def events_label(result: dict) -> str:
    return f"{result['events']:,} events in {result['chains']} chains"


if __name__ == "__main__":
    sys.exit(main())
