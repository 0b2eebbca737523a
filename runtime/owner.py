"""Partition-owned state: restored from its changelog (`runtime.changelog`) before the process
decides anything on the partition, and every batch's writes appended to it, and checked to hold,
before they are committed or anything is published. The signer's state and the streams worker's
are both owned this way (ARCHITECTURE.md, "Partition-owned state").

A consumer-group rebalance calls `on_partitions_revoked` (the batch in hand finishes and its
writes are appended first, while this process still owns the partitions) and then
`on_partitions_assigned` (each new partition is read from where this process's copy stopped, to
the end, before the first fetch). A crashed process revokes nothing: its partitions' last records
are on the topic, and the new owner reads them.

Nothing here knows what the state holds: a `PartitionStates` gives each partition's `PartitionState`
(the signer's SQLite file, the worker's tables in memory), and a `ChangelogFormat` the writes its
records may hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError, OffsetOutOfRangeError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.changelog import ChangelogChain, ChangelogError, ChangelogFormat, Entry, Write
from runtime.config import Settings
from runtime.holes import Holes, missing, settle_s
from runtime.kafka import client_options, listed_ends, partition_ids, quiet_ms
from schemas.errors import WardenError

log = logging.getLogger("warden.owner")

# A record of one partition's batch stays well under a broker's 1 MiB default: the main loop
# appends before the next intent once this much is written.
FLUSH_BYTES = 256 * 1024
# How long a read waits for the broker to answer before it says so (and keeps asking).
READ_TIMEOUT_S = 30.0
# How long fetches must go on saying that a partition ends before a record this process appended
# and the broker acknowledged before the log is taken for lost (`ChangelogGone`): a node just
# elected leader answers with a high watermark that trails the old leader's until its followers
# fetch from it (seen after a leader was SIGSTOPped). ListOffsets must agree: Kafka answers it with
# a retriable error while a new leader's high watermark trails. Nothing is decided there meanwhile.
GONE_AFTER_S = 30.0


class Fenced(WardenError, RuntimeError):
    """Another process appended to a partition this one appended to: it owns it now. Nothing of the
    batch there was committed or published."""


class ChangelogGone(WardenError, RuntimeError):
    """The broker no longer holds records of a changelog that this process read or wrote: the
    state they hold is unknown here, so nothing is decided."""


class PartitionState(Protocol):
    """One partition's state as the owner keeps it in step with the log: the open writes (what the
    next record holds), and where in the log the state is."""

    @property
    def writes(self) -> list[Write]: ...

    @property
    def written_bytes(self) -> int: ...

    @property
    def in_scope(self) -> bool: ...

    @property
    def where(self) -> str: ...

    def replay(self, writes: list[Write]) -> None: ...

    def changelog_position(self) -> tuple[int, int]: ...

    def set_changelog_position(self, head: int, next_offset: int) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def held(self) -> contextlib.AbstractContextManager[None]: ...


class PartitionStates(Protocol):
    count: int

    def partition(self, partition: int) -> PartitionState: ...

    def opened(self) -> Sequence[tuple[int, PartitionState]]: ...


class Offsets:
    """A group's offsets, committed only between whole batches (every record a committed position
    passes was decided, on the changelog, and published) and never after a batch failed: its
    records are past the consumer's position without having been published."""

    def __init__(self, consumer: AIOKafkaConsumer, every_s: float, now: float):
        self.consumer = consumer
        self.every_s = every_s
        self.last = now
        self.finished = False  # a batch with records finished since the last commit
        self.broken = False  # a batch raised: nothing more is committed by this process

    async def after_batch(self, records: int, now: float) -> None:
        if records:
            self.finished = True
        if not records or now - self.last >= self.every_s:
            await self.commit(now)

    async def commit(self, now: float) -> None:
        if self.broken or not self.finished:
            return
        self.finished, self.last = False, now
        try:
            await self.consumer.commit()
        except CommitFailedError:  # rebalanced meanwhile: the new owner gets the same outcomes again
            log.warning("offsets not committed: the group rebalanced; the next owner re-publishes the outcomes")


class PartitionOwner(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """The assigned partitions' state: restored from ``topic`` when assigned, appended to it batch
    by batch. ``stop_when_fenced``: a record of this process's that did not hold stops it
    (`Fenced` is raised, and kept in ``failure``: the signer); else `flush` returns the partitions
    lost, rolled back, for the caller to restore and decide again (the worker)."""

    def __init__(
        self,
        settings: Settings,
        states: PartitionStates,
        producer: AIOKafkaProducer,
        service_key: tuple[str, Ed25519PrivateKey],
        public_key_of: Callable[[str], str | None],
        on_restored: Callable[[int], Awaitable[None] | None],
        on_revoked: Callable[[int], None],
        on_revoking: Callable[[], Awaitable[None]] | None = None,
        *,
        topic: str,
        log_format: ChangelogFormat,
        stop_when_fenced: bool = True,
    ):
        self.settings = settings
        self.topic = topic
        self.log_format = log_format
        self.stop_when_fenced = stop_when_fenced
        self.states = states
        self.producer = producer
        self.writer, self._key = service_key
        self.public_key_of = public_key_of
        self.on_restored = on_restored
        self.on_revoked = on_revoked
        self.on_revoking = on_revoking
        self.owned: set[int] = set()
        # Held by the main loop for a whole batch, and by a rebalance: they never interleave.
        self.batch = asyncio.Lock()
        self._io = asyncio.Lock()  # one append or read of the changelog at a time
        self.failure: BaseException | None = None  # what a rebalance callback could not raise itself
        self.holes = Holes(topic, log)
        # Never reset to another offset: a read sought before the log's start (records deleted) or
        # past its end (a new broker) must fail, not have its position moved past offsets it needs,
        # which would then look like holes.
        self.reader = AIOKafkaConsumer(
            bootstrap_servers=settings.broker,
            enable_auto_commit=False,
            auto_offset_reset="none",
            fetch_max_wait_ms=settings.seek_fetch_wait_ms,
            max_partition_fetch_bytes=settings.max_message_bytes,
            **client_options(settings),
        )

    async def start(self) -> None:
        await self.reader.start()
        found = await partition_ids(self.reader, self.topic)
        if found != set(range(self.states.count)):
            raise RuntimeError(
                f"{self.topic} has partitions {sorted(found or ())}, it needs "
                f"0..{self.states.count - 1}, one per partition of the topics it keeps state for; "
                "create it with `warden up` (or with as many partitions as those topics)"
            )
        parts = [TopicPartition(self.topic, p) for p in range(self.states.count)]
        self.reader.assign(parts)
        for tp in parts:  # a position, so that a partition never read asks for no reset
            self.reader.seek(tp, 0)
        self.reader.pause(*parts)  # fetched only while a partition is read

    async def stop(self) -> None:
        await self.reader.stop()

    # The consumer group's callbacks. aiokafka logs and swallows what they raise, so a failure is
    # kept for the main loop to raise: a process that could not restore must not decide.
    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        async with self.batch:
            try:
                await self.flush()
                if self.on_revoking is not None:  # the offsets: the next owner starts past what this one finished
                    await self.on_revoking()
            except BaseException as exc:  # noqa: BLE001 - re-raised by the main loop
                self.failure = exc
            for tp in revoked:
                self.owned.discard(tp.partition)
                self.on_revoked(tp.partition)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        # Never in the middle of a batch: a restore rolls back a partition's open writes, and the
        # batch would publish what it decided with its record gone.
        async with self.batch:
            try:
                await self.restore(*(tp.partition for tp in assigned))
            except BaseException as exc:  # noqa: BLE001 - re-raised by the main loop
                self.failure = exc

    async def restore(self, *partitions: int) -> None:
        """Everything the partitions' changelog holds that this process's copy does not, applied
        and committed, before this process decides anything there. Call it holding `batch`.

        The partitions are read together, to one quiet fetch: each read ends only after a fetch
        wait with nothing new (1.2 s on S3 storage), so one at a time a process given four
        partitions waited four times as long before it decided anything."""
        partitions = tuple(sorted(p for p in set(partitions) if p not in self.owned))  # once per assignment
        if not partitions:
            return
        started = time.monotonic()
        async with self._io:
            states, starts = {}, {}
            for partition in partitions:
                state = states[partition] = self.states.partition(partition)
                if state.writes:  # written while it was not owned here: not on the log, so not kept
                    log.warning(
                        "partition %d had %d writes not on its changelog; dropped", partition, len(state.writes)
                    )
                    state.rollback()
                # From the last record this copy applied, so that its being gone shows: a log that no
                # longer holds what the copy was built from (a new broker, records deleted) would have
                # the process start without some agent's spend.
                starts[partition] = max(0, state.changelog_position()[1] - 1)
                self.holes.forget_below(partition, starts[partition])
            read = await self._read_to_quiet(starts)
            for partition, state in states.items():
                records = read[partition]
                _, next_offset = state.changelog_position()
                if next_offset > 0:
                    if not records or records[0][0] != next_offset - 1:
                        raise ChangelogGone(
                            f"{self.topic} partition {partition} no longer holds offset {next_offset - 1}, the "
                            f"last this process's copy of it ({state.where}) applied: the log it was restored "
                            "from is gone. Not deciding; restore the broker's data, or (a new chain and broker) "
                            "move the state directory aside"
                        )
                    records = records[1:]
                held = self._apply(state, partition, records)
                state.commit()
                self.owned.add(partition)
                log.info(
                    "partition %d restored from %s: %d records read, %d held, head at offset %d, in %.0f ms",
                    partition,
                    self.topic,
                    len(records),
                    held,
                    state.changelog_position()[0],
                    (time.monotonic() - started) * 1000,
                )
        # A partition that did not restore raised above: the process stops without deciding there.
        for partition in partitions:
            restored = self.on_restored(partition)
            if inspect.isawaitable(restored):
                await restored

    def pending_bytes(self) -> int:
        return sum(state.written_bytes for _, state in self.states.opened())

    async def flush(self, touched: Collection[int] = ()) -> set[int]:
        """Append every partition's open writes (one record each), check that each holds, and commit
        the partitions whose record holds. A partition in ``touched`` gets a record even with no
        writes: what was decided there without a write (a dead letter, a simulation's answer) is
        published only if this process still owns it. Call it holding `batch`: no intent is then
        half written.

        A record that did not hold: with ``stop_when_fenced`` Fenced is raised (nothing may be
        published); else those partitions are returned, rolled back and no longer owned."""
        async with self._io:
            pending: dict[int, PartitionState] = {}
            for partition, state in self.states.opened():
                if state.in_scope:
                    raise RuntimeError(f"partition {partition}: flush while an intent is being decided there")
                if not state.writes and partition not in touched:
                    continue
                if partition not in self.owned:
                    log.warning(
                        "partition %d is not this process's: %d writes dropped (its owner restores from the log)",
                        partition,
                        len(state.writes),
                    )
                    state.rollback()
                    continue
                pending[partition] = state
            if not pending:
                return set()
            with contextlib.ExitStack() as holding:
                for state in pending.values():
                    holding.enter_context(state.held())
                lost = await self._append(pending)
        for partition in lost:
            self.owned.discard(partition)
        if lost and self.stop_when_fenced:
            service = self.log_format.service
            self.failure = Fenced(
                f"another {service} appended to partition(s) {sorted(lost)} of {self.topic}: it owns them now. "
                f"Nothing of this batch there was committed or published; this {service} stops"
            )
            raise self.failure
        return lost

    async def _append(self, pending: dict[int, PartitionState]) -> set[int]:
        """Each partition's record appended; committed where it holds. Returns where it did not."""
        sent = {}
        for partition, state in pending.items():
            head, _ = state.changelog_position()
            value = self.log_format.seal(
                partition=partition, prev=head, writer=self.writer, writes=state.writes, key=self._key
            )
            sent[partition] = await self.producer.send(self.topic, value, partition=partition)
        offsets = {partition: (await ack).offset for partition, ack in sent.items()}
        lost = set()
        for partition, state in pending.items():
            head, next_offset = state.changelog_position()
            if offsets[partition] < next_offset:
                raise ChangelogGone(
                    f"{self.topic} partition {partition} took a record at offset {offsets[partition]}, "
                    f"before the last this process read ({next_offset - 1}): the broker lost the log. Not deciding"
                )
            # Ours follows `head`, so it holds unless a record between the last one this process
            # read and ours held first: then another process wrote the partition, and it is theirs.
            # Ours landing right after the last one read (the usual case) leaves no room for one.
            between = await self._read(partition, next_offset, offsets[partition] - 1)
            chain = ChangelogChain(head)
            others_held = [
                offset
                for offset, value in between
                if (entry := self._open(partition, value)) is not None and chain.holds(offset, entry)
            ]
            if others_held:
                state.rollback()
                lost.add(partition)
                continue
            state.set_changelog_position(offsets[partition], offsets[partition] + 1)
            state.commit()
            self.holes.forget_below(partition, offsets[partition])
        return lost

    def _open(self, partition: int, value: bytes) -> Entry | None:
        try:
            return self.log_format.open(value, partition, self.public_key_of)
        except ChangelogError:
            return None

    def _apply(self, state: PartitionState, partition: int, records: list[tuple[int, bytes]]) -> int:
        """Apply the records that hold, in order, and move the copy's position past all of them.
        Returns how many held."""
        head, next_offset = state.changelog_position()
        chain = ChangelogChain(head)
        held = 0
        for offset, value in records:
            next_offset = offset + 1
            try:
                entry = self.log_format.open(value, partition, self.public_key_of)
            except ChangelogError as exc:
                log.warning("%s partition %d offset %d is void: %s", self.topic, partition, offset, exc)
                continue
            if not chain.holds(offset, entry):
                log.warning(
                    "%s partition %d offset %d by %s is void: it follows offset %d, the last record that held is at %d",
                    self.topic,
                    partition,
                    offset,
                    entry.writer,
                    entry.prev,
                    chain.head,
                )
                continue
            state.replay(entry.writes)
            held += 1
        state.set_changelog_position(chain.head, next_offset)
        return held

    async def _read_to_quiet(self, starts: dict[int, int]) -> dict[int, list[tuple[int, bytes]]]:
        """(offset, value) of each partition's records from its start: on Apache Kafka to the end it
        lists now (its high watermark: every offset below it stored); on the embedded broker until
        every partition's fetch answered and nothing new came for a quiet period, not to the end it
        lists, which can trail its last record by far (seen: 11 listed for 40 records). A record
        appended meanwhile is found by the next append, whose check then finds that it did not
        hold. Offsets the position passed with no record are holes (`_settle`)."""
        if self.settings.on_kafka:
            got, passed = await self._fetch_to_listed_ends(starts)
        else:
            got, passed = await self._fetch(starts)
        got = await self._settle(starts, got, passed)
        return {partition: sorted(records.items()) for partition, records in got.items()}

    async def _fetch_to_listed_ends(self, starts: dict[int, int]) -> tuple[dict[int, dict[int, bytes]], dict[int, int]]:
        """`_fetch` to the ends the broker lists now; a partition already there is not fetched."""
        tps = {partition: TopicPartition(self.topic, partition) for partition in starts}
        listed = await listed_ends(self.reader, tps.values())
        behind = {partition: start for partition, start in starts.items() if listed[tps[partition]] > start}
        got: dict[int, dict[int, bytes]] = {partition: {} for partition in starts}
        passed = dict(starts)
        if behind:
            fetched, reached = await self._fetch(behind, ends={p: listed[tps[p]] - 1 for p in behind})
            got.update(fetched)
            passed.update(reached)
        return got, passed

    async def _read(self, partition: int, start: int, last: int) -> list[tuple[int, bytes]]:
        """(offset, value) of every one of the partition's records from ``start`` through ``last``:
        read until the consumer's position passes ``last`` (this process's own record, just
        acknowledged, is right after it), whether or not each offset holds a record. A hole is not
        waited for (`_settle`)."""
        if last < start:
            return []
        got, _ = await self._fetch({partition: start}, ends={partition: last})
        got = await self._settle({partition: start}, got, {partition: last + 1})
        return sorted((offset, value) for offset, value in got[partition].items() if offset <= last)

    async def _settle(
        self, starts: dict[int, int], got: dict[int, dict[int, bytes]], passed: dict[int, int]
    ) -> dict[int, dict[int, bytes]]:
        """``got`` with what filled the offsets the position passed without a record, the rest taken
        for holes (`runtime.holes`). The embedded broker numbers a batch before it stores it
        (`ledger.gaps`), so an offset passed may hold a record still being written: an offset not
        known for a hole yet is read again, from the first still empty, for `settle_s` (a quiet
        period, as a restore waits for "nothing more"), and what is still empty then is a hole. No
        wait where there is no hole."""
        unsure = {
            partition: gaps
            for partition, records in got.items()
            if (gaps := self.holes.unknown(partition, missing(starts[partition], passed[partition], records)))
        }
        until = time.monotonic() + settle_s(self.settings, self.settings.seek_fetch_wait_ms)
        while unsure and time.monotonic() < until:
            await asyncio.sleep(self.settings.seek_fetch_wait_ms / 1000)
            firsts = {partition: gaps[0] for partition, gaps in unsure.items()}
            again, _ = await self._fetch(firsts, ends=firsts)
            for partition, records in again.items():
                got[partition].update(records)
                unsure[partition] = [offset for offset in unsure[partition] if offset not in got[partition]]
            unsure = {partition: gaps for partition, gaps in unsure.items() if gaps}
        for partition, gaps in unsure.items():
            self.holes.note(partition, gaps)
        return got

    async def _fetch(
        self, starts: dict[int, int], ends: dict[int, int] | None = None
    ) -> tuple[dict[int, dict[int, bytes]], dict[int, int]]:
        """Each partition's records from its start (offset → value), and how far its position got.
        With ``ends``: until every position passes its end; without: until a fetch answered for every
        partition since the read began and nothing new came for `quiet_ms`.

        A fetch from an offset inside a batch returns the whole batch (the embedded broker's too,
        `runtime.kafka.fetched_ends`): records below the start are left out. A broker that answers
        no fetch is asked again, with backoff, for as long as it takes: nothing is decided on these
        partitions meanwhile (the caller holds the batch), and the process does not exit."""
        tps = {partition: TopicPartition(self.topic, partition) for partition in starts}
        got: dict[int, dict[int, bytes]] = {partition: {} for partition in starts}
        passed = dict(starts)
        quiet_s = quiet_ms(self.settings.seek_fetch_wait_ms) / 1000
        began_ms = time.time() * 1000  # aiokafka stamps each fetch answer in epoch ms
        heard = dict.fromkeys(starts, began_ms)  # each partition's last fetch answer
        waits, quiet_since = Backoff(READ_TIMEOUT_S), time.monotonic()
        short: dict[int, float] = {}  # partitions whose answers end before what they acknowledged, since when
        with self._reading(starts):
            while True:
                # A quiet read ends when its quiet period does, not up to a poll later.
                left_ms = int((quiet_since + quiet_s - time.monotonic()) * 1000) if ends is None else 0
                for tp, messages in (
                    await self._getmany(tps, starts, min(200, left_ms) if left_ms > 0 else 200)
                ).items():
                    fresh = {m.offset: m.value for m in messages if m.offset >= starts[tp.partition]}
                    if fresh.keys() - got[tp.partition].keys():
                        quiet_since = time.monotonic()
                    got[tp.partition].update(fresh)
                answers = {partition: self.reader.last_poll_timestamp(tp) or 0 for partition, tp in tps.items()}
                for partition, tp in tps.items():
                    passed[partition] = max(passed[partition], await self.reader.position(tp))
                if ends is not None and all(passed[p] > end for p, end in ends.items()):
                    return got, passed
                every_answered = all(stamp > began_ms for stamp in answers.values())
                if ends is None and every_answered and time.monotonic() - quiet_since >= quiet_s:
                    return got, passed
                if any(answers[p] > heard[p] for p in heard):
                    heard = answers
                    await self._check_end(ends, passed, short)
                    waits.answered()
                elif waits.due():
                    await waits.wait(log, self._unanswered(starts, ends, passed))

    async def _getmany(
        self, tps: dict[int, TopicPartition], starts: dict[int, int], timeout_ms: int
    ) -> dict[TopicPartition, list[Any]]:
        try:
            fetched: dict[TopicPartition, list[Any]] = await self.reader.getmany(*tps.values(), timeout_ms=timeout_ms)
            return fetched
        except OffsetOutOfRangeError:
            raise ChangelogGone(
                f"{self.topic} partition(s) {sorted(tps)}: the broker no longer holds offsets from "
                f"{sorted(starts.values())}, which this process needs (records deleted by retention or "
                "DeleteRecords, or a new broker). Not deciding; restore the broker's data, or (a new chain "
                "and broker) move the state directory aside"
            ) from None

    async def _check_end(self, ends: dict[int, int] | None, passed: dict[int, int], short: dict[int, float]) -> None:
        """A broker whose answers say, for `GONE_AFTER_S` and with ListOffsets agreeing, that a
        partition ends at or before an offset this process was told it wrote, lost the log. One such
        answer alone is not believed (a leader just elected): the client asks where the partition
        lives now, and the read goes on. ``short``: the partitions answered so, since when."""
        for partition, end in (ends or {}).items():
            tp = TopicPartition(self.topic, partition)
            highwater = self.reader.highwater(tp)
            if passed[partition] > end or highwater is None or highwater > end:
                short.pop(partition, None)
                continue
            now = time.monotonic()
            if partition not in short:
                short[partition] = now
                log.warning(
                    "%s partition %d: a fetch says it ends at offset %d, before offset %d, which the broker "
                    "acknowledged to this process; asking again (a leader just elected may not know it yet)",
                    self.topic,
                    partition,
                    highwater,
                    end + 1,
                )
                self.reader._client.force_metadata_update()  # aiokafka keeps no public way to this
            if now - short[partition] < GONE_AFTER_S:
                continue
            listed = await self._listed_end(tp)
            if listed is None or listed > end:  # not confirmed: the fetches' answer was stale
                continue
            raise ChangelogGone(
                f"{self.topic} partition {partition} ends at offset {highwater}, before offset {end + 1}, "
                f"a record this process appended and the broker acknowledged, and has said so for "
                f"{now - short[partition]:.0f} s: the broker lost the log. Not deciding; restore the broker's data"
            )

    async def _listed_end(self, tp: TopicPartition) -> int | None:
        """The partition's end as ListOffsets answers it now; None when the broker does not answer."""
        try:
            listed: dict[TopicPartition, int] = await self.reader.end_offsets([tp])
        except KafkaError as exc:
            log.warning("%s partition %d: no end listed (%s)", tp.topic, tp.partition, exc)
            return None
        return listed[tp]

    def _unanswered(self, starts: dict[int, int], ends: dict[int, int] | None, passed: dict[int, int]) -> str:
        wanted = ", ".join(
            f"partition {p} from offset {passed[p]}" + (f" through {ends[p]}" if ends else "") for p in sorted(starts)
        )
        return (
            f"{self.topic}: {wanted} not read: the broker ({self.settings.broker}) answered no fetch. Nothing is "
            "decided on these partitions until it does; check that the broker is up (`warden status`)"
        )

    @contextlib.contextmanager
    def _reading(self, starts: dict[int, int]) -> Iterator[None]:
        """Fetching the partitions, each from its start: the others stay paused, and so do these after."""
        tps = [TopicPartition(self.topic, partition) for partition in starts]
        for tp in tps:
            self.reader.seek(tp, starts[tp.partition])
        self.reader.resume(*tps)
        try:
            yield
        finally:
            self.reader.pause(*tps)


class Backoff:
    """How a reader waits on a broker that does not answer: after ``after_s`` of silence, a line
    saying what is not read, then again after 1 s, doubling to 30 s, while the silence lasts."""

    def __init__(self, after_s: float, first_s: float = 1.0, most_s: float = 30.0):
        self.after_s, self.first_s, self.most_s = after_s, first_s, most_s
        self.delay = first_s
        self.since = time.monotonic()

    def answered(self) -> None:
        self.delay, self.since = self.first_s, time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.since >= self.after_s

    async def wait(self, logger: logging.Logger, what: str) -> None:
        logger.error("%s; asking again in %.0f s", what, self.delay)
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.most_s)
