"""Publishes JSONL manifests (or bare parcels) to the manifests topic with aiokafka, optionally rate-limited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaProducer

from screener.kafka.worker import PRODUCER_MAX_REQUEST_BYTES


def parcels_in_line(line: bytes) -> int:
    """Cheap parcel count of one JSONL line (for rate limiting and progress), without decoding it."""
    n = line.count(b'"parcel_id"')
    return n or 1


class Publisher:
    """One producer; `send` paces messages to `rate` parcels/s and `flush` waits for every acknowledgement."""

    def __init__(self, bootstrap: list[str], topic: str, rate: float = 0.0) -> None:
        self.topic = topic
        self.rate = rate
        self.messages = 0
        self.parcels = 0
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all",
                                          max_request_size=PRODUCER_MAX_REQUEST_BYTES)
        self._pending: list[asyncio.Future] = []
        self._start = 0.0

    async def __aenter__(self) -> Publisher:
        await self._producer.start()
        self._start = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.flush()
        finally:
            await self._producer.stop()

    async def send(self, value: bytes, key: bytes | None = None) -> None:
        """Queue one message (waiting first when ahead of the rate)."""
        n = parcels_in_line(value)
        if self.rate > 0:
            ahead = self.parcels / self.rate - (time.monotonic() - self._start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        self._pending.append(await self._producer.send(self.topic, value, key=key))
        self.messages += 1
        self.parcels += n
        if len(self._pending) >= 1000:
            await self.flush()

    async def flush(self) -> None:
        """Wait until the broker acknowledged everything sent so far."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)


async def publish_lines(bootstrap: list[str], topic: str, lines: Iterable[bytes], rate: float = 0.0,
                        on_progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Send each non-empty line as one message; returns (messages, parcels), all acknowledged."""
    async with Publisher(bootstrap, topic, rate) as pub:
        for line in lines:
            line = line.strip()
            if line:
                await pub.send(line)
                if on_progress:
                    on_progress(pub.messages, pub.parcels)
    return pub.messages, pub.parcels
