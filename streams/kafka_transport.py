"""Faust's aiokafka transport, with the fetch wait Warden's latency needs.

Faust builds its worker consumer with ``fetch_max_wait_ms=1500`` and no setting to change it.
The broker may hold a fetch with no record ready for that long, and the embedded broker does:
an intent published just after a fetch was sent waits for it. Measured with `warden bench
pipeline` at 100 intents/s: submitted → decided p50 648 ms with Faust's 1500, 20-27 ms with a
5 ms wait (``Settings.fetch_wait_ms`` says what the default costs).

Registered as the ``warden://`` broker scheme; ``streams.topology`` sets ``fetch_max_wait_ms``
from the settings before it builds the app.
"""

from __future__ import annotations

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "warden"
fetch_max_wait_ms = 1500  # Faust's own, until the topology sets the deployment's


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its fetcher when the consumer starts, which is after this.
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


drivers.TRANSPORTS[SCHEME] = f"{__name__}:Transport"
