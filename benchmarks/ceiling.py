"""The I/O ceiling: a raw Kafka client consumes the manifests, decodes each with orjson, produces decisions-sized output.

No screening, no Faust: per input message one `orjson.loads`, then one output shaped like the
screener's decisions message (envelope plus a green decision per parcel: ~40 KB for 500 parcels)
so the bytes produced match. It runs as the worker does: in a process of its own, with the
worker's garbage-collector thresholds, batches of up to 64 messages, and the acknowledgements of
a batch awaited while the next is decoded (at most 2 batches in flight). Two clients:

- `aiokafka`, the client the worker uses (asyncio, pure-Python protocol, C record parsing);
- `confluent`, librdkafka through confluent-kafka (the client Quix Streams uses).

Both assign the input partitions directly (no group join), and stamp each output record with
the send time; the rate is counted from the first output record to the last.

Run alone: `python -m benchmarks.ceiling --client aiokafka --bootstrap H:P --in-topic T --out-topic U
--partitions 4 --parcels N` prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections import deque

import orjson

from .kafka import MAX_REQUEST, Watched

BATCH_MESSAGES = 64  # the worker's default SCREENER_BATCH_MAX_MESSAGES
MAX_BATCHES_IN_FLIGHT = 2  # as the worker: one batch acknowledging while the next is decoded
WORKER_GC_THRESHOLD = (200_000, 20, 50)  # as screener.kafka.worker.run_worker sets it
RULESET = {"id": "default", "version": "2026.11.1", "hash": "0123456789abcdef"}


def decisions_stub(doc: object, topic: str, partition: int, offset: int) -> tuple[bytes, bytes, int]:
    """Key, decisions-shaped output value and parcel count for one decoded input message."""
    if type(doc) is dict and type(doc.get("parcels")) is list:
        parcels = doc["parcels"]
        mid = str(doc.get("manifest_id") or "")
    else:
        parcels = [doc]
        mid = f"single:{doc.get('parcel_id') if type(doc) is dict else ''}"
    out = {"schema_version": 1, "manifest_id": mid, "source": {"topic": topic, "partition": partition, "offset": offset},
           "ruleset": RULESET, "decided_at": "2026-11-30T00:00:00.000000+00:00",
           "decisions": [{"parcel_id": p.get("parcel_id"), "lane": "green", "score": 0.0, "reasons": []}
                         for p in parcels if type(p) is dict]}
    return mid.encode(), orjson.dumps(out), len(parcels)


async def run_aiokafka(bootstrap: str, in_topic: str, out_topic: str, partitions: int, expected_parcels: int,
                       timeout: float, cpu: dict[str, float]) -> Watched:
    """aiokafka: consume `in_topic` until `expected_parcels` parcels went out to `out_topic`.

    `cpu` receives this process's CPU seconds at the first output record and at the end.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_bytes=64 << 20,
                                max_partition_fetch_bytes=16 << 20, fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20,
                                max_request_size=MAX_REQUEST, enable_idempotence=False)
    await consumer.start()
    await producer.start()
    out, in_flight = Watched(), deque()
    try:
        consumer.assign([TopicPartition(in_topic, p) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while out.parcels < expected_parcels:
            if time.monotonic() > deadline:
                out.timed_out = True
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=BATCH_MESSAGES)
            pending = []
            for msgs in batch.values():
                for m in msgs:
                    key, value, n = decisions_stub(orjson.loads(m.value), m.topic, m.partition, m.offset)
                    cpu.setdefault("first", time.process_time())
                    out.ts_ms.append(int(time.time() * 1000))
                    pending.append(await producer.send(out_topic, value, key=key, partition=m.partition))
                    out.counts.append(n)
                    out.bytes += len(value)
                    out.parcels += n
                    out.messages += 1
            if pending:
                in_flight.append(asyncio.gather(*pending))
            while in_flight and (len(in_flight) > MAX_BATCHES_IN_FLIGHT or in_flight[0].done()):
                await in_flight.popleft()
        for fut in in_flight:
            await fut
        cpu["last"] = time.process_time()
    finally:
        await producer.stop()
        await consumer.stop()
    return out


def run_confluent(bootstrap: str, in_topic: str, out_topic: str, partitions: int, expected_parcels: int,
                  timeout: float, cpu: dict[str, float]) -> Watched:
    """librdkafka (confluent-kafka): the same loop; acknowledgements counted by delivery callbacks."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ceiling-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 20,
                         "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20, "log_level": 3})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1 << 20,
                         "message.max.bytes": MAX_REQUEST, "enable.idempotence": False, "log_level": 3})
    out, acked, failed, batch_ends = Watched(), [0], [], deque()

    def delivered(err, _msg) -> None:
        if err is not None:
            failed.append(err)
        acked[0] += 1

    try:
        consumer.assign([TopicPartition(in_topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while out.parcels < expected_parcels:
            if time.monotonic() > deadline:
                out.timed_out = True
                break
            msgs = consumer.consume(num_messages=BATCH_MESSAGES, timeout=0.5)
            for m in msgs:
                if m.error():
                    raise KafkaException(m.error())
                key, value, n = decisions_stub(orjson.loads(m.value()), m.topic(), m.partition(), m.offset())
                cpu.setdefault("first", time.process_time())
                out.ts_ms.append(int(time.time() * 1000))
                producer.produce(out_topic, value, key, partition=m.partition(), on_delivery=delivered)
                out.counts.append(n)
                out.bytes += len(value)
                out.parcels += n
                out.messages += 1
            if msgs:
                batch_ends.append(out.messages)
            producer.poll(0)
            while len(batch_ends) > MAX_BATCHES_IN_FLIGHT:
                producer.poll(0.005)
                while batch_ends and acked[0] >= batch_ends[0]:
                    batch_ends.popleft()
            if failed:
                raise KafkaException(failed[0])
        if producer.flush(60):
            raise RuntimeError("librdkafka ceiling: output not acknowledged within 60 s")
        cpu["last"] = time.process_time()
    finally:
        consumer.close()
    return out


def main(argv: list[str] | None = None) -> None:
    """Run one ceiling and print its figures as one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--client", choices=("aiokafka", "confluent"), default="aiokafka")
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--in-topic", required=True)
    ap.add_argument("--out-topic", required=True)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--parcels", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args(argv)
    gc.set_threshold(*WORKER_GC_THRESHOLD)
    cpu: dict[str, float] = {}
    run = (args.bootstrap, args.in_topic, args.out_topic, args.partitions, args.parcels, args.timeout, cpu)
    seen = asyncio.run(run_aiokafka(*run)) if args.client == "aiokafka" else run_confluent(*run)
    busy = (cpu["last"] - cpu["first"]) / seen.span_s() if seen.span_s() and "first" in cpu else None
    print(json.dumps({"client": args.client, "parcels": seen.parcels, "messages": seen.messages,
                      "parcels_per_s": round(seen.rate(), 1), "span_s": round(seen.span_s(), 3),
                      "output_bytes_per_message": round(seen.bytes / seen.messages) if seen.messages else None,
                      "timed_out": seen.timed_out, "cpu_cores": {"ceiling": round(busy, 3) if busy else None}}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
