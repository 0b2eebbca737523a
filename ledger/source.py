"""The broker the ledger reads from, and what the ledger says when it changes.

Stored offsets mean something only on the broker they were read from. The sink remembers that
broker's cluster id in a file; meeting another, it reads every partition from the start and appends
a ``ledger.source_changed`` event (`source_changed_event`), so the change is on the record."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, event_id


async def cluster_id(broker: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        return str((await admin.describe_cluster()).get("cluster_id"))
    finally:
        await admin.close()


def read_source(path: Path) -> str | None:
    """The cluster id `write_source` kept, or None when the file is missing or is not what it writes."""
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    # Any other JSON (a list, a string, a number as the id) is not a kept id either; indexing a
    # list or a string by "cluster_id" raised TypeError, which stopped the sink at start.
    cluster = body.get("cluster_id") if isinstance(body, dict) else None
    return cluster if isinstance(cluster, str) else None


def write_source(path: Path, cluster: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"cluster_id": cluster}))
    temporary.replace(path)


def source_changed_event(
    previous: str | None, cluster: str, stored: dict[int, int], ends: dict[TopicPartition, int], now: datetime
) -> AuditEvent:
    """What the ledger says when its broker changed: records the previous broker held past the
    stored offsets, if any, were never read, and no one can read them now."""
    return AuditEvent(
        event_id=event_id(
            AuditAction.LEDGER_SOURCE_CHANGED, str(previous), cluster, json.dumps(sorted(stored.items()))
        ),
        actor="service:ledger",
        action=AuditAction.LEDGER_SOURCE_CHANGED,
        resource=f"topic:{topics.AUDIT_EVENTS}",
        ts=now,
        details={
            "previous_cluster_id": previous,
            "cluster_id": cluster,
            "previous_next_offsets": {str(p): o for p, o in sorted(stored.items())},
            "end_offsets": {str(tp.partition): o for tp, o in sorted(ends.items(), key=lambda i: i[0].partition)},
            "note": "the ledger re-read this broker from the start; anything the previous broker held beyond "
            "previous_next_offsets was never appended",
        },
    )
