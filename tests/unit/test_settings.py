"""Settings that protect an operator from a setting that breaks the stack quietly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from infra.cli import main
from infra.stack import kafka
from infra.stack.local import LocalStack, StackError
from runtime.config import KAFKA_FETCH_WAIT_MS, KAFKA_SEEK_FETCH_WAIT_MS, MEMORY_FETCH_WAIT_MS, Settings


def test_the_fetch_wait_defaults_by_broker() -> None:
    memory = dataclasses.replace(Settings(), broker_storage="memory", fetch_wait_setting=None)
    kafka = dataclasses.replace(memory, broker_storage="durable")
    assert (memory.fetch_wait_ms, kafka.fetch_wait_ms) == (MEMORY_FETCH_WAIT_MS, KAFKA_FETCH_WAIT_MS)
    assert dataclasses.replace(kafka, fetch_wait_setting=20).fetch_wait_ms == 20
    # A reader that seeks from partition to partition keeps a short wait on Kafka only.
    assert (memory.seek_fetch_wait_ms, kafka.seek_fetch_wait_ms) == (MEMORY_FETCH_WAIT_MS, KAFKA_SEEK_FETCH_WAIT_MS)
    assert dataclasses.replace(kafka, fetch_wait_setting=20).seek_fetch_wait_ms == 20


def test_warden_up_refuses_a_broker_count_it_cannot_run(capsys: pytest.CaptureFixture[str]) -> None:
    for wrong in ("0", "6", "three"):
        try:
            main(["up", "--brokers", wrong])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"--brokers {wrong} was accepted")
        assert f"{wrong!r} is not a number of brokers from 1 to 5" in capsys.readouterr().err


def test_each_kafka_node_takes_warden_s_largest_record_and_three_nodes_need_two_replicas(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), home=tmp_path)
    nodes = tuple(kafka.KafkaNode(i, 20000 + i, 21000 + i) for i in (1, 2, 3))
    three = kafka.KafkaCluster(kafka.new_cluster_id(), nodes)
    props = kafka.properties(settings, three, nodes[1])
    assert int(props["message.max.bytes"]) > settings.max_message_bytes
    assert int(props["replica.fetch.max.bytes"]) >= int(props["message.max.bytes"])
    assert props["controller.quorum.voters"] == "1@127.0.0.1:21001,2@127.0.0.1:21002,3@127.0.0.1:21003"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:20002,CONTROLLER://127.0.0.1:21002"
    assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("3", "2")
    assert props["offsets.topic.replication.factor"] == "3" and props["unclean.leader.election.enable"] == "false"
    assert props["log.retention.ms"] == "-1" and props["auto.create.topics.enable"] == "false"
    one = kafka.KafkaCluster(three.cluster_id, nodes[:1])
    assert (kafka.properties(settings, one, nodes[0])["min.insync.replicas"], one.replication) == ("1", 1)
    assert three.bootstrap == "127.0.0.1:20001,127.0.0.1:20002,127.0.0.1:20003"


def test_a_home_s_kafka_cluster_keeps_its_size(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), home=tmp_path, broker="127.0.0.1:19092")
    first = LocalStack(settings, brokers=3)._kafka_layout()
    assert len(first.nodes) == 3 and first.nodes[0].port == 19092
    assert LocalStack(settings)._kafka_layout() == first  # the same ids and ports on the next start
    try:
        LocalStack(settings, brokers=1)._kafka_layout()
    except StackError as exc:
        assert "holds a Kafka cluster of 3 node(s), not 1" in str(exc)
    else:
        raise AssertionError("a home's cluster of 3 was started as 1")


def test_a_command_finds_every_node_of_the_home_s_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARDEN_BROKER", raising=False)
    monkeypatch.setenv("WARDEN_HOME", str(tmp_path))
    assert Settings().broker == "127.0.0.1:19092"  # no cluster yet
    nodes = tuple(kafka.KafkaNode(i, 20000 + i, 21000 + i) for i in (1, 2, 3))
    kafka.save_cluster(tmp_path, kafka.KafkaCluster(kafka.new_cluster_id(), nodes))
    assert Settings().broker == "127.0.0.1:20001,127.0.0.1:20002,127.0.0.1:20003"
    monkeypatch.setenv("WARDEN_BROKER", "127.0.0.1:9092")
    assert Settings().broker == "127.0.0.1:9092"  # named, it wins


def test_a_new_kafka_cluster_id_never_starts_with_a_dash() -> None:
    # kafka-storage format -t -abc... reads the id as an option and fails; one id in 64 starts so,
    # so 2,000 of them all pass by chance with odds of about 1 in 10^13.
    ids = [kafka.new_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
