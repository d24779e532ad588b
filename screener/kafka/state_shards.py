"""Consignee state of the state partitions a worker owns: one store each, written to and recovered from the broker.

A stateful worker's second stage reads the re-keyed `parcels` topic (screener/state/route.py). Each of its
partitions is one state partition: a `ConsigneeState` behind its own `StatefulScreener` and
`BatchProcessor`. Every batch writes the entities it changed to the compacted `state-changelog` topic, on
the same partition number, keyed by the normalised consignee id, in the same acknowledged batch as the
decisions (at-least-once: the input is acknowledged only after both). A worker that is assigned a
partition rebuilds its store from that changelog partition before screening any of its parcels (the
rebuilds of all newly assigned partitions start at assignment and run side by side); a revoked
partition's store is dropped (the next owner rebuilds it). A replayed batch is recognised by its
parcels' sequence (input offsets), so nothing is counted twice however far the changelog ran ahead.

When the pack reads repeat-offender rates (R11), every shard screens with the worker's one `RiskStats`
(screener/kafka/feedback.py keeps it in step with `outcomes-joined`), and each batch also writes the facts
of the parcels it selected to `parcel-facts` (screener/state/facts.py), for the outcomes that will come.
"""

from __future__ import annotations

import asyncio
import logging
import time

from screener.kafka.partition_reader import read_partition
from screener.pipeline.deadletter import dead_letter
from screener.pipeline.decode import RawMessage, Rejection
from screener.pipeline.processor import DEAD_LETTER, BatchOutcome, BatchProcessor, BatchResult, VocabularyGenerations
from screener.state.changelog import encode_entities, restore
from screener.state.consignee import ConsigneeState
from screener.state.facts import FACTS_TOPIC, facts_records
from screener.state.risk import RiskStats
from screener.state.route import segments_and_columns
from screener.state.screener import StatefulScreener
from screener.state.segment_columns import concat_scans

log = logging.getLogger(__name__)

CHANGELOG = "state-changelog"   # the kind (and topic name) of state records
EXPIRE_EVERY_S = 60.0            # how often a store forgets expired entities (tombstones written)


class Shard:
    """One state partition: its store, its screener and the processor that screens its segments."""

    def __init__(self, rules, processor_args: dict, partitions: int = 1, risk: RiskStats | None = None,
                 vocabularies: VocabularyGenerations | None = None) -> None:
        """`partitions`: how many state partitions share the pack's inspection capacity (and `parcel-facts`
        has); `risk`: the worker's repeat-offender rates, None when the pack reads none (no facts are kept);
        `vocabularies`: shared by the worker's shards (the same strings reach every partition)."""
        self.store = ConsigneeState()
        self.screener = StatefulScreener(rules, self.store, risk=risk, capacity_shares=partitions,
                                         keep_selected=risk is not None)
        self.processor = BatchProcessor(self.screener, vocabularies=vocabularies, **processor_args)
        self.partitions = partitions
        self.max_record_bytes = processor_args.get("max_record_bytes", 1_000_000)
        # What a re-keyed record may expand to: stage one's record limit, or one oversized parcel with its head.
        self.max_expanded_bytes = self.max_record_bytes + processor_args.get("max_message_bytes", 1 << 20)
        self.expired_at = time.monotonic()

    def screen(self, partition: int, records: list[RawMessage]) -> BatchResult:
        """Decisions, dead letters and changelog records of a batch of this partition's re-keyed records."""
        raws: list[RawMessage] = []
        scans, offsets, at = [], [], 0
        unreadable = BatchResult([], BatchOutcome())
        for record in records:
            try:
                got, scanned = segments_and_columns(record.value, record.topic, partition, record.offset,
                                                    record.timestamp_ms, self.max_expanded_bytes)
            except (ValueError, KeyError, TypeError) as exc:   # not written by stage one: set aside, whole
                why = Rejection("internal_error", f"unreadable re-keyed record: {type(exc).__name__}: {exc}")
                unreadable.records.append((DEAD_LETTER, *dead_letter(record, why, record.value or b"")))
                unreadable.outcome.messages["dead_letter"] += 1
                unreadable.outcome.dead_letters["internal_error"] += 1
                continue
            raws += got
            scans.append(scanned)
            offsets.append(at)
            at += sum(len(r.value) for r in got)
        # Stage one's scan is used only when every record has one; otherwise the documents are scanned.
        columns = concat_scans(scans, offsets) if scans and all(s is not None for s in scans) else None
        result = self.processor.process(raws, columns)
        result.records += unreadable.records + self.changelog(partition) + self.facts()
        result.outcome.merge(unreadable.outcome)
        return result

    def changelog(self, partition: int) -> list[tuple[str, bytes, bytes, int]]:
        """State records of the entities the last batches changed (and tombstones of forgotten ones)."""
        slots = self.screener.take_changed()
        keys, values = encode_entities(self.store, slots) if len(slots) else ([], [])
        records = [(CHANGELOG, k, v, partition) for k, v in zip(keys, values)]
        if time.monotonic() - self.expired_at > EXPIRE_EVERY_S:
            self.expired_at = time.monotonic()
            records += [(CHANGELOG, k, b"", partition) for k in self.store.expire()]
        return records


    def facts(self) -> list[tuple[str, None, bytes, int]]:
        """`parcel-facts` records of the parcels the last batches selected (none when facts are not kept)."""
        facts = self.screener.take_selected()
        return [(FACTS_TOPIC, None, v, p) for p, v in facts_records(facts, self.partitions, self.max_record_bytes)]


class StateShards:
    """The shards of the partitions this worker owns, built from the changelog when first needed."""

    def __init__(self, rules, bootstrap: list[str], changelog_topic: str, processor_args: dict,
                 partitions: int, risk: RiskStats | None = None,
                 vocabularies: VocabularyGenerations | None = None) -> None:
        """`partitions`: of the re-keyed topic (each one a state partition); `risk`: shared by every shard;
        `vocabularies`: the worker's (stage one's too), else one generation of the shards' own."""
        self.rules = rules
        self.risk = risk
        self.partitions = partitions
        self.bootstrap = bootstrap
        self.changelog_topic = changelog_topic
        self.processor_args = processor_args
        self.shards: dict[int, Shard] = {}
        self._restoring: dict[int, asyncio.Task] = {}
        # One generation of vocabularies for every shard: descriptions, sellers and codes are not partitioned
        # by consignee, so per-shard vocabularies interned (and looked up) most strings once per partition.
        self.vocabularies = vocabularies or VocabularyGenerations(processor_args.get("max_message_bytes", 1 << 20),
                                                                  processor_args.get("vocabulary_max_strings", 2_000_000))
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
        shard = Shard(self.rules, self.processor_args, self.partitions, self.risk, self.vocabularies)
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
