"""``warden status``: what `warden up` is running, and how far behind each reader is.

Per component: its pid, its state as the kernel has it (running; paused, as by SIGSTOP; down, a
process gone or a zombie no one reaped, and when the supervisor restarts it), how often the
supervisor restarted it and its last exit code. A supervisor that has not written its file for
a while is said to have stalled: what it wrote may no longer be true. Per consumer group (the streams worker's, the signer's): records on
its topics not yet committed. For the ledger: audit events on the topic not in the ledger
(`ledger.lag`), and every time its broker changed (where the ledger may have a gap). And every
final transaction a chain gave up (`tx.finality_violated`: finality violated, put right by the
signer, which sent the same bytes again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from infra.cli.output import add_json_flag, fail, print_json
from runtime.config import Settings, load
from runtime.metrics import metrics_file
from schemas import topics

# The supervisor writes its file every `infra.stack.supervisor.HEARTBEAT_S` (5 s): this much older,
# it has stopped looking at its processes.
STALLED_S = 30.0


def process_state(pid: int | None) -> str:
    """ "running", "paused" (stopped by a signal: SIGSTOP, a debugger) or "gone" (no such process, or
    a zombie: it exited and no one reaped it), as /proc has it; where there is no /proc, "running"
    for any process that exists."""
    if not pid:
        return "gone"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    except OSError:
        return "running" if _exists(pid) else "gone"
    state = stat[stat.rindex(")") + 2 :][:1]  # the field after the command's name, which may hold spaces
    if state in ("Z", "X", "x"):
        return "gone"
    return "paused" if state in ("T", "t") else "running"


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_runs(pid: int | None) -> bool:
    """Whether the process exists and has not exited (a zombie has)."""
    return process_state(pid) != "gone"


def component_state(c: dict[str, Any], up: bool, now: float) -> dict[str, Any]:
    """One component's line of the report, from the supervisor's file and the kernel."""
    state = process_state(c["pid"]) if up else "gone"
    due: float | None = c.get("restart_due_at")
    if state == "gone":
        state = "restarting" if up and due is not None else "down"
    return {
        "name": c["name"],
        "pid": c["pid"],
        "state": state,
        "alive": state == "running",
        "restart_in_s": max(0, round(due - now)) if due is not None and state == "restarting" else None,
        "restarts": c["restarts"],
        "last_exit_code": c["last_exit_code"],
        "up_for_s": round(now - c["started_at"]) if state == "running" else None,
    }


def _state_words(c: dict[str, Any]) -> str:
    if c["state"] == "running":
        return f"up {c['up_for_s']} s"
    if c["state"] == "paused":
        return "PAUSED"
    if c["state"] == "restarting":
        return f"DOWN, restart in {c['restart_in_s']} s"
    return "DOWN"


async def consumer_lag(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per group: records past its committed offsets (from the beginning where it committed none)."""
    from runtime.kafka import group_lag  # Kafka: only once `warden up` runs, not for the report of a stopped stack

    lags = {}
    for component, (group, names) in topics.CONSUMER_GROUPS.items():
        per_topic = await group_lag(settings, group, names)
        lags[component] = {"group": group, "lag": sum(per_topic.values()), "by_topic": per_topic}
    return lags


def ledger_lag(settings: Settings) -> dict[str, Any]:
    """Audit events on the topic that are not in the ledger (`ledger.lag` says why offsets cannot
    tell), read through its SQL endpoint."""
    # ClickHouse's client and the ledger's readers (pyarrow among them): only once `warden up` runs
    import clickhouse_connect

    from ledger.store import ClickHouseStore
    from ledger.tail import event_lag
    from ledger.verify import NOT_BELIEVED_SQL

    host, _, port = settings.ledger_http.rpartition(":")
    client = clickhouse_connect.get_client(host=host, port=int(port), connect_timeout=5, compress=False)
    store = ClickHouseStore(client, f"ledger endpoint http://{settings.ledger_http}", read_only=True)
    lag = event_lag(settings, store)
    changes = store.arrow("SELECT count() AS n FROM audit_log WHERE action = 'ledger.source_changed'")
    forged = store.arrow(f"SELECT count() AS n FROM audit_log WHERE {NOT_BELIEVED_SQL}")
    violated = store.arrow(
        "SELECT count() AS n, groupUniqArray(JSONExtractString(details, 'chain')) AS chains FROM audit_log "
        "WHERE action = 'tx.finality_violated'"
    )
    return {
        "lag": lag.lag,
        "counts": f"audit events on {topics.AUDIT_EVENTS} not in the ledger",
        "exact": lag.exact,
        "by_partition": {str(p): n for p, n in lag.missing.items()},
        "records_past_last_appended": lag.records_past,
        "source_changes": int(changes.column("n")[0].as_py()),
        "records_not_believed": int(forged.column("n")[0].as_py()),
        "finality_violations": int(violated.column("n")[0].as_py()),
        "finality_violated_on": sorted(violated.column("chains")[0].as_py()),
    }


def _metrics_url(settings: Settings, component: str) -> str | None:
    path = metrics_file(settings, component)
    return path.read_text().strip() if path.exists() else None


def cmd_status(args: argparse.Namespace) -> int:
    settings = load()
    path = settings.state_dir / "supervisor.json"
    if not path.exists():
        return fail("warden status", f"`warden up` has not run under WARDEN_HOME={settings.home}", 2)
    doc = json.loads(path.read_text())
    up = doc.get("running", False) and process_runs(doc.get("supervisor_pid"))
    now = time.time()
    components = [
        {**component_state({"name": name, **c}, up, now), "metrics": _metrics_url(settings, name)}
        for name, c in doc["components"].items()
    ]
    stalled = round(now - doc["updated_at"]) if up and now - doc.get("updated_at", now) > STALLED_S else None
    report = {
        "home": doc["home"],
        "up": up,
        "supervisor_metrics": _metrics_url(settings, "supervisor"),
        "supervisor_state": process_state(doc.get("supervisor_pid")) if up else "gone",
        "supervisor_stalled_s": stalled,
        "restarts_unrecorded": doc.get("restarts_unrecorded", 0),
        "broker_storage": doc.get("broker_storage"),
        "addresses": doc.get("addresses", {}),
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
    _print_processes(report, doc["supervisor_pid"], round(now - doc["updated_at"]))
    for name, address in report["addresses"].items():
        print(f"  {name:8} at {address}")
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
        if ledger["finality_violations"]:
            print(
                f"  FINALITY     {ledger['finality_violations']} final transaction(s) the chain gave up on "
                f"{', '.join(ledger['finality_violated_on'])}: sent again by the signer (same signed bytes); "
                "check the chain's node and its finality (`warden chains`); the events: `warden audit query "
                "\"SELECT ts, details FROM audit_log WHERE action = 'tx.finality_violated'\"`"
            )
    for error in report["errors"]:
        print(f"  could not read lag: {error}")
    return 0 if up else 1


def _print_processes(report: dict[str, Any], supervisor_pid: int, written_s: int) -> None:
    """The supervisor's lines and each component's: its pid, state and restarts."""
    if report["supervisor_state"] == "paused" or report["supervisor_stalled_s"] is not None:
        paused = " (it is paused)" if report["supervisor_state"] == "paused" else ""
        print(
            f"  the supervisor (pid {supervisor_pid}) has not looked at its processes for {written_s} s{paused}: "
            "what follows is what it last wrote"
        )
    if report["restarts_unrecorded"]:
        print(
            f"  {report['restarts_unrecorded']} restart(s) not on the audit topic yet: written when the broker takes them"
        )
    width = max((len(c["name"]) for c in report["components"]), default=0)
    for c in report["components"]:
        state = _state_words(c)
        exit_note = f", last exit code {c['last_exit_code']}" if c["last_exit_code"] is not None else ""
        where = f"  metrics {c['metrics']}" if c["metrics"] and c["alive"] else ""
        print(f"  {c['name']:{width}} pid {str(c['pid']):7} {state:12} restarts {c['restarts']}{exit_note}{where}")


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    add_json_flag(p)
    p.set_defaults(handler=cmd_status)
