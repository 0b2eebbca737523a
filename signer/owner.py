"""The signer's partitions: restored from the changelog before it signs anything there, and every
batch's writes appended to it, and checked to hold, before they are committed or anything is
published.

A consumer-group rebalance calls `on_partitions_revoked` (the batch in hand finishes and its
writes are appended first, while this signer still owns the partitions) and then
`on_partitions_assigned` (each new partition is read from where this signer's file stopped, to
the end, before the first fetch). A crashed signer revokes nothing: its partitions' last records
are on the topic, and the new owner reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.config import Settings
from runtime.kafka import quiet_ms
from schemas import topics
from schemas.errors import WardenError
from signer.changelog import ChangelogChain, ChangelogError, open_record, seal
from signer.state import PartitionedState, SignerState

log = logging.getLogger("warden.signer.owner")

# A record of one partition's batch stays well under a broker's 1 MiB default: the main loop
# appends before the next intent once this much is written.
FLUSH_BYTES = 256 * 1024
READ_TIMEOUT_S = 30.0


class Fenced(WardenError, RuntimeError):
    """Another signer appended to a partition this one appended to: it owns it now. Nothing of the
    batch was committed or published; the signer stops, and its restart restores from the log."""


class PartitionOwner(ConsumerRebalanceListener):
    def __init__(
        self,
        settings: Settings,
        states: PartitionedState,
        producer: AIOKafkaProducer,
        service_key: tuple[str, Ed25519PrivateKey],
        public_key_of: Callable[[str], str | None],
        on_restored: Callable[[int], Awaitable[None] | None],
        on_revoked: Callable[[int], None],
        on_revoking: Callable[[], Awaitable[None]] | None = None,
    ):
        self.settings = settings
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
        self.reader = AIOKafkaConsumer(
            bootstrap_servers=settings.broker,
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.fetch_wait_ms,
            max_partition_fetch_bytes=settings.max_message_bytes,
        )

    async def start(self) -> None:
        await self.reader.start()
        found = self.reader.partitions_for_topic(topics.SIGNER_CHANGELOG)
        if not found:
            await self.reader.topics()
            found = self.reader.partitions_for_topic(topics.SIGNER_CHANGELOG)
        if found != set(range(self.states.count)):
            raise RuntimeError(
                f"{topics.SIGNER_CHANGELOG} has partitions {sorted(found or ())}, it needs "
                f"0..{self.states.count - 1}, one per partition of {topics.INTENTS_APPROVED}; "
                "create it with `warden up` (or as many partitions as that topic)"
            )
        parts = [TopicPartition(topics.SIGNER_CHANGELOG, p) for p in range(self.states.count)]
        self.reader.assign(parts)
        self.reader.pause(*parts)  # fetched only while a partition is read

    async def stop(self) -> None:
        await self.reader.stop()

    # The consumer group's callbacks. aiokafka logs and swallows what they raise, so a failure is
    # kept for the main loop to raise: a signer that could not restore must not sign.
    async def on_partitions_revoked(self, revoked) -> None:
        async with self.batch:
            try:
                await self.flush()
                if self.on_revoking is not None:  # the signer's offsets: the next owner starts past what it finished
                    await self.on_revoking()
            except BaseException as exc:  # noqa: BLE001 - re-raised by the main loop
                self.failure = exc
            for tp in revoked:
                self.owned.discard(tp.partition)
                self.on_revoked(tp.partition)

    async def on_partitions_assigned(self, assigned) -> None:
        # Never in the middle of a batch: a restore rolls back a partition's open writes, and the
        # batch would publish what it signed with its record gone.
        async with self.batch:
            try:
                await self.restore(*(tp.partition for tp in assigned))
            except BaseException as exc:  # noqa: BLE001 - re-raised by the main loop
                self.failure = exc

    async def restore(self, *partitions: int) -> None:
        """Everything the partitions' changelog holds that this signer's files do not, applied
        and committed, before this signer decides anything there. Call it holding `batch`.

        The partitions are read together, to one quiet fetch: each read ends only after a fetch
        wait with nothing new (1.2 s on S3 storage), so one at a time a signer given four
        partitions waited four times as long before it signed anything."""
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
                # From the last record this file applied, so that its being gone shows: a log that no
                # longer holds what the file was built from (a new broker, records deleted) would have
                # the signer start without some agent's spend.
                starts[partition] = max(0, state.changelog_position()[1] - 1)
            read = await self._read_to_quiet(starts)
            for partition, state in states.items():
                records = read[partition]
                _, next_offset = state.changelog_position()
                if next_offset > 0:
                    if not records or records[0][0] != next_offset - 1:
                        raise RuntimeError(
                            f"{topics.SIGNER_CHANGELOG} partition {partition} no longer holds offset "
                            f"{next_offset - 1}, the last this signer's record of it ({state.db_path}) applied: the "
                            "log it was restored from is gone. Not signing; restore the broker's data, or (a new "
                            "chain and broker) move the signer's state directory aside"
                        )
                    records = records[1:]
                held = self._apply(state, partition, records)
                state.commit()
                self.owned.add(partition)
                log.info(
                    "partition %d restored from %s: %d records read, %d held, head at offset %d, in %.0f ms",
                    partition,
                    topics.SIGNER_CHANGELOG,
                    len(records),
                    held,
                    state.changelog_position()[0],
                    (time.monotonic() - started) * 1000,
                )
        # A partition that did not restore raised above: the signer stops without signing there.
        # Its open transactions are compared with the chain before its next intent is signed.
        for partition in partitions:
            restored = self.on_restored(partition)
            if inspect.isawaitable(restored):
                await restored

    def pending_bytes(self) -> int:
        return sum(state.written_bytes for _, state in self.states.opened())

    async def flush(self) -> None:
        """Append every partition's open writes (one record each), check that each holds, and commit the
        partitions whose record holds. Raises Fenced if one did not: nothing of it may be published.
        Call it holding `batch`: no intent is then half written."""
        async with self._io:
            pending: dict[int, SignerState] = {}
            for partition, state in self.states.opened():
                if state.in_scope:
                    raise RuntimeError(f"partition {partition}: flush while an intent is being signed there")
                if not state.writes:
                    continue
                if partition not in self.owned:
                    log.warning(
                        "partition %d is not this signer's: %d writes dropped (its owner restores from the log)",
                        partition,
                        len(state.writes),
                    )
                    state.rollback()
                    continue
                pending[partition] = state
            if not pending:
                return
            with contextlib.ExitStack() as holding:
                for state in pending.values():
                    holding.enter_context(state.held())
                await self._append(pending)

    async def _append(self, pending: dict[int, SignerState]) -> None:
        """Each partition's record appended; committed where it holds."""
        sent = {}
        for partition, state in pending.items():
            head, _ = state.changelog_position()
            value = seal(partition=partition, prev=head, writer=self.writer, writes=state.writes, key=self._key)
            sent[partition] = await self.producer.send(topics.SIGNER_CHANGELOG, value, partition=partition)
        offsets = {partition: (await ack).offset for partition, ack in sent.items()}
        lost = []
        for partition, state in pending.items():
            head, next_offset = state.changelog_position()
            if offsets[partition] < next_offset:
                raise RuntimeError(
                    f"{topics.SIGNER_CHANGELOG} partition {partition} took a record at offset "
                    f"{offsets[partition]}, before the last this signer read ({next_offset - 1}): "
                    "the broker lost the log. Not signing"
                )
            # Ours follows `head`, so it holds unless a record between the last one this signer
            # read and ours held first: then another signer wrote the partition, and it is theirs.
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
                lost.append(partition)
                continue
            state.set_changelog_position(offsets[partition], offsets[partition] + 1)
            state.commit()
        if lost:
            for partition in lost:
                self.owned.discard(partition)
            self.failure = Fenced(
                f"another signer appended to partition(s) {lost} of {topics.SIGNER_CHANGELOG}: it owns them now. "
                "Nothing of this batch there was committed or published; this signer stops"
            )
            raise self.failure

    def _open(self, partition: int, value: bytes):
        try:
            return open_record(value, partition, self.public_key_of)
        except ChangelogError:
            return None

    def _apply(self, state: SignerState, partition: int, records: list[tuple[int, bytes]]) -> int:
        """Apply the records that hold, in order, and move the file's position past all of them.
        Returns how many held."""
        head, next_offset = state.changelog_position()
        chain = ChangelogChain(head)
        held = 0
        for offset, value in records:
            next_offset = offset + 1
            try:
                entry = open_record(value, partition, self.public_key_of)
            except ChangelogError as exc:
                log.warning("%s partition %d offset %d is void: %s", topics.SIGNER_CHANGELOG, partition, offset, exc)
                continue
            if not chain.holds(offset, entry):
                log.warning(
                    "%s partition %d offset %d by %s is void: it follows offset %d, the last record that held is at %d",
                    topics.SIGNER_CHANGELOG,
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
        """(offset, value) of each partition's records from its start until a fetch finds nothing
        new in any of them. Not to the end the broker reports: Tansu's reported end can trail its
        last record by far (on S3 storage it was seen at 1 with 40 records there). A record appended
        meanwhile is found by the next append, whose check then finds that it did not hold."""
        out: dict[int, list[tuple[int, bytes]]] = {partition: [] for partition in starts}
        with self._reading(starts) as fetch:
            while batch := await fetch(quiet_ms(self.settings.fetch_wait_ms)):
                for tp, messages in batch.items():
                    out[tp.partition] += [(m.offset, m.value) for m in messages if m.offset >= starts[tp.partition]]
        return out

    @contextlib.contextmanager
    def _reading(self, starts: dict[int, int]):
        """Fetching the partitions, each from its start: the others stay paused, and so do these after."""
        tps = [TopicPartition(topics.SIGNER_CHANGELOG, partition) for partition in starts]
        for tp in tps:
            self.reader.seek(tp, starts[tp.partition])
        self.reader.resume(*tps)

        async def fetch(timeout_ms: int) -> dict:
            return {
                tp: messages
                for tp, messages in (await self.reader.getmany(*tps, timeout_ms=timeout_ms)).items()
                if messages
            }

        try:
            yield fetch
        finally:
            self.reader.pause(*tps)

    async def _read(self, partition: int, start: int, last: int) -> list[tuple[int, bytes]]:
        """(offset, value) of the partition's records from ``start`` through ``last``."""
        if last < start:
            return []
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        tp = TopicPartition(topics.SIGNER_CHANGELOG, partition)
        with self._reading({partition: start}) as fetch:
            while not out or out[-1][0] < last:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{topics.SIGNER_CHANGELOG} partition {partition}: offsets {start}..{last} "
                        f"not readable within {READ_TIMEOUT_S:.0f} s; is the broker up?"
                    )
                out += [(m.offset, m.value) for m in (await fetch(200)).get(tp, []) if start <= m.offset <= last]
        return out
