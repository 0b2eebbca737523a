"""The webhooks' state in the ledger's store, beside the ledger it delivers (tables in
`ledger.schema`): the endpoints, how far each endpoint's scan of each chain got, and each owed
delivery. Every write is an INSERT of rows that replace older ones by version, so a crash between
two writes leaves a state the next start continues: deliveries are written before the scan
position that made them, and a delivery's outcome after the attempt (a crash in between sends
it again: at least once)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from ledger.schema import AUDIT_LOG, WEBHOOK_CURSORS, WEBHOOK_DELIVERIES, WEBHOOK_ENDPOINTS
from ledger.store import Reader, Store, sql_string
from ledger.webhook_schedule import Delivery
from schemas.actions import AuditAction

_UTC_US = pa.timestamp("us", tz="UTC")
_ENDPOINT_SCHEMA = pa.schema(
    [
        ("webhook_id", pa.string()),
        ("url", pa.string()),
        ("events", pa.list_(pa.string())),
        ("added_at", _UTC_US),
        ("added_by", pa.string()),
        ("start", pa.string()),
        ("removed_at", _UTC_US),
        ("removed_by", pa.string()),
        ("version", pa.uint8()),
    ]
)
_CURSOR_SCHEMA = pa.schema([("webhook_id", pa.string()), ("chain", pa.uint16()), ("next_seq", pa.uint64())])
_DELIVERY_SCHEMA = pa.schema(
    [
        ("webhook_id", pa.string()),
        ("chain", pa.uint16()),
        ("seq", pa.uint64()),
        ("event_id", pa.string()),
        ("agent_id", pa.string()),
        ("owed_since", _UTC_US),
        ("next_at", _UTC_US),
        ("attempts", pa.uint32()),
        ("state", pa.string()),
        ("last_error", pa.string()),
        ("version", pa.uint64()),
        ("updated_at", _UTC_US),
    ]
)
# The columns of an audit_log row that a delivery's body is made of (`webhook_messages.body`).
ROW_COLUMNS = (
    "chain, seq, event_id, actor, action, resource, ts, intent_id, agent_id, details, integrity_hash, appended_at"
)


@dataclass(frozen=True)
class WebhookEndpoint:
    webhook_id: str
    url: str
    events: tuple[str, ...]
    added_at: datetime
    added_by: str
    start: dict[int, int]
    removed_at: datetime | None = None
    removed_by: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "webhook_id": self.webhook_id,
            "url": self.url,
            "events": list(self.events),
            "added_at": self.added_at,
            "added_by": self.added_by,
            "start": orjson.dumps({str(c): s for c, s in self.start.items()}).decode(),
            "removed_at": self.removed_at,
            "removed_by": self.removed_by,
            "version": 0 if self.removed_at is None else 1,
        }


def _endpoint(row: dict[str, Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        webhook_id=row["webhook_id"],
        url=row["url"],
        events=tuple(row["events"]),
        added_at=row["added_at"],
        added_by=row["added_by"],
        start={int(c): int(s) for c, s in orjson.loads(row["start"]).items()},
        removed_at=row["removed_at"],
        removed_by=row["removed_by"],
    )


def write_endpoint(store: Store, endpoint: WebhookEndpoint) -> None:
    store.insert(WEBHOOK_ENDPOINTS, pa.Table.from_pylist([endpoint.row()], schema=_ENDPOINT_SCHEMA))


def endpoints(store: Reader, webhook_id: str | None = None, removed: bool = False) -> list[WebhookEndpoint]:
    """The endpoints (``webhook_id``: that one), those removed too with ``removed``, oldest first."""
    where = [] if removed else ["removed_at IS NULL"]
    if webhook_id is not None:
        where.append(f"webhook_id = {sql_string(webhook_id)}")
    condition = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT * FROM {WEBHOOK_ENDPOINTS} FINAL {condition} ORDER BY added_at, webhook_id"
    return [_endpoint(row) for row in store.arrow(sql).to_pylist()]


def chain_heads(store: Reader) -> dict[int, int]:
    """Each chain's next seq: every row before it is in the ledger."""
    rows = store.arrow(f"SELECT chain, max(seq) + 1 AS next_seq FROM {AUDIT_LOG} GROUP BY chain").to_pylist()
    return {int(r["chain"]): int(r["next_seq"]) for r in rows}


def cursors(store: Reader, endpoint: WebhookEndpoint) -> dict[int, int]:
    """How far ``endpoint``'s scan of each chain got: its start, or further."""
    sql = (
        f"SELECT chain, max(next_seq) AS next_seq FROM {WEBHOOK_CURSORS} "
        f"WHERE webhook_id = {sql_string(endpoint.webhook_id)} GROUP BY chain"
    )
    scanned = {int(r["chain"]): int(r["next_seq"]) for r in store.arrow(sql).to_pylist()}
    return {**endpoint.start, **{c: max(s, endpoint.start.get(c, 0)) for c, s in scanned.items()}}


def owed_rows(
    store: Reader, endpoint: WebhookEndpoint, scanned: dict[int, int], heads: dict[int, int], limit: int
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """The rows ``endpoint`` is owed that its scan has not reached, up to ``heads`` (at most
    ``limit``, in ledger order), and how far the scan got with them."""
    ranges = [(c, scanned.get(c, 0), head) for c, head in sorted(heads.items()) if scanned.get(c, 0) < head]
    if not ranges:
        return [], dict(scanned)
    within = " OR ".join(f"(chain = {c} AND seq >= {lo} AND seq < {hi})" for c, lo, hi in ranges)
    actions = ", ".join(sql_string(e) for e in endpoint.events)
    # An endpoint is not told of its own deliveries given up: while it is down, each would be one
    # more it cannot take.
    own = f"resource = {sql_string('webhook:' + endpoint.webhook_id)} AND action = {sql_string(AuditAction.WEBHOOK_GAVE_UP)}"
    sql = (
        f"SELECT {ROW_COLUMNS} FROM {AUDIT_LOG} WHERE ({within}) AND action IN ({actions}) AND NOT ({own}) "
        f"ORDER BY chain, seq LIMIT {int(limit)}"
    )
    rows = store.arrow(sql).to_pylist()
    reached = dict(scanned)
    if len(rows) < limit:
        reached.update({c: hi for c, _, hi in ranges})
        return rows, reached
    last_chain, last_seq = int(rows[-1]["chain"]), int(rows[-1]["seq"])
    reached.update({c: hi for c, _, hi in ranges if c < last_chain})
    reached[last_chain] = last_seq + 1
    return rows, reached


def write_cursors(store: Store, webhook_id: str, reached: dict[int, int]) -> None:
    rows = [{"webhook_id": webhook_id, "chain": c, "next_seq": s} for c, s in sorted(reached.items())]
    if rows:
        store.insert(WEBHOOK_CURSORS, pa.Table.from_pylist(rows, schema=_CURSOR_SCHEMA))


def write_deliveries(store: Store, deliveries: Sequence[Delivery], now: datetime) -> None:
    if not deliveries:
        return
    rows = [
        {
            "webhook_id": d.webhook_id,
            "chain": d.chain,
            "seq": d.seq,
            "event_id": d.event_id,
            "agent_id": d.agent_id,
            "owed_since": d.owed_since,
            "next_at": d.next_at,
            "attempts": d.attempts,
            "state": d.state,
            "last_error": d.last_error[:500],
            "version": d.version,
            "updated_at": now,
        }
        for d in deliveries
    ]
    store.insert(WEBHOOK_DELIVERIES, pa.Table.from_pylist(rows, schema=_DELIVERY_SCHEMA))


def pending(store: Reader, webhook_ids: Iterable[str]) -> list[Delivery]:
    """Every delivery of these endpoints still pending, as last written."""
    ids = ", ".join(sql_string(i) for i in webhook_ids)
    if not ids:
        return []
    sql = f"SELECT * FROM {WEBHOOK_DELIVERIES} FINAL WHERE webhook_id IN ({ids}) AND state = 'pending'"
    return [_delivery(r) for r in store.arrow(sql).to_pylist()]


def given_up_unsaid(store: Reader) -> list[tuple[Delivery, datetime]]:
    """Every delivery given up on whose ``webhook.gave_up`` is not in the ledger, with when."""
    said = (
        f"SELECT resource, JSONExtractString(details, 'event_id') FROM {AUDIT_LOG} "
        f"WHERE action = {sql_string(AuditAction.WEBHOOK_GAVE_UP)}"
    )
    sql = (
        f"SELECT * FROM {WEBHOOK_DELIVERIES} FINAL WHERE state = 'given_up' "
        f"AND (concat('webhook:', webhook_id), event_id) NOT IN ({said}) ORDER BY updated_at"
    )
    return [(_delivery(r), r["updated_at"]) for r in store.arrow(sql).to_pylist()]


def _delivery(row: dict[str, Any]) -> Delivery:
    return Delivery(
        webhook_id=row["webhook_id"],
        chain=int(row["chain"]),
        seq=int(row["seq"]),
        event_id=row["event_id"],
        agent_id=row["agent_id"],
        owed_since=row["owed_since"],
        next_at=row["next_at"],
        attempts=int(row["attempts"]),
        state=row["state"],
        last_error=row["last_error"],
    )


def rows_at(store: Reader, positions: Iterable[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
    """The audit_log rows at these (chain, seq)."""
    wanted = sorted(set(positions))
    if not wanted:
        return {}
    within = " OR ".join(f"(chain = {c} AND seq = {s})" for c, s in wanted)
    rows = store.arrow(f"SELECT {ROW_COLUMNS} FROM {AUDIT_LOG} WHERE {within}").to_pylist()
    return {(int(r["chain"]), int(r["seq"])): r for r in rows}


def summaries(store: Reader) -> list[dict[str, Any]]:
    """Each endpoint in force with its deliveries counted by state, the oldest still pending, the
    last error, and the events given up on (newest first): what `warden webhooks list` prints."""
    sql = f"""
SELECT e.webhook_id AS webhook_id, e.url AS url, e.events AS events, e.added_at AS added_at, e.added_by AS added_by,
    countIf(d.state = 'delivered') AS delivered, countIf(d.state = 'pending') AS pending,
    countIf(d.state = 'given_up') AS given_up,
    minIf(d.owed_since, d.state = 'pending') AS oldest_pending,
    argMaxIf(d.last_error, d.updated_at, d.last_error != '') AS last_error,
    arrayMap(x -> x.1, arraySlice(
        arrayReverseSort(x -> x.2, groupArrayIf((d.event_id, d.updated_at), d.state = 'given_up')), 1, 20
    )) AS given_up_events
FROM (SELECT * FROM {WEBHOOK_ENDPOINTS} FINAL WHERE removed_at IS NULL) AS e
LEFT JOIN (SELECT * FROM {WEBHOOK_DELIVERIES} FINAL) AS d ON d.webhook_id = e.webhook_id
GROUP BY e.webhook_id, e.url, e.events, e.added_at, e.added_by
ORDER BY e.added_at, e.webhook_id
"""
    listed: list[dict[str, Any]] = store.arrow(sql).to_pylist()
    for row in listed:
        if not row["pending"]:
            row["oldest_pending"] = None
    return listed
