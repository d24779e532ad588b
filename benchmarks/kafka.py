"""Talking to the broker for the benchmarks: topics, fast publishing, and watching an output topic.

Throughput is read from the output records' timestamps (CreateTime, set by the producing client
when it sends), from the first decision to the last, so worker start-up and consumer lag of the
harness itself are not counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from .workload import count_parcels

MAX_REQUEST = 8 << 20


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create topics (existing ones are left as they are)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete topics: the only way to give memory back on the memory-only broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        gone = [n for n in names if n in existing]
        if gone:
            await admin.delete_topics(gone)
    finally:
        await admin.close()


def _fast_gzip() -> None:
    # aiokafka gzips at level 9: ~40 MB/s on this JSON against ~95 MB/s at level 6, for a 10.6x vs 10.0x ratio.
    import gzip

    from aiokafka import codec
    from aiokafka.record import default_records

    def gzip_encode(payload, compresslevel=None):
        return gzip.compress(bytes(payload), compresslevel=6, mtime=0)

    codec.gzip_encode = gzip_encode
    default_records.gzip_encode = gzip_encode
    try:  # the Cython record builder, used when aiokafka's extensions are built
        import aiokafka.record._crecords.default_records as c_records
        c_records.gzip_encode = gzip_encode
    except ImportError:
        pass


@dataclass
class PublishStats:
    """What a publish call sent."""

    messages: int = 0
    parcels: int = 0
    seconds: float = 0.0
    sent_ms: dict = field(default_factory=dict)  # key -> record timestamp (ms), when asked for


async def publish(bootstrap: str, topic: str, messages: Iterable[bytes], partitions: int, parcels_per_message: int,
                  rate: float = 0.0, compression: str | None = None,
                  key_fn: Callable[[bytes], bytes | None] | None = None, record_times: bool = False,
                  stop: Callable[[], bool] | None = None) -> PublishStats:
    """Send each message round-robin over the partitions, at `rate` parcels/s (0 = as fast as possible)."""
    if compression == "gzip":
        _fast_gzip()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2 if rate else 10, acks="all",
                                max_request_size=MAX_REQUEST, max_batch_size=1 << 20,
                                compression_type=compression, enable_idempotence=False)
    await producer.start()
    stats = PublishStats()
    pending: list[asyncio.Future] = []
    t0 = time.monotonic()
    try:
        for i, msg in enumerate(messages):
            if stop is not None and stop():
                break
            if rate:
                ahead = stats.parcels / rate - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            key = key_fn(msg) if key_fn else None
            ts = int(time.time() * 1000)
            pending.append(await producer.send(topic, msg, key=key, partition=i % partitions, timestamp_ms=ts))
            if record_times and key is not None:
                stats.sent_ms[key] = ts
            stats.messages += 1
            stats.parcels += parcels_per_message
            if len(pending) >= 256:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    stats.seconds = time.monotonic() - t0
    return stats


@dataclass
class Watched:
    """Output records seen on a topic: per message its timestamp (ms), parcels, and when the harness saw it."""

    parcels: int = 0
    messages: int = 0
    bytes: int = 0
    without_reasons: int = 0  # decisions with an empty reasons list (no rule hit, no random pick)
    ts_ms: list = field(default_factory=list)
    counts: list = field(default_factory=list)
    seen_s: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    timed_out: bool = False

    start_ms: int | None = None   # when the work began, if before the first output record (see `started`)

    def started(self) -> int:
        """When the measured work began: the first output record, or `start_ms` when that is earlier."""
        first = min(self.ts_ms)
        return min(first, self.start_ms) if self.start_ms is not None else first

    def rate(self) -> float:
        """Parcels/s from the start to the last output record (parcels stamped at the start not counted)."""
        if len(self.ts_ms) < 2:
            return 0.0
        first, last = self.started(), max(self.ts_ms)
        if last <= first:
            return 0.0
        after = sum(n for t, n in zip(self.ts_ms, self.counts) if t > first)
        return after / ((last - first) / 1000.0)

    def span_s(self) -> float:
        """Seconds from the start to the last output record."""
        return (max(self.ts_ms) - self.started()) / 1000.0 if self.ts_ms else 0.0


async def first_timestamp(bootstrap: str, topic: str, partitions: int, since_ms: int = 0,
                          timeout: float = 30.0) -> int | None:
    """The earliest timestamp (ms) of the first record at or after since_ms on each partition of topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    firsts: dict[int, int] = {}
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline, idle = time.monotonic() + timeout, 0
        while len(firsts) < partitions and time.monotonic() < deadline and idle < 10:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            idle = 0 if batch else idle + 1
            for tp, msgs in batch.items():
                stamps = [m.timestamp for m in msgs if m.timestamp >= since_ms]
                if stamps and tp.partition not in firsts:
                    firsts[tp.partition] = min(stamps)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return min(firsts.values()) if firsts else None


async def watch(bootstrap: str, topic: str, partitions: int, expected_parcels: int, timeout: float,
                idle_timeout: float = 30.0, count: Callable[[bytes], int] = count_parcels,
                keep_keys: bool = False, ready: asyncio.Event | None = None,
                stop: Callable[[], bool] | None = None, since_ms: int = 0, out: Watched | None = None,
                expected_messages: int | None = None) -> Watched:
    """Read `topic` from the start until `expected_parcels` parcels were seen, or nothing new for idle_timeout.

    Records stamped before `since_ms` (an earlier run's output on the same topic) are skipped;
    `out`, when given, is filled in as records arrive so the caller can follow progress. With
    `expected_messages`, the topic is only read once that many records are on it: until then the
    harness just asks for the partitions' end offsets, so it does not take CPU from the consumer
    under measurement on this 2-core machine (`out.messages` follows the end offsets meanwhile).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=20, fetch_max_bytes=64 << 20,
                                max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    out = out if out is not None else Watched()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        if expected_messages is None:
            consumer.assign(tps)
        if ready is not None:
            ready.set()
        start = last_new = time.monotonic()
        if expected_messages is not None:  # not assigned yet: aiokafka prefetches assigned partitions in the background
            # The embedded broker's end offsets run behind the record count when a batch holds many
            # records, so they only say "still writing": reading starts once they reach the expected
            # count or stop moving for twice the longest pause seen between writes (at least a second);
            # reading then goes on until every parcel is seen.
            written, longest_pause = 0, 0.5
            while written < expected_messages and not (stop and stop()):
                await asyncio.sleep(0.2)
                now, before = time.monotonic(), written
                written = out.messages = sum((await consumer.end_offsets(tps)).values())
                if written > before:
                    longest_pause = max(longest_pause, now - last_new) if before else longest_pause
                    last_new = now
                if (written and now - last_new >= 2 * longest_pause) or now - start > timeout or \
                        now - (last_new if written else start) > max(idle_timeout, 60.0):
                    break
            out.messages, start = 0, time.monotonic()
            consumer.assign(tps)
        while out.parcels < expected_parcels and not (stop and stop()):
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            now_wall, now = time.time(), time.monotonic()
            for msgs in batch.values():
                for m in msgs:
                    if m.timestamp < since_ms:
                        continue
                    n = count(m.value)
                    out.parcels += n
                    out.messages += 1
                    out.bytes += len(m.value)
                    out.without_reasons += m.value.count(b'"reasons":[]')
                    out.ts_ms.append(m.timestamp)
                    out.counts.append(n)
                    out.seen_s.append(now_wall)
                    if keep_keys:
                        out.keys.append(m.key)
            if batch:
                last_new = now
            idle = now - (last_new if out.messages else start)
            if now - start > timeout or (out.messages and idle > idle_timeout) or \
                    (not out.messages and idle > max(idle_timeout, 60.0)):
                out.timed_out = True
                break
    finally:
        await consumer.stop()
    return out
