"""How long the broker holds a consumer's fetch when data arrives: latency against `fetch_max_wait_ms`.

Apache Kafka answers a waiting fetch as soon as data arrives; the embedded broker (Tansu) was seen
to answer only after a large share of the wait. Faust hard-codes fetch_max_wait_ms=1500 for its
consumer, so on this broker that alone puts a floor under publish-to-decision latency. One message
every 50 ms, plain aiokafka, no worker: the broker's share of the keep-up latency.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from .kafka import create_topics, delete_topics


async def probe(bootstrap: str, wait_ms: int, messages: int = 30, partitions: int = 4) -> dict:
    """Produce one message every 50 ms; p50 / max produce-to-consume latency with this fetch wait."""
    topic = f"longpoll-{wait_ms}"
    await create_topics(bootstrap, [topic], partitions)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    lat: list[float] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])

        async def consume() -> None:
            while len(lat) < messages:
                batch = await consumer.getmany(timeout_ms=3000)
                now = time.time() * 1000
                lat.extend(now - m.timestamp for msgs in batch.values() for m in msgs)

        reader = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        for i in range(messages):
            await producer.send_and_wait(topic, b"x", partition=i % partitions, timestamp_ms=int(time.time() * 1000))
            await asyncio.sleep(0.05)
        await asyncio.wait_for(reader, 30)
    finally:
        await producer.stop()
        await consumer.stop()
        await delete_topics(bootstrap, [topic])
    return {"fetch_max_wait_ms": wait_ms, "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "max_ms": round(max(lat), 1)}


async def run(bootstrap: str, waits: tuple[int, ...] = (1500, 500, 100), messages: int = 30) -> list[dict]:
    """The probe at each fetch wait (1500 ms is Faust's fixed value)."""
    return [await probe(bootstrap, w, messages) for w in waits]
