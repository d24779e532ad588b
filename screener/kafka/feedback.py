"""Inspection feedback in the worker: outcomes joined to kept parcel facts, and R11 rates kept in step.

    inspections (key parcel_id) --join with parcel-facts[same partition]--> outcomes-joined (compacted)
    outcomes-joined (every partition, from the start) --> the worker's RiskStats --> R11 columns

The agent on `inspections` owns some of its partitions (consumer group); for an outcome on partition p it
looks in the facts of partition p of `parcel-facts` read so far (`FactPartitions`), and when a batch has an
outcome not found there it reads that partition to its end and joins the batch again, so a parcel decided
before its outcome was published is always found, without a fetch per batch. A joined outcome goes to
`outcomes-joined`, keyed by parcel_id; an invalid outcome, or one whose parcel is not kept (never
selected, or decided more than the facts retention ago), goes to dead-letter with its reason. Every worker
reads all of `outcomes-joined` (`RiskFeed`): rates are global, and outcomes are a small fraction of
parcels. Replays are harmless: `RiskStats.observe` keeps one contribution per parcel_id.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable

from aiokafka import TopicPartition

from screener.kafka.partition_reader import PartitionReader
from screener.kafka.tail import start_consumer
from screener.pipeline.deadletter import dead_letter
from screener.pipeline.decode import RawMessage, Rejection
from screener.pipeline.outcomes import OUTCOME_REASONS, Outcome, decode_outcome
from screener.pipeline.processor import DEAD_LETTER
from screener.state.facts import FactStore
from screener.state.risk import JOINED_TOPIC, RiskStats, encode_joined

log = logging.getLogger(__name__)

INSPECTIONS = "inspections"
FEED_POLL_MS = 200
RETRY_S = 5.0
TOPIC_CHECK_S = 5.0      # how often the feed looks for partitions added to outcomes-joined


def join_outcomes(raws: list[RawMessage], facts: FactStore, max_bytes: int) -> tuple[list[tuple], Counter]:
    """Records for a batch of `inspections` messages of one partition (joined outcomes and dead letters) and
    counts by result (joined, invalid, unknown_parcel); every message gives exactly one record."""
    records: list[tuple] = []
    counts: Counter = Counter()
    for raw in raws:
        o = decode_outcome(raw.value, max_bytes)
        if type(o) is not Outcome:
            records.append((DEAD_LETTER, *dead_letter(raw, o, raw.value or b"")))
            counts["invalid"] += 1
            continue
        joined = facts.join(o.parcel_id, o.inspected_ms, o.illicit)
        if joined is None:
            why = Rejection("unknown_parcel", f"{OUTCOME_REASONS['unknown_parcel']}: {o.parcel_id!r:.140}",
                            "parcel_id")
            records.append((DEAD_LETTER, *dead_letter(raw, why, raw.value or b"", parcel_id=o.parcel_id)))
            counts["unknown_parcel"] += 1
        else:
            records.append((JOINED_TOPIC, *encode_joined(joined)))
            counts["joined"] += 1
    return records, counts


class FactPartitions:
    """The facts of the `parcel-facts` partitions whose outcomes this worker joins, each read as far as it goes."""

    def __init__(self, bootstrap: list[str], topic: str, retention_ms: int) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.retention_ms = retention_ms
        self._readers: dict[int, PartitionReader] = {}
        self._stores: dict[int, FactStore] = {}

    async def caught_up(self, partition: int) -> FactStore:
        """Partition `partition`'s facts, with every record written to it so far."""
        reader = self._readers.get(partition)
        if reader is None:
            reader = self._readers[partition] = PartitionReader(self.bootstrap, self.topic, partition)
            self._stores[partition] = FactStore(self.retention_ms)
        _, values = await reader.read_to_end()
        store = self._stores[partition]
        store.add_records(values)
        return store

    async def store(self, partition: int) -> FactStore:
        """Partition `partition`'s facts as last read (read to the end the first time)."""
        if partition not in self._stores:
            return await self.caught_up(partition)
        return self._stores[partition]

    def kept(self) -> int:
        """Facts kept over all partitions (a state size for the dashboard)."""
        return sum(len(s) for s in self._stores.values())

    async def revoke(self, partitions) -> None:
        """Forget the facts of partitions whose outcomes another worker now joins."""
        for p in partitions:
            reader = self._readers.pop(p, None)
            self._stores.pop(p, None)
            if reader is not None:
                await reader.stop()

    async def stop(self) -> None:
        """Close every reader."""
        await self.revoke(list(self._readers))


class RiskFeed:
    """Keeps `risk` in step with every partition of `outcomes-joined`, read from the start."""

    def __init__(self, bootstrap: list[str], topic: str, risk: RiskStats,
                 on_applied: Callable[[int], None] | None = None) -> None:
        """`on_applied(n)`: told how many outcomes each read applied (the worker counts them in a metric)."""
        self.bootstrap = bootstrap
        self.topic = topic
        self.risk = risk
        self.on_applied = on_applied
        self.applied = 0

    async def run(self) -> None:
        """Follow the topic until cancelled; after an error (the broker gone), start again from the beginning,
        which changes nothing already applied (`RiskStats.observe` is idempotent per parcel)."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # R11 must not stop learning for good because the broker blinked
                log.warning("following %s failed (%s: %s); again in %.0f s", self.topic, type(exc).__name__,
                            exc, RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def _follow(self) -> None:
        """Read and apply joined outcomes (partitions added to the topic are picked up)."""
        consumer = await start_consumer(self.bootstrap)
        assigned: set[TopicPartition] = set()
        checked = -math.inf
        try:
            while True:
                if time.monotonic() - checked > TOPIC_CHECK_S:     # the topic's partitions, now and then
                    checked = time.monotonic()
                    parts = consumer.partitions_for_topic(self.topic) if self.topic in await consumer.topics() else None
                    tps = {TopicPartition(self.topic, p) for p in parts or ()}
                    if tps - assigned:
                        positions = {tp: await consumer.position(tp) for tp in assigned}
                        consumer.assign(sorted(tps))
                        for tp, offset in positions.items():
                            consumer.seek(tp, offset)
                        await consumer.seek_to_beginning(*(tps - assigned))
                        assigned = tps
                if not assigned:
                    await asyncio.sleep(FEED_POLL_MS / 1000)
                    continue
                batch = await consumer.getmany(timeout_ms=FEED_POLL_MS, max_records=10_000)
                for records in batch.values():
                    n = self.risk.rebuild(r.value for r in records)
                    self.applied += n
                    if n and self.on_applied is not None:
                        self.on_applied(n)
        finally:
            await consumer.stop()
