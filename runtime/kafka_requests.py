"""Every request this process sends to a broker, counted by Kafka API
(``warden_kafka_requests_total{api}``): how many round trips an intent costs each process, which
`warden bench pipeline` reads before and after a run (its hop table).

aiokafka's producers, consumers, group coordinators and admin clients all write their requests
through ``AIOKafkaConnection.send`` (metadata updates and version lookups too, which go around
``AIOKafkaClient.send``); counting there sees every request written to a broker, none twice, and
costs a dictionary lookup and a counter increment a request. Installed once a process serves its metrics
(`runtime.metrics.serve`): a one-shot command counts nothing."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter

KAFKA_REQUESTS = Counter(
    "warden_kafka_requests_total",
    "Requests this process sent to a Kafka broker, by API (Fetch, Produce, OffsetCommit, ...)",
    ["api"],
)

# Kafka's API keys (the protocol's request header), by name: the ones Warden's clients send.
API_NAMES = {
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    3: "Metadata",
    8: "OffsetCommit",
    9: "OffsetFetch",
    10: "FindCoordinator",
    11: "JoinGroup",
    12: "Heartbeat",
    13: "LeaveGroup",
    14: "SyncGroup",
    15: "DescribeGroups",
    16: "ListGroups",
    18: "ApiVersions",
    19: "CreateTopics",
    22: "InitProducerId",
    24: "AddPartitionsToTxn",
    25: "AddOffsetsToTxn",
    26: "EndTxn",
    28: "TxnOffsetCommit",
    32: "DescribeConfigs",
}


_counting = False  # whether `count_requests` wrapped the connection's send already


def api_name(request: object) -> str:
    """The Kafka API a request is of, by its API key: its name, else the key itself."""
    key = getattr(request, "API_KEY", None)
    return API_NAMES.get(key, str(key)) if isinstance(key, int) else type(request).__name__


def count_requests() -> None:
    """Count every request this process's Kafka clients send from now on (once; again is a no-op)."""
    from aiokafka.conn import AIOKafkaConnection

    global _counting
    if _counting:
        return
    _counting = True
    send = AIOKafkaConnection.send

    @functools.wraps(send)
    def counted(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        answer = send(self, request, expect_response)
        KAFKA_REQUESTS.labels(api_name(request)).inc()  # written: a request the broker handles
        return answer

    AIOKafkaConnection.send = counted
