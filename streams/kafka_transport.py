"""Faust's aiokafka transport, with the fetch wait Warden's latency needs, and a seek back to the
committed offsets that loses nothing on a partition with none.

Faust builds its worker consumer with ``fetch_max_wait_ms=1500`` and no setting to change it.
The broker may hold a fetch with no record ready for that long, and the embedded broker does:
an intent published just after a fetch was sent waits for it. Measured with `warden bench
pipeline` at 100 intents/s: submitted → decided p50 648 ms with Faust's 1500, 20-27 ms with a
5 ms wait (``Settings.fetch_wait_ms`` says what the default costs).

Faust drops what it fetched while its flow is stopped (a rebalance, a table's recovery) and seeks
each partition back to its committed offset, to read it again. aiokafka's ``seek_to_committed``
seeks only a partition whose committed offset is above 0: one where nothing was committed yet (a
new agent's partition, a fresh group) stays past what was dropped. Seen on the stack: an admin's
policy published while two workers started was read, dropped at their second rebalance, and never
applied. Those partitions are sought to their beginning, which is where the group's reset policy
("earliest", Faust's default) starts a partition with no committed offset. Changelog partitions
are left alone: Faust seeks them itself, from what each table has read.

Faust's table recovery reads each changelog partition to the end the broker lists, and the
embedded broker lists one that can trail (`runtime.kafka.fetched_ends`): so the ends come from a
fetch.

Registered as the ``warden://`` broker scheme; ``streams.topology`` sets ``fetch_max_wait_ms``
from the settings before it builds the app.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from runtime.kafka import fetched_ends

SCHEME = "warden"
fetch_max_wait_ms = 1500  # Faust's own, until the topology sets the deployment's


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its fetcher when the consumer starts, which is after this.
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed)

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        return await seek_to_committed(self._ensure_consumer(), self.app.tables.changelog_topics)

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reader = AIOKafkaConsumer(
            # This thread's consumer belongs to `Transport` below (an aiokafka one), as Faust casts it too.
            bootstrap_servers=faust_aiokafka.server_list(
                self.transport.url, cast(faust_aiokafka.Transport, self.transport).default_port
            ),
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
        )
        await reader.start()
        try:
            ends = await fetched_ends(reader, [TopicPartition(tp.topic, tp.partition) for tp in partitions])
        finally:
            await reader.stop()
        return {tp: ends[TopicPartition(tp.topic, tp.partition)] for tp in partitions}


async def seek_to_committed(consumer: AIOKafkaConsumer, skip_topics: Collection[str] = ()) -> Mapping[TP, int]:
    """Every assigned partition sought to its committed offset, and one with none committed (or 0)
    to its beginning, except those of ``skip_topics``; the committed offsets, as aiokafka's
    ``seek_to_committed`` returns them."""
    committed = await consumer.seek_to_committed()
    never = [tp for tp, offset in committed.items() if not offset and tp.topic not in skip_topics]
    if never:
        await consumer.seek_to_beginning(*never)
    return committed


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


drivers.TRANSPORTS[SCHEME] = f"{__name__}:Transport"
