"""The Faust worker: one agent over raw manifest bytes, batched, producing decisions with at-least-once commits.

Offsets are acknowledged only after every record of a batch (decisions, flagged, dead letters)
has been acknowledged by the broker; Faust commits acknowledged offsets on its commit interval.
`stream.noack_take` is used because `stream.take` acknowledges the buffered events in a
`finally` block, that is, even when processing of the batch raised.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque

import faust

from screener.kafka.transport import ScreenerApp
from screener.ops.metrics import PipelineMetrics
from screener.ops.observability import attach
from screener.pipeline.decode import RawMessage
from screener.pipeline.processor import DEAD_LETTER, DECISIONS, FLAGGED, BatchOutcome, BatchProcessor
from screener.pipeline.screening import Screener
from screener.settings import Settings

log = logging.getLogger(__name__)

# Decisions of a 500-parcel manifest are ~40 KB; room for the largest allowed manifest's decisions.
PRODUCER_MAX_REQUEST_BYTES = 8 << 20
MAX_BATCHES_IN_FLIGHT = 2


def create_app(settings: Settings, screener: Screener, metrics: PipelineMetrics | None = None,
               on_batch=None) -> faust.App:
    """A Faust app screening `settings.manifests_topic` with `screener`.

    `on_batch(outcome, seconds)` is called once a batch's output is acknowledged (a hook for embedding).
    """
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
        producer_max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        consumer_max_fetch_size=max(settings.max_message_bytes * 2, 4 << 20),
        stream_buffer_maxsize=max(settings.batch_max_messages * 4, 1024),
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    topics = {
        name: app.topic(settings.topic(name), key_type=bytes, value_type=bytes,
                        partitions=settings.partitions, replicas=settings.replication_factor)
        for name in ("manifests", DECISIONS, FLAGGED, DEAD_LETTER)
    }
    out_names = {kind: settings.topic(kind) for kind in (DECISIONS, FLAGGED, DEAD_LETTER)}
    processor = BatchProcessor(screener, settings.max_message_bytes, max_record_bytes=settings.max_record_bytes,
                               dead_letters_per_message=settings.dead_letters_per_message,
                               vocabulary_max_strings=settings.vocabulary_max_strings)
    app.screener_processor = processor  # for observability (vocabulary sizes)
    if metrics is not None:
        # Lag, arrival rate, capacity, headroom, drain time and state sizes, sampled every few seconds.
        attach(app, metrics, settings, vocab=lambda: processor.vocab)

    @app.agent(topics["manifests"], name="screen")
    async def screen(stream: faust.StreamT) -> None:
        for name in (DECISIONS, FLAGGED, DEAD_LETTER):
            await topics[name].maybe_declare()
        # Batch N's acknowledgements are awaited while batch N+1 is screened, so the worker does
        # not idle on the broker; at most MAX_BATCHES_IN_FLIGHT batches await acknowledgement.
        in_flight: deque[asyncio.Task] = deque()
        async for events in stream.noack_take(settings.batch_max_messages, within=settings.batch_within_s):
            t0 = time.perf_counter()
            raws = [RawMessage(e.message.value, e.message.topic, e.message.partition, e.message.offset,
                               int((e.message.timestamp or 0) * 1000), e.message.key) for e in events]
            result = processor.process(raws)
            producer = app.producer
            pending = [await producer.send(out_names[kind], key, value, None, None, None)
                       for kind, key, value in result.records]
            seconds = time.perf_counter() - t0
            in_flight.append(asyncio.ensure_future(_settle(stream, events, pending, result.outcome, seconds,
                                                           [r.timestamp_ms for r in raws])))
            while in_flight and (len(in_flight) > MAX_BATCHES_IN_FLIGHT or in_flight[0].done()):
                await in_flight.popleft()  # re-raises a failed send: the agent stops, nothing is acked

    async def _settle(stream: faust.StreamT, events: list, pending: list, outcome: BatchOutcome,
                      seconds: float, timestamps_ms: list[int]) -> None:
        # At-least-once: only acknowledged output lets the input offsets be committed. Faust commits
        # acknowledged offsets only up to the first gap, so acks of overlapping batches may land in
        # any order.
        await asyncio.gather(*pending)
        for e in events:
            await stream.ack(e)
        if metrics is not None:
            metrics.observe_batch(outcome, seconds, timestamps_ms)
        if on_batch is not None:
            on_batch(outcome, seconds)

    return app


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
