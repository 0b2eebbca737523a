"""``warden status``: what `warden up` is running, and how far behind each reader is.

Per component: its pid, whether it is alive, how often the supervisor restarted it and
its last exit code. Per consumer group (the streams worker's, the signer's): records on
its topics not yet committed. For the ledger: audit events on the topic not in the ledger
(`ledger.lag`), and every time its broker changed (where the ledger may have a gap).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import clickhouse_connect
from aiokafka import AIOKafkaConsumer

from infra.cli.output import add_json_flag, fail, print_json
from ledger.lag import TailRecord, missing_by_partition
from ledger.store import sql_string
from ledger.verify import NOT_BELIEVED_SQL
from runtime.config import Settings, load
from runtime.kafka import group_lag, partitions
from runtime.metrics import metrics_file
from schemas import topics


def process_runs(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def consumer_lag(settings: Settings) -> dict[str, dict]:
    """Per group: records past its committed offsets (from the beginning where it committed none)."""
    lags = {}
    for component, (group, names) in topics.CONSUMER_GROUPS.items():
        per_topic = await group_lag(settings, group, names)
        lags[component] = {"group": group, "lag": sum(per_topic.values()), "by_topic": per_topic}
    return lags


# At most this many records past the ledger's last stored offsets are read to count the events
# they hold: a ledger far behind is reported as at least that far, without reading the whole topic.
TAIL_MAX_RECORDS = 20_000


async def audit_tail(
    settings: Settings, stored: dict[int, int], limit: int = TAIL_MAX_RECORDS
) -> tuple[dict[int, int], list[TailRecord], int]:
    """(the topic's end per partition, the records from each partition's ``stored`` next offset to
    its end, how many records past ``limit`` were left unread)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=5000,
        max_partition_fetch_bytes=settings.max_message_bytes,
    )
    try:
        await consumer.start()
        parts = await partitions(consumer, (topics.AUDIT_EVENTS,))
        ends = await consumer.end_offsets(parts)
        consumer.assign(parts)
        records: list[TailRecord] = []
        unread = 0
        for tp in parts:
            # A stored offset past the reported end: Tansu's high watermark trails its log; nothing to read.
            offset = min(stored.get(tp.partition, 0), ends[tp])
            consumer.seek(tp, offset)
            while offset < ends[tp] and len(records) < limit:
                fetched = (await consumer.getmany(tp, timeout_ms=2000, max_records=limit - len(records))).get(tp)
                if not fetched:
                    break  # the broker reports records it does not serve: counted unread below
                for m in fetched:
                    if m.offset < ends[tp]:
                        records.append(TailRecord.of(tp.partition, m.offset, m.value))
                offset = fetched[-1].offset + 1
            unread += max(0, ends[tp] - offset)
        return {tp.partition: end for tp, end in ends.items()}, records, unread
    finally:
        await consumer.stop()


def ledger_lag(settings: Settings) -> dict:
    """Audit events on the topic that are not in the ledger (`ledger.lag` says why offsets cannot
    tell), read through its SQL endpoint."""
    host, _, port = settings.ledger_http.rpartition(":")
    client = clickhouse_connect.get_client(host=host, port=int(port), connect_timeout=5)
    rows = client.query(
        "SELECT source_partition, max(source_offset) + 1 FROM audit_log "
        "WHERE action != 'ledger.source_changed' GROUP BY source_partition"
    ).result_rows
    stored = {int(p): int(o) for p, o in rows}
    ends, tail, unread = asyncio.run(audit_tail(settings, stored))
    ids = sorted({e for record in tail for e in record.event_ids})
    held: set[str] = set()
    for at in range(0, len(ids), 1000):
        listed = ", ".join(sql_string(e) for e in ids[at : at + 1000])
        held.update(
            r[0]
            for r in client.query(f"SELECT DISTINCT event_id FROM audit_log WHERE event_id IN ({listed})").result_rows
        )
    missing = missing_by_partition(tail, held)
    changes = client.query("SELECT count() FROM audit_log WHERE action = 'ledger.source_changed'").result_rows[0][0]
    forged = client.query(f"SELECT count() FROM audit_log WHERE {NOT_BELIEVED_SQL}").result_rows[0][0]
    return {
        # Each record left unread holds at least one event: then the lag is a lower bound (exact False).
        "lag": sum(missing.values()) + unread,
        "counts": f"audit events on {topics.AUDIT_EVENTS} not in the ledger",
        "exact": unread == 0,
        "by_partition": {str(p): missing.get(p, 0) for p in sorted(ends)},
        "records_past_last_appended": len(tail) + unread,
        "source_changes": int(changes),
        "records_not_believed": int(forged),
    }


def _metrics_url(settings: Settings, component: str) -> str | None:
    path = metrics_file(settings, component)
    return path.read_text().strip() if path.exists() else None


def cmd_status(args) -> int:
    settings = load()
    path = settings.state_dir / "supervisor.json"
    if not path.exists():
        return fail("warden status", f"`warden up` has not run under WARDEN_HOME={settings.home}", 2)
    doc = json.loads(path.read_text())
    up = doc.get("running", False) and process_runs(doc.get("supervisor_pid"))
    components = [
        {
            "name": name,
            "pid": c["pid"],
            "alive": up and process_runs(c["pid"]),
            "restarts": c["restarts"],
            "last_exit_code": c["last_exit_code"],
            "metrics": _metrics_url(settings, name),
            "up_for_s": round(time.time() - c["started_at"]) if up and process_runs(c["pid"]) else None,
        }
        for name, c in doc["components"].items()
    ]
    report = {
        "home": doc["home"],
        "up": up,
        "supervisor_metrics": _metrics_url(settings, "supervisor"),
        "broker_storage": doc.get("broker_storage"),
        "components": components,
        "consumer_lag": None,
        "ledger": None,
        "errors": [],
    }
    if up:
        try:
            report["consumer_lag"] = asyncio.run(consumer_lag(settings))
            report["ledger"] = ledger_lag(settings)
        except Exception as exc:  # noqa: BLE001 - status reports what it cannot reach instead of failing
            report["errors"].append(f"{exc.__class__.__name__}: {exc}")
    if args.json:
        print_json(report)
        return 0 if up else 1
    print(
        f"warden up {'is running' if up else 'is not running'} (WARDEN_HOME={report['home']}, broker storage "
        f"{report['broker_storage']})"
    )
    for c in components:
        state = f"up {c['up_for_s']} s" if c["alive"] else "DOWN"
        exit_note = f", last exit code {c['last_exit_code']}" if c["last_exit_code"] is not None else ""
        where = f"  metrics {c['metrics']}" if c["metrics"] and c["alive"] else ""
        print(f"  {c['name']:8} pid {str(c['pid']):7} {state:12} restarts {c['restarts']}{exit_note}{where}")
    for name, lag in (report["consumer_lag"] or {}).items():
        print(f"  lag {name:8} {lag['lag']} records ({lag['group']})")
    if report["ledger"] is not None:
        ledger = report["ledger"]
        gap = (
            f"; its broker changed {ledger['source_changes']} time(s): see `warden audit verify`"
            if ledger["source_changes"]
            else ""
        )
        at_least = "" if ledger["exact"] else "at least "
        print(f"  lag ledger   {at_least}{ledger['lag']} audit events on the topic not in the ledger{gap}")
        if ledger["records_not_believed"]:
            print(
                f"  ledger       {ledger['records_not_believed']} audit record(s) not believed (unsigned, signed "
                "by an unpinned key or speaking as another service): someone other than Warden's services "
                "writes to warden.audit.events; `warden audit verify` says how to list them"
            )
    for error in report["errors"]:
        print(f"  could not read lag: {error}")
    return 0 if up else 1


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    add_json_flag(p)
    p.set_defaults(handler=cmd_status)
