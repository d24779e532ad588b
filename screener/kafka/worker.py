"""The Faust worker: one agent over raw manifest bytes, batched, producing decisions with at-least-once commits.

Offsets are acknowledged only after every record of a batch (decisions, flagged, dead letters)
has been acknowledged by the broker; Faust commits acknowledged offsets on its commit interval.
`stream.noack_take` is used because `stream.take` acknowledges the buffered events in a
`finally` block, that is, even when processing of the batch raised.

A stateful pack adds the `serve-state` agent (the state partitions this worker owns, answering the
lookups of every worker: screener/kafka/state_shards.py) and, when it reads R11 rates, the
`join-outcomes` agent and the task following `outcomes-joined` (screener/kafka/feedback.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter, deque

import faust
import orjson
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from screener.kafka.bulk_send import BulkSender
from screener.kafka.feedback import INSPECTIONS, FactPartitions, RiskFeed, join_outcomes
from screener.kafka.state_client import StateClient
from screener.kafka.state_shards import CHANGELOG, StateShards
from screener.kafka.transport import ScreenerApp
from screener.ops.metrics import PipelineMetrics
from screener.ops.observability import attach
from screener.pipeline.deadletter import dead_letter
from screener.pipeline.decode import RawMessage, Rejection
from screener.pipeline.processor import DEAD_LETTER, DECISIONS, FLAGGED, BatchOutcome, BatchProcessor, BatchResult
from screener.pipeline.screening import Screener
from screener.rules.screener import PackScreener
from screener.settings import Settings
from screener.state.facts import FACTS_TOPIC, facts_records
from screener.state.lookup import ANSWERS, REQUESTS
from screener.state.risk import DAY_MS, JOINED_TOPIC, RiskStats
from screener.state.screener import StatefulScreener, needs_state, reads_outcomes

log = logging.getLogger(__name__)

# Decisions of a 500-parcel manifest are ~40 KB and the encoder keeps every record under
# settings.max_record_bytes; a producer batch of 512 KiB carries a dozen of them, where aiokafka's default
# (16 KB) sent each one alone, and stays under Kafka's default 1 MiB limit on a whole record batch.
PRODUCER_MAX_REQUEST_BYTES = 8 << 20
PRODUCER_MAX_BATCH_BYTES = 512 << 10
PRODUCER_LINGER_S = 0.005
MAX_BATCHES_IN_FLIGHT = 2
# Lookups are only read soon after they are written: requests until their owner commits them (a day covers
# replays after an outage), answers by the worker waiting for them (as docker-compose.yml creates them).
LOOKUP_RETENTION_S = {REQUESTS: 86_400.0, ANSWERS: 3_600.0}
SERVE_WITHIN_S = 0.005
# Refusals of one record for its size (by the client or the broker): it is dead-lettered, not retried.
SIZE_REFUSALS = (MessageSizeTooLargeError, RecordTooLargeError)


def create_app(settings: Settings, screener: Screener, metrics: PipelineMetrics | None = None,
               on_batch=None) -> faust.App:
    """A Faust app screening `settings.manifests_topic` with `screener`.

    `on_batch(outcome, seconds)` is called once a batch's output is acknowledged (a hook for embedding).
    """
    stateful = isinstance(screener, PackScreener) and needs_state(screener)
    feedback = stateful and reads_outcomes(screener)
    risk = RiskStats() if feedback else None
    if stateful:   # consignee columns from the state partitions' answers, R11 rates from outcomes, R15 here
        screener = StatefulScreener(screener, risk=risk, capacity_shares=settings.partitions, keep_selected=feedback,
                                    remote=True)
    asks = stateful and screener.consignee_state
    app = ScreenerApp(
        settings.app_id,
        broker=settings.faust_broker,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=settings.broker_heartbeat_interval,
        broker_rebalance_timeout=settings.broker_rebalance_timeout,
        broker_commit_interval=settings.broker_commit_interval,
        producer_max_request_size=max(PRODUCER_MAX_REQUEST_BYTES, settings.max_record_bytes + (64 << 10)),
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        producer_linger=PRODUCER_LINGER_S,
        consumer_max_fetch_size=max(settings.max_message_bytes * 2, 4 << 20),
        stream_buffer_maxsize=max(settings.batch_max_messages * 4, 1024),
        # A batch awaiting state answers must not hold a rebalance up (screener/kafka/state_client.py).
        stream_wait_empty=not asks,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    names = (("manifests", DECISIONS, FLAGGED, DEAD_LETTER) + ((REQUESTS, ANSWERS, CHANGELOG) if asks else ())
             + ((INSPECTIONS, FACTS_TOPIC, JOINED_TOPIC) if feedback else ()))
    topics = {
        name: app.topic(settings.topic(name), key_type=bytes, value_type=bytes,
                        partitions=settings.partitions, replicas=settings.replication_factor,
                        **({"compacting": True} if name in (CHANGELOG, JOINED_TOPIC) else {}),
                        **({"retention": LOOKUP_RETENTION_S[name]} if name in LOOKUP_RETENTION_S else {}))
        for name in names
    }
    out_names = {kind: settings.topic(kind) for kind in names if kind not in ("manifests", INSPECTIONS)}
    processor = BatchProcessor(screener, max_message_bytes=settings.max_message_bytes,
                               max_record_bytes=settings.max_record_bytes,
                               dead_letters_per_message=settings.dead_letters_per_message,
                               vocabulary_max_strings=settings.vocabulary_max_strings)
    app.screener_processor = processor  # for observability (vocabulary sizes)
    sender = BulkSender(app.producer, out_names)
    client = StateClient(settings.bootstrap_servers, settings.topic(ANSWERS), settings.partitions,
                         settings.max_record_bytes, screener, sender, settings.fetch_max_wait_ms,
                         metrics) if asks else None

    def finished(prepared, failed) -> BatchResult:
        """A prepared batch screened and encoded: what to produce (the facts of its selections too)."""
        result = processor.finish(prepared, failed)
        if feedback:    # the facts of the parcels selected, for the inspection outcomes to come
            result.records += [(FACTS_TOPIC, None, v, p) for p, v in facts_records(
                screener.take_selected(), settings.partitions, settings.max_record_bytes)]
        return result

    async def completed(stream, events, raws, prepared, ticket, before: asyncio.Future | None,
                        screened: asyncio.Future, busy: float) -> None:
        # A batch whose lookups are out: its answers, then screened after the batch before it (capacity and
        # facts follow input order), then acknowledged like any batch.
        try:
            failed = await client.answers(ticket)
            if before is not None:
                await before
            t0 = time.perf_counter()
            result = finished(prepared, failed)
            pending = await sender.send(result.records)
            busy += time.perf_counter() - t0
        finally:
            screened.set_result(None)
        await _settle(stream, events, pending, result.outcome, busy, [r.timestamp_ms for r in raws])

    @app.agent(topics["manifests"], name="screen")
    async def screen(stream: faust.StreamT) -> None:
        for name in names[1:]:
            await topics[name].maybe_declare()
        # Batch N's acknowledgements are awaited while batch N+1 is screened, so the worker does not idle on
        # the broker; at most MAX_BATCHES_IN_FLIGHT batches await acknowledgement. A stateful worker's batch
        # is in flight from its lookups on: batch N+1 is decoded while batch N's answers are on their way.
        in_flight: deque[asyncio.Task] = deque()
        screened: asyncio.Future | None = None
        async for events in stream.noack_take(settings.batch_max_messages, within=settings.batch_within_s):
            t0 = time.perf_counter()
            raws = [RawMessage(e.message.value, e.message.topic, e.message.partition, e.message.offset,
                               int((e.message.timestamp or 0) * 1000), e.message.key) for e in events]
            prepared = processor.prepare(raws)
            if client is None:
                result = finished(prepared, None)
                pending = await sender.send(result.records)
                in_flight.append(asyncio.ensure_future(_settle(stream, events, pending, result.outcome,
                                                               time.perf_counter() - t0,
                                                               [r.timestamp_ms for r in raws])))
            else:
                ticket = await client.request(prepared.batches)
                before, screened = screened, asyncio.get_running_loop().create_future()
                in_flight.append(asyncio.ensure_future(completed(stream, events, raws, prepared, ticket, before,
                                                                 screened, time.perf_counter() - t0)))
            while in_flight and (len(in_flight) > MAX_BATCHES_IN_FLIGHT or in_flight[0].done()):
                await in_flight.popleft()  # re-raises a failed send: the agent stops, nothing is acked

    shards = StateShards(settings.bootstrap_servers, settings.topic(CHANGELOG)) if asks else None
    if asks:
        @app.task
        async def read_answers() -> None:
            # This worker's reply partition of `state-answers` (declared first: its end is read at once);
            # the task ends with the app.
            await topics[ANSWERS].maybe_declare()
            await client.run()

        @app.agent(topics[REQUESTS], name="serve-state")
        async def serve_state(stream: faust.StreamT) -> None:
            in_flight: deque[asyncio.Task] = deque()
            # A request already stands for a whole batch of parcels, and a worker waits for its answer.
            async for events in stream.noack_take(settings.batch_max_messages, within=SERVE_WITHIN_S):
                t0 = time.perf_counter()
                by_partition: dict[int, list] = {}
                for e in events:
                    by_partition.setdefault(e.message.partition, []).append(e)
                records: list = []
                outcome = BatchOutcome()
                for partition, evs in sorted(by_partition.items()):
                    shard = await shards.get(partition)
                    answered = shard.answer(partition, [RawMessage(e.message.value, e.message.topic, partition,
                                                                   e.message.offset) for e in evs])
                    records += answered.records
                    outcome.merge(answered.outcome)
                pending = await sender.send(records)
                in_flight.append(asyncio.ensure_future(_settle(stream, events, pending, outcome,
                                                               time.perf_counter() - t0, [])))
                while in_flight and (len(in_flight) > MAX_BATCHES_IN_FLIGHT or in_flight[0].done()):
                    await in_flight.popleft()

    if feedback:
        facts = FactPartitions(settings.bootstrap_servers, settings.topic(FACTS_TOPIC),
                               int(settings.facts_retention_days * DAY_MS))

        @app.on_partitions_revoked.connect
        async def _facts_revoked(sender_app, revoked, **kwargs) -> None:
            await facts.revoke(tp.partition for tp in revoked if tp.topic == settings.topic(INSPECTIONS))

    if asks:
        @app.on_partitions_assigned.connect
        async def _assigned(sender_app, assigned, **kwargs) -> None:
            shards.assign(tp.partition for tp in assigned if tp.topic == settings.topic(REQUESTS))

        @app.on_partitions_revoked.connect
        async def _revoked(sender_app, revoked, **kwargs) -> None:
            shards.revoke(tp.partition for tp in revoked if tp.topic == settings.topic(REQUESTS))

    if metrics is not None:
        # Lag, arrival rate, capacity, headroom, drain time and state sizes, sampled every few seconds.
        attach(app, metrics, settings, vocab=lambda: processor.vocab, entities=shards.sizes if asks else None)

    if feedback:
        @app.task
        async def follow_outcomes() -> None:
            # R11 rates of every worker follow all joined outcomes; the task ends with the app.
            await RiskFeed(settings.bootstrap_servers, settings.topic(JOINED_TOPIC), risk,
                           metrics.outcomes_learned.inc if metrics is not None else None).run()

        @app.agent(topics[INSPECTIONS], name="join-outcomes")
        async def join(stream: faust.StreamT) -> None:
            in_flight: deque[asyncio.Task] = deque()
            async for events in stream.noack_take(settings.batch_max_messages, within=settings.batch_within_s):
                by_partition: dict[int, list] = {}
                for e in events:
                    by_partition.setdefault(e.message.partition, []).append(e)
                records: list = []
                counts: Counter = Counter()
                for partition, evs in sorted(by_partition.items()):
                    raws = [RawMessage(e.message.value, e.message.topic, partition, e.message.offset,
                                       int((e.message.timestamp or 0) * 1000), e.message.key) for e in evs]
                    got, n = join_outcomes(raws, await facts.store(partition), settings.max_message_bytes)
                    if n["unknown_parcel"]:     # facts written since the last read: read them, join again
                        got, n = join_outcomes(raws, await facts.caught_up(partition), settings.max_message_bytes)
                    records += got
                    counts += n
                pending = await sender.send(records)
                in_flight.append(asyncio.ensure_future(_settle(stream, events, pending, None, 0.0, [], counts)))
                while in_flight and (len(in_flight) > MAX_BATCHES_IN_FLIGHT or in_flight[0].done()):
                    await in_flight.popleft()

    async def _settle(stream: faust.StreamT, events: list, pending: list, outcome: BatchOutcome | None,
                      seconds: float, timestamps_ms: list[int], outcome_counts: Counter | None = None) -> None:
        # At-least-once: only acknowledged output lets the input offsets be committed. Faust commits
        # acknowledged offsets only up to the first gap, so acks of overlapping batches may land in
        # any order.
        results = await asyncio.gather(*(fut for _, fut in pending), return_exceptions=True)
        refused = [refused_record(record, exc) for (members, _), exc in zip(pending, results)
                   if isinstance(exc, SIZE_REFUSALS) for record in members]
        failed = [exc for exc in results if isinstance(exc, BaseException) and not isinstance(exc, SIZE_REFUSALS)]
        if failed:
            raise failed[0]   # the broker is gone or broken: stop, nothing of this batch is acknowledged
        if refused:
            if outcome is not None:
                outcome.dead_letters["output_refused"] += len(refused)
            await asyncio.gather(*(fut for _, fut in await sender.send(refused)))
        for e in events:
            await stream.ack(e)
        if outcome is None:      # a batch of inspection outcomes: counted apart from screened parcels
            if metrics is not None:
                metrics.observe_outcomes(outcome_counts or {})
            return
        if metrics is not None:
            metrics.observe_batch(outcome, seconds, timestamps_ms)
        if on_batch is not None:
            on_batch(outcome, seconds)

    return app


def refused_record(record: tuple[str, bytes | None, bytes], exc: BaseException) -> tuple[str, bytes | None, bytes]:
    """A dead letter saying a produced record was refused for its size (the input stays on its topic)."""
    kind, key, value = record[:3]
    why = Rejection("output_refused", f"a {kind} record of {len(value)} bytes was refused: {type(exc).__name__}: {exc}")
    try:   # decisions and flagged records say which input they answer (a rare path: parsing is fine here)
        produced = orjson.loads(value)
    except orjson.JSONDecodeError:
        produced = {}
    src = produced.get("source") or {}
    raw = RawMessage(None, src.get("topic", ""), src.get("partition", -1), src.get("offset", -1))
    pid = produced.get("parcel_id") if kind == FLAGGED else None
    out_key, body = dead_letter(raw, why, value[:2048], manifest_id=produced.get("manifest_id"), parcel_id=pid)
    extra = {"refused_topic_kind": kind, "refused_key": key.decode("utf-8", "replace") if key else None,
             "refused_size": len(value), "original_size": len(value), "original_truncated": len(value) > 2048}
    return DEAD_LETTER, out_key, orjson.dumps({**orjson.loads(body), **extra})


def run_worker(settings: Settings, screener: Screener, metrics: PipelineMetrics | None = None,
               on_batch=None) -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    from screener.kafka.shutdown import DeadlineWorker

    app = create_app(settings, screener, metrics, on_batch)
    app.finalize()
    gc.set_threshold(200_000, 20, 50)
    worker = DeadlineWorker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


__all__ = ["create_app", "run_worker", "BatchOutcome"]
