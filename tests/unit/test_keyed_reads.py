"""A client waiting on its own agents' records reads only the partitions those records land in.

Every service keys its records by agent, so an agent's outcomes are all in one partition of each
topic; reading the others made each waiting client fetch and check every agent's traffic.
"""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from runtime.kafka import KeyedPartitioner, keyed_partitions, partition_of

# The Java client's own vectors for Utils.murmur2 (kafka clients UtilsTest.testMurmur2), as signed ints.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"abc": 479470107,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
}


def test_records_land_where_the_java_client_puts_them() -> None:
    for key, signed in JAVA_MURMUR2.items():
        assert murmur2(key) & 0xFFFFFFFF == signed & 0xFFFFFFFF
        for count in (1, 4, 7):
            expected = (signed & 0x7FFFFFFF) % count
            assert partition_of(key.decode(), count) == expected
            assert KeyedPartitioner()(key, list(range(count)), []) == expected


@given(key=st.binary(max_size=64), partitions=st.lists(st.integers(0, 99), min_size=1, max_size=12, unique=True))
def test_the_keyed_partitioner_puts_every_key_where_the_default_does(key: bytes, partitions: list[int]) -> None:
    # Asked twice: the second answer comes from what the first remembered.
    for _ in range(2):
        assert KeyedPartitioner()(key, sorted(partitions), partitions) == DefaultPartitioner()(
            key, sorted(partitions), partitions
        )


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert {KeyedPartitioner()(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}


def test_keyed_partitions_counts_each_topics_own_partitions() -> None:
    parts = [TopicPartition("wide", p) for p in range(4)] + [TopicPartition("narrow", 0)]
    agent = next(a for a in (f"agent-{n}" for n in range(100)) if partition_of(a, 4) == 3)
    assert keyed_partitions(parts, [agent]) == [TopicPartition("wide", 3), TopicPartition("narrow", 0)]
    other = next(a for a in (f"agent-{n}" for n in range(100)) if partition_of(a, 4) == 1)
    assert keyed_partitions(parts, [agent, other]) == [
        TopicPartition("wide", 1),
        TopicPartition("wide", 3),
        TopicPartition("narrow", 0),
    ]
    assert keyed_partitions(parts, []) == []
