"""The hop table: how many requests each process sends its broker an intent, by Kafka API
(fetches, produces, offset commits, ListOffsets read-backs, heartbeats, ...), read from each
process's ``warden_kafka_requests_total`` (`runtime.kafka_requests`) before and after a run, and
the benchmark's own client's from this process."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from runtime.kafka_requests import KAFKA_REQUESTS, count_requests

CLIENT = "bench client"
# A process's metrics endpoint answers at once; one that does not (stopped) counts nothing.
SCRAPE_TIMEOUT_S = 5.0

Requests = dict[str, dict[str, float]]  # process -> Kafka API -> requests so far


def requests_now(home: Path) -> Requests:
    """Each process's Kafka requests so far, by API: every process of the stack under ``home`` that
    serves its metrics (its URL in ``run/<process>.metrics``), and this benchmark's client."""
    count_requests()
    found: Requests = {CLIENT: _counted([s for family in KAFKA_REQUESTS.collect() for s in family.samples])}
    for path in sorted((home / "run").glob("*.metrics")):
        try:
            with urllib.request.urlopen(path.read_text().strip(), timeout=SCRAPE_TIMEOUT_S) as answer:
                text = answer.read().decode()
        except OSError:
            continue
        for family in text_string_to_metric_families(text):
            if family.name == "warden_kafka_requests":
                found[path.stem] = _counted(family.samples)
    return found


def _counted(samples: list[Sample]) -> dict[str, float]:
    return {s.labels["api"]: s.value for s in samples if s.name.endswith("_total")}


def per_intent(before: Requests, after: Requests, intents: int) -> dict[str, dict[str, float]]:
    """Requests an intent, process by process and API by API, with each process's ``all``, to three
    significant digits (a burst's batches make a few thousandths); APIs a process sent none of
    during the run are left out."""
    if not intents:
        return {}
    table: dict[str, dict[str, float]] = {}
    for process, counts in after.items():
        was = before.get(process, {})
        row = {api: _figure((n - was.get(api, 0.0)) / intents) for api, n in sorted(counts.items())}
        row = {api: n for api, n in row.items() if n}
        if row:
            row["all"] = _figure(sum(row.values()))
            table[process] = row
    return table


def _figure(value: float) -> float:
    return float(f"{value:.3g}")
