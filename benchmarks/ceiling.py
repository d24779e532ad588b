"""The I/O ceiling: raw aiokafka consumes the manifests, decodes each with orjson, produces one message per input.

No screening, no Faust: per input message one `orjson.loads`, then one output shaped like the
screener's decisions message (a green decision stub per parcel) so the bytes produced match.
This is what the machine can move through the broker from one Python process.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from .kafka import MAX_REQUEST, Watched


def _stub(doc: object) -> tuple[bytes | None, bytes, int]:
    """Key, output value and parcel count for one decoded input."""
    if type(doc) is dict and type(doc.get("parcels")) is list:
        parcels = doc["parcels"]
        mid = doc.get("manifest_id") or ""
    else:
        parcels = [doc]
        mid = f"single:{doc.get('parcel_id') if type(doc) is dict else ''}"
    out = {"schema_version": 1, "manifest_id": mid,
           "decisions": [{"parcel_id": p.get("parcel_id"), "lane": "green", "score": 0.0, "reasons": []}
                         for p in parcels if type(p) is dict]}
    return mid.encode(), orjson.dumps(out), len(parcels)


async def run(bootstrap: str, in_topic: str, out_topic: str, partitions: int, expected_parcels: int,
              timeout: float = 300.0) -> Watched:
    """Consume `in_topic` until `expected_parcels` parcels went out to `out_topic`; times are send times."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_bytes=64 << 20,
                                max_partition_fetch_bytes=16 << 20, fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20,
                                max_request_size=MAX_REQUEST, enable_idempotence=False)
    await consumer.start()
    await producer.start()
    out = Watched()
    try:
        consumer.assign([TopicPartition(in_topic, p) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while out.parcels < expected_parcels:
            if time.monotonic() > deadline:
                out.timed_out = True
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            pending = []
            for msgs in batch.values():
                for m in msgs:
                    key, value, n = _stub(orjson.loads(m.value))
                    # The same clock the screener's producer stamps its decisions with.
                    out.ts_ms.append(int(time.time() * 1000))
                    pending.append(await producer.send(out_topic, value, key=key, partition=m.partition))
                    out.counts.append(n)
                    out.parcels += n
                    out.messages += 1
            if pending:
                await asyncio.gather(*pending)
    finally:
        await producer.stop()
        await consumer.stop()
    return out
