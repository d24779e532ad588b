"""Publishes JSONL manifests (or bare parcels) to the manifests topic with aiokafka, optionally rate-limited."""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Iterable

from aiokafka import AIOKafkaProducer

from .app import PRODUCER_MAX_REQUEST_BYTES


def parcels_in_line(line: bytes) -> int:
    """Cheap parcel count of one JSONL line (for rate limiting and progress), without decoding it."""
    n = line.count(b'"parcel_id"')
    return n or 1


async def publish_lines(bootstrap: list[str], topic: str, lines: Iterable[bytes], rate: float = 0.0,
                        on_progress: Callable[[int, int], None] | None = None,
                        key_fn: Callable[[bytes], bytes | None] | None = None) -> tuple[int, int]:
    """Send each non-empty line as one message; `rate` parcels/s (0 = as fast as possible).

    Returns (messages, parcels) sent, all acknowledged by the broker.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=PRODUCER_MAX_REQUEST_BYTES,
                                acks="all", enable_idempotence=False)
    await producer.start()
    messages = parcels = 0
    pending: list[asyncio.Future] = []
    start = time.monotonic()
    try:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            n = parcels_in_line(line)
            if rate > 0:
                ahead = parcels / rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            pending.append(await producer.send(topic, line, key=key_fn(line) if key_fn else None))
            messages += 1
            parcels += n
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
            if on_progress:
                on_progress(messages, parcels)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return messages, parcels
