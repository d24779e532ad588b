"""Keep-up sampling: every few seconds, read consumer offsets and turn batch totals into keep-up gauges.

Lag is the high-water mark minus the committed offset of each assigned input partition. The
high-water mark comes from the consumer's fetch responses (`AIOKafkaConsumer.highwater`): on the
embedded broker ListOffsets (`end_offsets`) answers 1 for a partition holding 1,000 records, while
fetch responses carry the right figure. The committed offset, not the fetch position, is the
"position": Faust buffers fetched records in memory (thousands of messages per stream), so the
fetch position runs ahead of what has been screened, and a backlog parked in those buffers would
read as zero lag. The committed offset moves only after a batch's output is acknowledged.

The derived figures, all per worker (Prometheus sums them per job, see deploy/prometheus):
- arrival rate: growth of the high-water marks over the window, in messages/s, and in parcels/s
  using the mean parcels per message of recent batches;
- throughput: parcels screened per wall second over the window;
- capacity: parcels per busy second at a full batch (`batch_max_messages` messages), from a
  least-squares fit of batch seconds = fixed + per_parcel * parcels over recent batches, never
  below the plain parcels per busy second; plain ratio when batch sizes are too alike to fit;
- headroom: capacity / required peak rate;
- drain time: lag / (capacity - arrival rate), in messages; 0 with no lag; +Inf when capacity
  <= arrival rate and there is lag (the backlog never drains); NaN before the first batch;
- lag in parcels: lag in messages times the mean parcels per message of recent batches;
- recent latency: p50/p99 of publish-to-decision latency over the last `RECENT_WINDOW_S`, from the
  difference of two snapshots of the cumulative histogram (the histogram itself covers the whole
  life of the worker, where one old pause would hold p99 up for hours).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import Any, Protocol

from screener.ops.metrics import BatchStats, PipelineMetrics, histogram_quantile

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 5.0
DEFAULT_WINDOW_S = 60.0
RECENT_WINDOW_S = 300.0
RECENT_QUANTILES = (0.5, 0.99)
# Below this many batches, or with batch sizes this alike (coefficient of variation), the fixed and
# per-parcel costs cannot be told apart and capacity is the plain parcels per busy second.
MIN_BATCHES_FOR_FIT = 20
MIN_BATCH_SIZE_CV = 0.25

Offsets = Mapping[tuple[str, int], tuple[int, int]]
StateArg = Mapping[str, Sized] | Callable[[], Mapping[str, Sized]] | None


class OffsetReader(Protocol):
    """Anything that reports (high-water mark, committed offset) per assigned input partition."""

    async def read(self) -> Offsets:
        """{(topic, partition): (highwater, committed)} for partitions with a known high-water mark."""
        ...


def mean_parcels_per_message(stats: BatchStats) -> float:
    """Parcels per input message over recent batches; NaN before any message."""
    return stats.w_n / stats.w_msgs if stats.w_msgs > 0 else math.nan


def capacity_parcels_per_second(stats: BatchStats, full_batch_messages: int) -> float:
    """Parcels per busy second at a full batch; NaN until a batch with parcels was screened."""
    if stats.w_t <= 0 or stats.w_n <= 0:
        return math.nan
    plain = stats.w_n / stats.w_t
    mean_n = stats.w_n / stats.w
    mean_t = stats.w_t / stats.w
    var_n = stats.w_nn / stats.w - mean_n * mean_n
    if stats.batches < MIN_BATCHES_FOR_FIT or var_n <= (MIN_BATCH_SIZE_CV * mean_n) ** 2:
        return plain
    per_parcel = (stats.w_nt / stats.w - mean_n * mean_t) / var_n
    if per_parcel <= 0:
        return plain
    fixed = max(0.0, mean_t - per_parcel * mean_n)
    full_n = max(full_batch_messages * mean_parcels_per_message(stats), mean_n)
    return max(plain, full_n / (fixed + per_parcel * full_n))


def drain_seconds(lag_messages: float, capacity_messages: float, arrival_messages: float) -> float:
    """Seconds to empty the lag: 0 without lag, +Inf if it never drains, NaN if capacity is unknown."""
    if lag_messages <= 0:
        return 0.0
    if math.isnan(capacity_messages) or math.isnan(arrival_messages):
        return math.nan
    spare = capacity_messages - arrival_messages
    return lag_messages / spare if spare > 0 else math.inf


class KeepUpSampler:
    """Turns offset samples and batch totals into the keep-up gauges of one worker."""

    def __init__(self, metrics: PipelineMetrics, *, required_peak: float, full_batch_messages: int,
                 offsets: OffsetReader | None = None, state: StateArg = None,
                 entities: Callable[[], Mapping[str, int]] | None = None,
                 window_s: float = DEFAULT_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        """`state`: the vocabularies to size; `entities`: the consignee state's counts (a stateful worker)."""
        self.metrics = metrics
        self.entities = entities
        self.required_peak = required_peak
        self.full_batch_messages = full_batch_messages
        self.offsets = offsets
        self.state = state
        self.window_s = window_s
        self.clock = clock
        # (time, parcels screened so far, {tp: highwater}) per sample, oldest first. Both series start with
        # the counts at construction, so batches screened before the first sample are in the window.
        started = clock()
        self._samples: deque[tuple[float, float, dict[tuple[str, int], int]]] = deque(
            [(started, metrics.stats.parcels, {})])
        self._lag: float = 0.0
        # (time, cumulative latency histogram) per sample, for the recent-latency quantiles.
        self._latency: deque[tuple[float, dict[float, float]]] = deque([(started, metrics.latency_counts())])

    async def sample(self) -> None:
        """Read offsets (if a reader is set) and update every keep-up gauge; never raises."""
        offsets: Offsets | None = None
        if self.offsets is not None:
            try:
                offsets = await self.offsets.read()
            except Exception as exc:  # a rebalance or a starting consumer must not kill the timer
                log.debug("offsets not readable now: %r", exc)
        try:
            self.update(offsets)
        except Exception:
            log.exception("keep-up sampling failed")

    def update(self, offsets: Offsets | None) -> None:
        """Fold one sample in and set the gauges; offsets None means 'unknown this time'."""
        now = self.clock()
        stats = self.metrics.stats
        highwaters: dict[tuple[str, int], int] = {}
        if offsets is not None:
            self.metrics.set_offsets(offsets)
            highwaters = {tp: hw for tp, (hw, _) in offsets.items()}
            self._lag = float(sum(max(0, hw - committed) for hw, committed in offsets.values()))
        elif self._samples:
            highwaters = self._samples[-1][2]
        self._samples.append((now, stats.parcels, highwaters))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

        first_t, first_parcels, _ = self._samples[0]
        span = now - first_t
        arrival_msgs = self._arrival_messages(now, highwaters) if span > 0 else math.nan
        throughput = (stats.parcels - first_parcels) / span if span > 0 else math.nan
        ppm = mean_parcels_per_message(stats)
        capacity = capacity_parcels_per_second(stats, self.full_batch_messages)
        capacity_msgs = capacity / ppm if ppm > 0 else math.nan
        self.metrics.set_keepup(
            arrival_messages=arrival_msgs,
            arrival_parcels=arrival_msgs * ppm if ppm > 0 else math.nan,
            throughput=throughput,
            capacity=capacity,
            headroom=capacity / self.required_peak if self.required_peak > 0 else math.nan,
            drain_seconds=drain_seconds(self._lag, capacity_msgs, arrival_msgs),
        )
        self._export_recent_latency(now)
        self._export_state()
        if self.entities is not None:
            self.metrics.set_entity_state(self.entities())

    def _export_recent_latency(self, now: float) -> None:
        counts = self.metrics.latency_counts()
        self._latency.append((now, counts))
        while len(self._latency) > 2 and now - self._latency[1][0] >= RECENT_WINDOW_S:
            self._latency.popleft()
        _, old = self._latency[0]
        window = {le: n - old.get(le, 0.0) for le, n in counts.items()}
        self.metrics.set_recent_latency({q: histogram_quantile(q, window) for q in RECENT_QUANTILES})

    def _arrival_messages(self, now: float, highwaters: dict[tuple[str, int], int]) -> float:
        """Messages/s added to the partitions, each measured from the oldest sample in the window that has it.

        A partition assigned mid-window (rebalance, first fetch) counts from when it was first seen;
        what it held before then is lag, not arrival.
        """
        first_seen: dict[tuple[str, int], tuple[float, int]] = {}
        for t, _, hws in self._samples:
            for tp, hw in hws.items():
                first_seen.setdefault(tp, (t, hw))
        rate = 0.0
        for tp, hw in highwaters.items():
            t0, hw0 = first_seen[tp]
            if now > t0:
                rate += max(0, hw - hw0) / (now - t0)
        return rate

    def _export_state(self) -> None:
        state = self.state() if callable(self.state) else self.state
        if state:
            self.metrics.set_state_sizes("vocabulary", ((name, len(v)) for name, v in state.items()))


class FaustOffsets:
    """Reads high-water marks and committed offsets from a Faust app's aiokafka consumer.

    Faust runs aiokafka in its own thread and event loop (ConsumerThread); the whole read runs
    there through `call_thread`, so the consumer is never touched from the app's loop.
    """

    def __init__(self, app: Any, topics: Iterable[str], timeout_s: float = 5.0) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.timeout_s = timeout_s
        self._earliest: dict[Any, int] = {}

    async def read(self) -> Offsets:
        """{(topic, partition): (highwater, committed)} for assigned input partitions."""
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        if not tps:
            return {}
        thread = consumer._thread
        client = thread._ensure_consumer()
        return await asyncio.wait_for(thread.call_thread(read_offsets, client, tps, self._earliest),
                                      timeout=self.timeout_s)


async def read_offsets(client: Any, tps: Iterable[Any], earliest: dict[Any, int]) -> Offsets:
    """(highwater, committed) per partition from an AIOKafkaConsumer; run on the consumer's loop.

    A partition never committed counts from its earliest offset (a new group starts there).
    Partitions without a fetch response yet have no high-water mark and are left out.
    """
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for tp in tps:
        try:
            highwater = client.highwater(tp)
        except AssertionError:  # revoked between assignment() and now
            continue
        if highwater is None:
            continue
        committed = await client.committed(tp)
        if committed is None:
            if tp not in earliest:
                earliest.update(await client.beginning_offsets([tp]))
            committed = earliest[tp]
        out[(tp.topic, tp.partition)] = (int(highwater), int(committed))
    return out


def attach(app: Any, metrics: PipelineMetrics, settings: Any, vocab: StateArg = None,
           entities: Callable[[], Mapping[str, int]] | None = None,
           *, interval: float = DEFAULT_INTERVAL_S) -> KeepUpSampler:
    """Register a Faust timer that samples lag and sets the keep-up gauges every `interval` seconds."""
    metrics.set_targets(settings.daily_volume, settings.peak_factor, settings.required_peak_rate)
    sampler = KeepUpSampler(metrics, required_peak=settings.required_peak_rate,
                            full_batch_messages=settings.batch_max_messages,
                            offsets=FaustOffsets(app, [settings.manifests_topic], timeout_s=0.8 * interval),
                            state=vocab, entities=entities)

    async def sample_keepup() -> None:
        await sampler.sample()

    app.timer(interval=interval, name="screener.ops.observability.sample_keepup")(sample_keepup)
    return sampler
