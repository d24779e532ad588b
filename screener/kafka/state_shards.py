"""Consignee state of the state partitions a worker owns: one store each, answering lookups, kept on the broker.

Each `state-requests` partition is one state partition (screener/state/lookup.py): a `ConsigneeState` that
applies the requests' rows in the partition's order and answers each request on `state-answers`, on the
partition the request names. Every batch writes the entities it changed to the compacted `state-changelog`
topic, on the same partition number, keyed by the normalised consignee id, in the same acknowledged batch
as the answers (at-least-once: the requests are acknowledged only after both). A worker that is assigned a
partition rebuilds its store from that changelog partition before answering any of its requests (the
rebuilds of all newly assigned partitions start at assignment and run side by side); a revoked partition's
store is dropped (the next owner rebuilds it). A replayed request is recognised by its rows' sequence
(record offset and row) and a request sent again by its parcels' hashes, so nothing is counted twice
however far the changelog ran ahead.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from screener.kafka.partition_reader import read_partition
from screener.pipeline.deadletter import dead_letter
from screener.pipeline.decode import RawMessage, Rejection
from screener.pipeline.processor import DEAD_LETTER, BatchOutcome, BatchResult
from screener.state.changelog import encode_entities, restore
from screener.state.consignee import ConsigneeState
from screener.state.lookup import ANSWERS, decode_request, encode_answer, encode_failure, serve

log = logging.getLogger(__name__)

CHANGELOG = "state-changelog"   # the kind (and topic name) of state records
EXPIRE_EVERY_S = 60.0            # how often a store forgets expired entities (tombstones written)


class Shard:
    """One state partition: its store, answering the requests of its partition."""

    def __init__(self) -> None:
        self.store = ConsigneeState()
        self.expired_at = time.monotonic()

    def answer(self, partition: int, records: list[RawMessage]) -> BatchResult:
        """Answers to a batch of this partition's requests, in order, and the changelog records they imply."""
        result = BatchResult([], BatchOutcome())
        changed = []
        for record in records:
            try:
                request = decode_request(record.value)
            except ValueError as exc:     # not written by a worker: set aside whole, nobody awaits it
                why = Rejection("internal_error", f"unreadable state request: {exc}")
                result.records.append((DEAD_LETTER, *dead_letter(record, why, record.value or b"")))
                result.outcome.messages["dead_letter"] += 1
                result.outcome.dead_letters["internal_error"] += 1
                continue
            try:
                value = encode_answer(request.token, serve(self.store, request, record.offset))
                changed.append(self.store.changed_slots)
            except Exception as exc:   # a bug must not stop the worker: the asker dead-letters those parcels
                log.exception("state request %s of partition %d failed", request.token, partition)
                value = encode_failure(request.token, f"state partition {partition}: {type(exc).__name__}: {exc}")
            result.records.append((ANSWERS, None, value, request.reply))
        result.records += self.changelog(partition, changed)
        return result

    def changelog(self, partition: int, changed: list) -> list[tuple[str, bytes, bytes, int]]:
        """State records of the entities changed (and tombstones of forgotten ones, every EXPIRE_EVERY_S)."""
        slots = np.unique(np.concatenate(changed)) if changed else np.zeros(0, np.int32)
        keys, values = encode_entities(self.store, slots[slots >= 0]) if len(slots) else ([], [])
        records = [(CHANGELOG, k, v, partition) for k, v in zip(keys, values)]
        if time.monotonic() - self.expired_at > EXPIRE_EVERY_S:
            self.expired_at = time.monotonic()
            records += [(CHANGELOG, k, b"", partition) for k in self.store.expire()]
        return records


class StateShards:
    """The shards of the partitions this worker owns, built from the changelog when first needed."""

    def __init__(self, bootstrap: list[str], changelog_topic: str) -> None:
        """`changelog_topic`: where each partition's entities are kept (one changelog partition per shard)."""
        self.bootstrap = bootstrap
        self.changelog_topic = changelog_topic
        self.shards: dict[int, Shard] = {}
        self._restoring: dict[int, asyncio.Task] = {}
        self.recovered_entities = 0
        self.dropped_by_revoked = 0   # window events dropped by the stores of partitions since revoked

    def assign(self, partitions) -> None:
        """Start rebuilding the stores of newly assigned partitions, all at once, in the background."""
        for p in partitions:
            if p not in self.shards and p not in self._restoring:
                self._restoring[p] = asyncio.ensure_future(self._restore(p))

    async def get(self, partition: int) -> Shard:
        """The partition's shard, its store rebuilt from the changelog the first time."""
        shard = self.shards.get(partition)
        if shard is not None:
            return shard
        self.assign([partition])
        task = self._restoring[partition]
        try:
            shard = await task
        finally:
            if task.done() and self._restoring.get(partition) is task:
                del self._restoring[partition]
        self.shards[partition] = shard
        return shard

    async def _restore(self, partition: int) -> Shard:
        # Each partition reads its own changelog partition: restores run side by side, not one after another.
        t0 = time.perf_counter()
        keys, values = await read_partition(self.bootstrap, self.changelog_topic, partition)
        shard = Shard()
        n = restore(shard.store, keys, values) if keys else 0
        self.recovered_entities += n
        log.info("state partition %d: %d entities from %d changelog records in %.1f s", partition,
                 n, len(keys), time.perf_counter() - t0)
        return shard

    def sizes(self) -> dict[str, int]:
        """Consignee state of the partitions held: entities, window events, events dropped by the bound."""
        stores = [shard.store for shard in list(self.shards.values())]
        return {"entities": sum(len(s) for s in stores), "window_events": sum(s.live_events for s in stores),
                "window_events_dropped": self.dropped_by_revoked + sum(s.bounded_events for s in stores)}

    def revoke(self, partitions) -> None:
        """Drop the stores of partitions this worker no longer owns."""
        for p in partitions:
            gone = self.shards.pop(p, None)
            if gone is not None:   # its drops stay counted: the total only grows
                self.dropped_by_revoked += gone.store.bounded_events
            # A restore under way finishes unused (a batch may be awaiting it); its error, if any, is dropped.
            task = self._restoring.pop(p, None)
            if task is not None:
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
