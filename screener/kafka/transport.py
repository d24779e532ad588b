"""Faust's aiokafka transport with the consumer's fetch wait as a setting.

Faust 0.15.3 hard-codes `fetch_max_wait_ms=1500` for its worker consumer. Apache Kafka answers a
waiting fetch as soon as data arrives, so the value only matters when idle; the embedded broker
(Tansu) holds the fetch for a large share of the wait even when data arrives (measured with one
message every 50 ms: p50 393 ms at 1500 ms, 122 ms at 500, 14 ms at 100), which alone would break
the 250 ms p99 latency target. `SCREENER_FETCH_MAX_WAIT_MS` sets it.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            # Read by AIOKafkaConsumer.start() when it builds its Fetcher, which happens later.
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """aiokafka transport whose worker consumer uses the app's `fetch_max_wait_ms`."""

    Consumer = _Consumer


class ScreenerApp(faust.App):
    """A Faust app that builds its consumer transport from `Transport` above."""

    fetch_max_wait_ms: int | None = None

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)
