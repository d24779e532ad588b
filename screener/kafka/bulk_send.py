"""Produces a batch's output records in bulk: record batches filled directly, partitions computed at once.

`producer.send()` costs ~15-20 us of Python per record (partitioning the key in pure Python, a future and
a coroutine per record); at a 100% hit rate, with one `flagged` record per parcel, that alone was more than
the rest of the pipeline. Here the partitions of all keys come from one Numba call (Kafka's default
partitioner, kernels/partition.py, so keys land where any Kafka client would put them) and records go
into aiokafka record batches (`create_batch` / `send_batch`), one future per batch.

This uses the aiokafka producer inside Faust's producer service (`_ensure_producer`, an internal):
faust-streaming is pinned below its next major version for it.
"""

from __future__ import annotations

import asyncio
import itertools

from screener.kernels.partition import partitions_of

# A record this large gets a batch of its own, so that a broker refusing it for its size refuses no other.
SOLO_RECORD_BYTES = 256 << 10


class BulkSender:
    """Sends (kind, key, value[, partition]) records to their topics; returns (records, future) per produced batch."""

    def __init__(self, faust_producer, topics: dict[str, str]) -> None:
        self._faust_producer = faust_producer
        self._topics = topics
        self._round_robin = itertools.count()

    async def send(self, records: list[tuple[str, bytes | None, bytes]]) -> list[tuple[list, asyncio.Future]]:
        """Queue every record; the futures resolve when the broker has acknowledged each batch."""
        producer = self._faust_producer._ensure_producer()
        by_kind: dict[str, list] = {}
        for record in records:
            by_kind.setdefault(record[0], []).append(record)
        out: list[tuple[list, asyncio.Future]] = []
        for kind, group in by_kind.items():
            topic = self._topics[kind]
            partitions = sorted(await producer.partitions_for(topic))
            n = len(partitions)
            # A partition chosen by the caller (state records, lookups, facts), else the key's (only those keys
            # are hashed), else round robin for an unkeyed record, as Kafka clients do.
            keyed = [r[1] for r in group if len(r) == 3 and r[1] is not None]
            by_key = iter(partitions_of(keyed, n).tolist() if keyed else ())
            chosen = [r[3] % n if len(r) > 3 else next(self._round_robin) % n if r[1] is None else next(by_key)
                      for r in group]
            open_batches: dict[int, tuple[object, list]] = {}
            for record, slot in zip(group, chosen):
                partition = partitions[slot]
                key, value = record[1], record[2]
                if len(value) >= SOLO_RECORD_BYTES:
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
                    out.append(([record], await producer.send_batch(batch, topic, partition=partition)))
                    continue
                current = open_batches.get(partition)
                if current is None:
                    current = open_batches[partition] = (producer.create_batch(), [])
                if current[0].append(key=key, value=value, timestamp=None) is None:   # full: send it, start anew
                    out.append((current[1], await producer.send_batch(current[0], topic, partition=partition)))
                    current = open_batches[partition] = (producer.create_batch(), [])
                    current[0].append(key=key, value=value, timestamp=None)
                current[1].append(record)
            for partition, (batch, members) in open_batches.items():
                out.append((members, await producer.send_batch(batch, topic, partition=partition)))
        return out
