"""Prometheus metrics: every name is defined here once, and each component serves its own.

A component calls `serve` once when it starts. ``WARDEN_METRICS_PORT`` chooses the port:
a number (each container of docker-compose.yml serves on 9464), ``0`` (the default: any
free port, as the embedded stack runs several components on one machine) or ``off``. The
port actually bound is written to ``$WARDEN_HOME/run/<component>.metrics`` so that
`warden status` and a scraper can find it.

| metric | type | labels | from |
|---|---|---|---|
| `warden_intents_total` | counter | outcome, stage, code | streams worker: each decision (replays are not counted again) |
| `warden_stage_seconds` | histogram | stage | streams worker: the time one guardrail stage took |
| `warden_signer_outcomes_total` | counter | outcome, code | signer: each approved intent it ended (signed or refused) |
| `warden_txs_total` | counter | status | signer: each transaction status it reported (the lifecycle's: signer/lifecycle.py) |
| `warden_signer_queue_depth` | gauge | | signer: transactions awaiting a receipt |
| `warden_finality_violations_total` | counter | chain | signer: final transactions the chain no longer held (put right: sent again; each also a `tx.finality_violated` audit event) |
| `warden_consumer_lag` | gauge | component | streams worker (its group's committed offsets, every 15 s), signer, ledger sink (their position): records behind on their input topics |
| `warden_ledger_appended_total` | counter | | ledger sink: audit events appended |
| `warden_ledger_append_lag` | gauge | | ledger sink: audit records on the topic past the last one whose events are all in the ledger (a redelivery of held events is not lag) |
| `warden_ledger_redelivered_events_total` | counter | | ledger sink: audit events read again that the ledger held already (no row added) |
| `warden_component_restarts_total` | counter | component | `warden up`'s supervisor: restarts of a crashed service |
| `warden_offset_holes_total` | counter | topic | streams worker, signer (their changelogs), ledger sink (warden.audit.events): offsets the reader's position passed with no record there (`runtime.holes`), read past |
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from runtime.config import Settings
from runtime.kafka_requests import count_requests

INTENTS = Counter("warden_intents_total", "Intents decided by the streams worker", ["outcome", "stage", "code"])
WORKER_FENCED = Counter(
    "warden_worker_fenced_total",
    "Partitions whose batch a streams worker did not publish: its changelog record did not hold, another "
    "worker had appended there since (runtime.owner)",
)
STAGE_SECONDS = Histogram(
    "warden_stage_seconds",
    "Time one guardrail stage took",
    ["stage"],
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
)
SIGNER_OUTCOMES = Counter("warden_signer_outcomes_total", "Approved intents the signer ended", ["outcome", "code"])
TXS = Counter("warden_txs_total", "Transaction statuses the signer reported", ["status"])
SIGNER_QUEUE = Gauge("warden_signer_queue_depth", "Transactions the signer is tracking to a receipt")
FINALITY_VIOLATIONS = Counter(
    "warden_finality_violations_total",
    "Final transactions the chain no longer held (a reorg deeper than its finality, a node that lost blocks): "
    "each sent again with the same signed bytes",
    ["chain"],
)
SOLANA_REPEAT_LANDINGS = Counter(
    "warden_solana_repeat_landings_total",
    "Further landings of a Solana message the agent signed once (a copy whose fee payer signed it again): each "
    "counted against the agent's limits",
    ["chain"],
)
CONSUMER_LAG = Gauge("warden_consumer_lag", "Records past this component's position on its input", ["component"])
LEDGER_APPENDED = Counter("warden_ledger_appended_total", "Audit events appended to the ledger")
LEDGER_REDELIVERED = Counter(
    "warden_ledger_redelivered_events_total", "Audit events read again that the ledger held already: no row added"
)
LEDGER_LAG = Gauge(
    "warden_ledger_append_lag",
    "Audit records on the topic past the last one whose events are all in the ledger: appended, or held already "
    "(a redelivered record adds no row and is not lag)",
)
API_REQUESTS = Counter(
    "warden_api_requests_total", "Requests warden api answered, by route and status", ["route", "status"]
)
API_KEY_STORE_RECORDS = Counter(
    "warden_api_key_store_records_total",
    "Records of warden.admins and warden.vault the HTTP API's signing-key reader has read",
)
API_SECONDS = Histogram(
    "warden_api_request_seconds",
    "Time warden api took to answer, by route (a signing request: until its verified outcome)",
    ["route"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0),
)
OFFSET_HOLES = Counter(
    "warden_offset_holes_total",
    "Offsets a reader's position passed with no record there (compaction, a transaction marker, a batch numbered "
    "and never stored): read past, not waited for (runtime.holes)",
    ["topic"],
)
RESTARTS = Counter("warden_component_restarts_total", "Restarts of a crashed service by the supervisor", ["component"])


def metrics_file(settings: Settings, component: str) -> Path:
    return settings.home / "run" / f"{component}.metrics"


def serve(settings: Settings, component: str) -> int | None:
    """Serve this process's metrics on 127.0.0.1 (all interfaces for a fixed port, as in a
    container), and count its Kafka requests from then on (`runtime.kafka_requests`); returns the
    port, or None when metrics are off."""
    if settings.metrics_port == "off":
        return None
    count_requests()
    port = int(settings.metrics_port)
    server, _ = start_http_server(port, addr="0.0.0.0" if port else "127.0.0.1")
    bound = server.server_address[1]
    path = metrics_file(settings, component)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"http://127.0.0.1:{bound}/metrics\n")
    return bound
