"""Reads one partition to its end, again and again: state rebuilt from, and kept in step with, a topic.

The end is the high-water mark of fetch responses, not ListOffsets (Tansu answers ListOffsets wrongly; fetch
high-water marks are right).
"""

from __future__ import annotations

import time

from aiokafka import TopicPartition

from screener.kafka.tail import start_consumer

READ_TIMEOUT_S = 120.0


class PartitionReader:
    """A consumer (no group) on one partition from its start; `read_to_end` returns what is new since the last call."""

    def __init__(self, bootstrap: list[str], topic: str, partition: int, max_records: int = 100_000) -> None:
        self.bootstrap = bootstrap
        self.tp = TopicPartition(topic, partition)
        self.max_records = max_records
        self._consumer = None
        self._absent = False

    async def _start(self) -> None:
        self._consumer = await start_consumer(self.bootstrap)   # TailError (one line) when no broker answers
        if self.tp.topic not in await self._consumer.topics():
            self._absent = True      # nothing to read yet: asked again on the next call
            await self.stop()
            return
        self._absent = False
        self._consumer.assign([self.tp])
        await self._consumer.seek_to_beginning(self.tp)

    async def read_to_end(self, timeout_s: float = READ_TIMEOUT_S) -> tuple[list[bytes], list[bytes]]:
        """Keys and values of the records after the last read, up to the partition's high-water mark."""
        if self._consumer is None:
            await self._start()
            if self._consumer is None:
                return [], []
        consumer, tp = self._consumer, self.tp
        keys: list[bytes] = []
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=200, max_records=self.max_records)
            for msg in batch.get(tp, []):
                keys.append(msg.key)
                values.append(msg.value)
            hw = consumer.highwater(tp)
            if hw is not None and await consumer.position(tp) >= hw:
                return keys, values
        raise TimeoutError(f"{tp.topic}[{tp.partition}] not read to its end within {timeout_s:.0f} s")

    async def stop(self) -> None:
        """Close the consumer (a later read starts it again from the start of the partition)."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()


async def read_partition(bootstrap: list[str], topic: str, partition: int) -> tuple[list[bytes], list[bytes]]:
    """Every record of one partition up to its high-water mark, as keys and values (none if no such topic)."""
    reader = PartitionReader(bootstrap, topic, partition)
    try:
        return await reader.read_to_end()
    finally:
        await reader.stop()
