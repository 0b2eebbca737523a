"""What the hop table reads: aiokafka's requests named by their Kafka API key, and counts turned
into requests an intent."""

from __future__ import annotations

from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.produce import ProduceRequest

from infra.bench.hops import per_intent
from runtime.kafka_requests import api_name


def test_requests_are_named_by_their_kafka_api_key() -> None:
    named = {api_name(r) for r in (FetchRequest, ProduceRequest, OffsetCommitRequest, MetadataRequest)}
    assert named == {"Fetch", "Produce", "OffsetCommit", "Metadata"}
    assert api_name(object()) == "object"  # no API key: its type, never a crash


def test_requests_an_intent_leave_out_what_a_process_did_not_send_during_the_run() -> None:
    before = {"streams": {"Fetch": 10.0, "Produce": 4.0, "Heartbeat": 3.0}, "signer": {"Fetch": 5.0}}
    after = {
        "streams": {"Fetch": 30.0, "Produce": 9.0, "Heartbeat": 3.0},
        "signer": {"Fetch": 5.0},
        "api": {"Fetch": 2.0},  # a process that began counting during the run: all of it
    }
    assert per_intent(before, after, 4) == {
        "streams": {"Fetch": 5.0, "Produce": 1.25, "all": 6.25},
        "api": {"Fetch": 0.5, "all": 0.5},
    }
    assert per_intent(before, after, 0) == {}
