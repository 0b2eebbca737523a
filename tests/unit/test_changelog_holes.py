"""A changelog partition whose offsets skip (`runtime.holes`): the owner's reads wait for the
consumer's position to pass an offset, not for a record at it. A fake consumer serves the
partition as a broker does (a fetch returns whole batches from the one holding the offset asked,
and moves the position past the last batch it returned), so the arithmetic is tested with no
broker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from runtime import owner as owner_module
from runtime.config import Settings
from runtime.holes import missing, runs, settle_s, spans
from runtime.owner import ChangelogGone, PartitionOwner
from schemas import topics
from signer.changelog import SIGNER_LOG

TOPIC = topics.SIGNER_CHANGELOG
PARTITION = 3
Batch = tuple[int, int, dict[int, bytes]]  # first offset, next offset, {offset: value}


@dataclass
class Record:
    offset: int
    value: bytes


class FakeConsumer:
    """One partition's batches, each (first offset, next offset, {offset: value}): a hole is an offset
    no batch holds a record at. ``answering`` False: the broker is down (no fetch is answered).
    ``later``: batches stored only from the given fetch on (a record still being written)."""

    def __init__(
        self,
        batches: list[Batch],
        later: Sequence[tuple[int, Batch]] = (),
        answering: bool = True,
    ) -> None:
        self.batches = list(batches)
        self.later = list(later)  # (fetch number, batch)
        self.answering = answering
        self.positions: dict[TopicPartition, int] = {}
        self.stamps: dict[TopicPartition, int] = {}
        self.fetches = 0
        self._client = MetadataCounter()  # the aiokafka client inside a consumer, as the owner reaches it

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def resume(self, *tps: TopicPartition) -> None:
        pass

    def pause(self, *tps: TopicPartition) -> None:
        pass

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self.stamps.get(tp)

    def highwater(self, tp: TopicPartition) -> int | None:
        return max((end for _, end, _ in self.batches), default=0) if tp in self.stamps else None

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """ListOffsets: the end of what is stored now."""
        return {tp: max((end for _, end, _ in self.batches), default=0) for tp in tps}

    async def getmany(self, *tps: TopicPartition, timeout_ms: int = 0) -> dict[TopicPartition, list[Record]]:
        await asyncio.sleep(0.01)
        if not self.answering:
            return {}
        self.fetches += 1
        self.batches += [batch for at, batch in self.later if at == self.fetches]
        self.batches.sort()
        out = {}
        for tp in tps:
            position = self.positions[tp]
            records: list[Record] = []
            for _, end, values in self.batches:
                if end > position:
                    records += [Record(o, v) for o, v in sorted(values.items()) if o >= position]
                    position = end
            self.positions[tp] = position
            self.stamps[tp] = int(time.time() * 1000) + 1
            if records:
                out[tp] = records
        return out


class MetadataCounter:
    def __init__(self) -> None:
        self.updates = 0

    def force_metadata_update(self) -> None:
        self.updates += 1


@pytest.fixture
def owner(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeConsumer], PartitionOwner]:
    """An owner of the signer's changelog reading through ``consumer``."""

    def make(consumer: FakeConsumer) -> PartitionOwner:
        monkeypatch.setattr(owner_module, "AIOKafkaConsumer", lambda **settings: consumer)
        return _owner()

    return make


def _owner() -> PartitionOwner:
    return PartitionOwner(
        Settings(),
        states=None,  # type: ignore[arg-type]  # the reads touch no partition's state
        producer=None,  # nor the producer
        service_key=("signer-a", None),  # type: ignore[arg-type]
        public_key_of=lambda writer: None,
        on_restored=lambda partition: None,
        on_revoked=lambda partition: None,
        topic=TOPIC,
        log_format=SIGNER_LOG,
    )


def holes_counted() -> float:
    return REGISTRY.get_sample_value("warden_offset_holes_total", {"topic": TOPIC}) or 0.0


# Offsets 158 and 160 stored, 159 numbered and never stored (a power loss leaves such a hole):
# the restarted signer's own record is 160, and its check reads 159..159.
POWER_LOSS = [(158, 159, {158: b"r158"}), (160, 161, {160: b"own"})]


def test_the_arithmetic() -> None:
    assert missing(157, 161, {157, 158, 160}) == [159]
    assert missing(157, 157, set()) == []
    assert runs([5, 3, 4, 9, 11, 10]) == [(3, 5), (9, 11)]
    assert spans([159, 170, 171]) == "159, 170-171"
    # Read again for a quiet period on the embedded broker (it numbers before it stores); not at
    # all on Apache Kafka, which serves only what it stored.
    assert settle_s(Settings(broker_storage="memory"), 50) == 0.3
    assert settle_s(Settings(broker_storage="durable"), 500) == 0


def test_an_offset_never_stored_right_before_our_own_record_is_read_past_at_once(
    caplog: pytest.LogCaptureFixture, owner: Callable[[FakeConsumer], PartitionOwner]
) -> None:
    """The old read waited for a record at 159 for 30 s, then raised TimeoutError and the
    process exited."""

    async def scenario() -> tuple[list[tuple[int, bytes]], float, float]:
        reader = owner(FakeConsumer(POWER_LOSS))
        before = holes_counted()
        started = time.monotonic()
        between = await asyncio.wait_for(reader._read(PARTITION, 159, 159), timeout=5)
        return between, time.monotonic() - started, holes_counted() - before

    with caplog.at_level(logging.WARNING, logger="warden.owner"):
        between, took, counted = asyncio.run(scenario())
    assert between == []
    assert took < 2, took  # one quiet read (220 ms on memory storage) to be sure nothing fills 159
    assert counted == 1
    said = [r.getMessage() for r in caplog.records if "holes" in r.getMessage()]
    assert len(said) == 1 and f"{TOPIC} partition {PARTITION}: no record at offset(s) 159" in said[0]


def test_a_restore_reads_past_a_compacted_offset_once_and_a_hole_is_counted_once(
    owner: Callable[[FakeConsumer], PartitionOwner],
) -> None:
    """A batch 157..160 with 159 compacted away: the old restore re-read it for 10 s first."""
    compacted = [(157, 161, {157: b"a", 158: b"b", 160: b"c"})]

    async def scenario() -> tuple[dict[int, list[tuple[int, bytes]]], float, list[tuple[int, bytes]], float]:
        reader = owner(FakeConsumer(compacted))
        before = holes_counted()
        started = time.monotonic()
        read = await asyncio.wait_for(reader._read_to_quiet({PARTITION: 157}), timeout=5)
        took = time.monotonic() - started
        again = await asyncio.wait_for(reader._read(PARTITION, 158, 160), timeout=5)
        return read, took, again, holes_counted() - before

    read, took, again, counted = asyncio.run(scenario())
    assert read == {PARTITION: [(157, b"a"), (158, b"b"), (160, b"c")]}
    assert took < 2, took
    assert again == [(158, b"b"), (160, b"c")]
    assert counted == 1, "the hole at 159 is counted once, however often it is passed"


def test_a_record_still_being_written_is_waited_for_not_taken_for_a_hole(
    owner: Callable[[FakeConsumer], PartitionOwner],
) -> None:
    """The embedded broker numbers a batch before it stores it: 159 comes after 160 was served.
    It is read, and checked as any record (a zombie's record there would fence this one)."""

    async def scenario() -> tuple[list[tuple[int, bytes]], float]:
        reader = owner(FakeConsumer(POWER_LOSS, later=[(3, (159, 160, {159: b"zombie"}))]))
        before = holes_counted()
        between = await asyncio.wait_for(reader._read(PARTITION, 159, 159), timeout=5)
        return between, holes_counted() - before

    between, counted = asyncio.run(scenario())
    assert between == [(159, b"zombie")]
    assert counted == 0


def test_a_broker_that_answers_nothing_is_asked_again_and_the_read_goes_on_when_it_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, owner: Callable[[FakeConsumer], PartitionOwner]
) -> None:
    """Not TimeoutError out of the process: a line naming the partition and offsets, and the read
    finishes once the broker answers."""
    monkeypatch.setattr(owner_module, "READ_TIMEOUT_S", 0.1)
    consumer = FakeConsumer(POWER_LOSS, answering=False)

    async def broker_back() -> None:
        await asyncio.sleep(0.5)
        consumer.answering = True

    async def scenario() -> list[tuple[int, bytes]]:
        reader = owner(consumer)
        back = asyncio.create_task(broker_back())
        between = await asyncio.wait_for(reader._read(PARTITION, 159, 159), timeout=10)
        await back
        return between

    with caplog.at_level(logging.ERROR, logger="warden.owner"):
        assert asyncio.run(scenario()) == []
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert said, "nothing said while the broker did not answer"
    assert f"{TOPIC}: partition {PARTITION} from offset 159 through 159 not read" in said[0]
    assert "Nothing is decided on these partitions until it does" in said[0]


def test_a_broker_whose_log_ends_before_our_own_record_lost_it(
    monkeypatch: pytest.MonkeyPatch, owner: Callable[[FakeConsumer], PartitionOwner]
) -> None:
    """Its fetches say so for GONE_AFTER_S, and ListOffsets agrees."""
    monkeypatch.setattr(owner_module, "GONE_AFTER_S", 0.3)

    async def scenario() -> None:
        reader = owner(FakeConsumer([(158, 159, {158: b"r158"})]))
        await asyncio.wait_for(reader._read(PARTITION, 159, 159), timeout=5)

    with pytest.raises(ChangelogGone, match=f"partition {PARTITION} ends at offset 159, before offset 160"):
        asyncio.run(scenario())


def test_a_new_leader_whose_first_answers_end_before_our_own_record_is_asked_again(
    caplog: pytest.LogCaptureFixture, owner: Callable[[FakeConsumer], PartitionOwner]
) -> None:
    """A leader just elected answers with a high watermark that trails what the old leader
    acknowledged, until its followers fetch from it: seen with one of three Kafka nodes
    SIGSTOPped, where the worker and the signer exited with ChangelogGone at the first such answer
    though nothing was lost. Now the client is told to ask where the partition lives, and the
    read ends once the record is served (here from the fifth fetch)."""
    consumer = FakeConsumer([(158, 159, {158: b"r158"})], later=[(5, (159, 160, {159: b"own"}))])

    async def scenario() -> list[tuple[int, bytes]]:
        return await asyncio.wait_for(owner(consumer)._read(PARTITION, 159, 159), timeout=5)

    with caplog.at_level(logging.WARNING, logger="warden.owner"):
        assert asyncio.run(scenario()) == [(159, b"own")]
    assert consumer._client.updates == 1
    said = [r.getMessage() for r in caplog.records if "asking again" in r.getMessage()]
    assert len(said) == 1 and f"{TOPIC} partition {PARTITION}: a fetch says it ends at offset 159" in said[0]
