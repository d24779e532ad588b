"""Prometheus metrics of a worker, updated once per batch (never per parcel).

Counters and histograms move in `observe_batch`, the only call on the hot path. The keep-up
gauges (lag, arrival rate, capacity, headroom, drain time, state sizes) are set every few seconds
by `screener.ops.observability`, which reads the batch totals kept here. Every name is documented in
docs/metrics.md together with the alert that uses it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector, start_http_server

from screener.pipeline.columns import PARCEL_REASONS

if TYPE_CHECKING:
    from screener.pipeline.processor import BatchOutcome

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LANES = ("green", "yellow", "red")
MESSAGE_OUTCOMES = ("ok", "dead_letter")
OUTCOME_RESULTS = ("joined", "invalid", "unknown_parcel")  # of an inspection outcome (screener/kafka/feedback.py)
# Whole-message reason codes (manifest.py, pipeline.py, kafka/feedback.py for an outcome of a parcel not
# kept); parcel-level ones come from columns.py.
MESSAGE_DEAD_LETTER_REASONS = ("empty_message", "too_large", "not_json", "not_object", "unknown_schema_version",
                               "bad_manifest", "too_many_bad_parcels", "output_too_large", "output_refused",
                               "internal_error", "unknown_parcel")


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """Quantile q of a cumulative histogram, interpolated within a bucket as Prometheus does; NaN if empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return math.nan
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below) if count > below else upper
        lower, below = upper, count
    return lower


@dataclass
class BatchStats:
    """Running totals and decayed per-batch sums, read by the keep-up sampler.

    The decayed sums (each batch weighs `decay` times the one after it) are what a least-squares fit
    of `batch seconds = fixed + per_parcel * parcels` needs: a half-empty batch pays the same fixed
    cost as a full one, so capacity must be judged at full batches, not at whatever load arrives.
    """

    decay: float = 0.98
    batches: int = 0
    parcels: float = 0.0
    messages: float = 0.0
    busy_seconds: float = 0.0
    w: float = 0.0
    w_n: float = 0.0
    w_t: float = 0.0
    w_nn: float = 0.0
    w_nt: float = 0.0
    w_msgs: float = 0.0
    max_n: float = 0.0

    def add(self, parcels: int, messages: int, seconds: float) -> None:
        """Fold one batch into the totals and the decayed sums."""
        d = self.decay
        n = float(parcels)
        self.batches += 1
        self.parcels += n
        self.messages += messages
        self.busy_seconds += seconds
        self.w = self.w * d + 1.0
        self.w_n = self.w_n * d + n
        self.w_t = self.w_t * d + seconds
        self.w_nn = self.w_nn * d + n * n
        self.w_nt = self.w_nt * d + n * seconds
        self.w_msgs = self.w_msgs * d + messages
        self.max_n = max(self.max_n * d, n)


class PipelineMetrics:
    """All metrics one worker exports; `observe_batch` is the only call on the hot path."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.stats = BatchStats()
        r = self.registry
        # CPU seconds and resident memory of the worker process, for the dashboard.
        ProcessCollector(registry=r)

        self.parcels = Counter("screener_parcels_total", "Parcels screened, by lane.", ["lane"], registry=r)
        self.messages = Counter("screener_messages_total", "Input messages, by outcome (ok, dead_letter).",
                                ["outcome"], registry=r)
        self.dead_letters = Counter("screener_dead_letter_total", "Dead-letter entries, by reason code.",
                                    ["reason"], registry=r)
        self.rule_hits = Counter("screener_rule_hits_total", "Rule hits, by rule id.", ["rule_id"], registry=r)
        self.batch_seconds = Histogram("screener_batch_seconds", "Wall seconds to process one batch.",
                                       buckets=BATCH_BUCKETS, registry=r)
        self.kernel_seconds = Counter("screener_kernel_seconds_total", "Seconds spent in screening kernels.",
                                      registry=r)
        self.busy_seconds = Counter("screener_busy_seconds_total", "Seconds spent processing batches.",
                                    registry=r)
        self.latency = Histogram("screener_publish_to_decision_seconds",
                                 "Seconds from the input message timestamp to its decisions being acknowledged.",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.last_batch = Gauge("screener_last_batch_timestamp_seconds", "Unix time of the last processed batch.",
                                registry=r)
        self.lookup_seconds = Histogram("screener_state_lookup_seconds",
                                        "Wall seconds from sending a batch's state lookups to holding every answer "
                                        "(stateful packs).", buckets=BATCH_BUCKETS, registry=r)
        self.requests_resent = Counter("screener_state_requests_resent_total",
                                       "State requests sent again, unanswered after 30 s (stateful packs).",
                                       registry=r)
        self.outcomes = Counter("screener_inspection_outcomes_total",
                                "Inspection outcomes read: joined to a kept parcel, or dead-lettered (invalid, "
                                "unknown_parcel).", ["result"], registry=r)
        # Zero-valued children make every lane, outcome and reason visible before the first parcel,
        # so rate() and the ratios in alerts and panels have both sides from the first scrape.
        for lane in LANES:
            self.parcels.labels(lane)
        for outcome in MESSAGE_OUTCOMES:
            self.messages.labels(outcome)
        for reason in MESSAGE_DEAD_LETTER_REASONS + tuple(PARCEL_REASONS):
            self.dead_letters.labels(reason)
        for result in OUTCOME_RESULTS:
            self.outcomes.labels(result)

        tp = ["topic", "partition"]
        self.lag = Gauge("screener_consumer_lag",
                         "Records not yet screened: high-water mark minus committed offset.", tp, registry=r)
        self.highwater = Gauge("screener_consumer_highwater",
                               "High-water mark from the consumer's fetch responses.", tp, registry=r)
        self.committed = Gauge("screener_consumer_committed_offset",
                               "Offset committed by the consumer group (next record to screen).", tp, registry=r)
        self.arrival_messages = Gauge("screener_arrival_rate_messages_per_second",
                                      "Messages per second arriving on this worker's partitions.", registry=r)
        self.arrival_parcels = Gauge("screener_arrival_rate_parcels_per_second",
                                     "Parcels per second arriving on this worker's partitions (estimated from "
                                     "messages times mean parcels per message).", registry=r)
        self.throughput = Gauge("screener_throughput_parcels_per_second",
                                "Parcels screened per wall second over the sampling window.", registry=r)
        self.capacity = Gauge("screener_capacity_parcels_per_second",
                              "Parcels per busy second this worker sustains at full batches; NaN before any batch.",
                              registry=r)
        self.required_peak = Gauge("screener_required_peak_parcels_per_second",
                                   "Peak rate to sustain: daily volume times peak factor over 86,400 s.", registry=r)
        self.daily_volume = Gauge("screener_daily_volume_parcels", "Daily volume the deployment is sized for.",
                                  registry=r)
        self.peak_factor = Gauge("screener_peak_factor", "Peak-day rate as a multiple of the average rate.",
                                 registry=r)
        self.headroom = Gauge("screener_headroom_ratio",
                              "Capacity over the required peak rate; NaN before any batch.", registry=r)
        self.drain = Gauge("screener_drain_seconds",
                           "Seconds to empty the lag at capacity minus arrival rate; 0 with no lag, "
                           "+Inf when capacity <= arrival rate, NaN before any batch.", registry=r)
        self.lag_parcels = Gauge("screener_consumer_lag_parcels",
                                 "Parcels not yet screened: lag in messages times mean parcels per message of "
                                 "recent batches; NaN before any batch.", registry=r)
        self.latency_recent = Gauge("screener_publish_to_decision_recent_seconds",
                                    "Publish-to-decision latency quantile over the last few minutes "
                                    "(DEFAULT_WINDOW_S of screener.ops.observability); NaN with no decision "
                                    "in the window.", ["quantile"], registry=r)
        self.broker_up = Gauge("screener_broker_up",
                               "1 if a bootstrap broker answered the last metadata probe, 0 if not; NaN before "
                               "the first probe.", ["bootstrap"], registry=r)
        self.broker_last_contact = Gauge("screener_broker_last_contact_timestamp_seconds",
                                         "Unix time of the last successful broker probe; 0 before one.",
                                         ["bootstrap"], registry=r)
        self.broker_down_since = Gauge("screener_broker_down_since_timestamp_seconds",
                                       "Unix time since which the broker has been unreachable; 0 while reachable.",
                                       ["bootstrap"], registry=r)
        self.build_info = Info("screener_build", "Version of the screener and the rule pack this worker runs.",
                               registry=r)
        self.state_entries = Gauge("screener_state_entries", "Entries held in worker state, by kind and name.",
                                   ["kind", "name"], registry=r)
        self.outcomes_learned = Counter(
            "screener_r11_outcomes_learned", "Joined inspection outcomes this worker's R11 rates have taken in "
            "(read from outcomes-joined; every worker reads them all).", registry=r)
        self.window_events_dropped = Counter(
            "screener_state_window_events_dropped",
            "Consignee window events dropped because their consignee held 1,024 newer ones (a flood: its 24h "
            "count and value are lower bounds).", registry=r)
        self._dropped_seen = 0
        for gauge in (self.capacity, self.headroom, self.drain, self.lag_parcels):
            gauge.set(math.nan)
        self._partitions: set[tuple[str, str]] = set()
        self._lag_messages = 0.0

    def observe_batch(self, outcome: BatchOutcome, seconds: float, input_timestamps_ms: list[int]) -> None:
        """Record one processed batch."""
        for lane, count in outcome.lanes.items():
            if count:
                self.parcels.labels(lane).inc(count)
        for name, count in outcome.messages.items():
            if count:
                self.messages.labels(name).inc(count)
        for reason, count in outcome.dead_letters.items():
            self.dead_letters.labels(reason).inc(count)
        for rule_id, count in outcome.rule_hits.items():
            self.rule_hits.labels(rule_id).inc(count)
        self.batch_seconds.observe(seconds)
        self.busy_seconds.inc(seconds)
        self.kernel_seconds.inc(outcome.kernel_seconds)
        self.stats.add(outcome.parcels, sum(outcome.messages.values()), seconds)
        now_ms = time.time() * 1000.0
        for ts in input_timestamps_ms:
            if ts:
                self.latency.observe(max(0.0, (now_ms - ts) / 1000.0))
        self.last_batch.set_to_current_time()

    def observe_outcomes(self, counts: Mapping[str, int]) -> None:
        """Count a batch of inspection outcomes by result (joined, invalid, unknown_parcel)."""
        for result, n in counts.items():
            self.outcomes.labels(result).inc(n)

    def set_targets(self, daily_volume: float, peak_factor: float, required_peak: float) -> None:
        """Export the keep-up target the headroom is measured against."""
        self.daily_volume.set(daily_volume)
        self.peak_factor.set(peak_factor)
        self.required_peak.set(required_peak)

    def set_offsets(self, offsets: Mapping[tuple[str, int], tuple[int, int]]) -> None:
        """Export high-water mark, committed offset and lag for the partitions assigned now."""
        seen: set[tuple[str, str]] = set()
        for (topic, partition), (highwater, committed) in offsets.items():
            key = (topic, str(partition))
            seen.add(key)
            self.highwater.labels(*key).set(highwater)
            self.committed.labels(*key).set(committed)
            self.lag.labels(*key).set(max(0, highwater - committed))
        self._lag_messages = float(sum(max(0, hw - c) for hw, c in offsets.values()))
        # A revoked partition belongs to another worker now; keeping its last lag would count it twice.
        for key in self._partitions - seen:
            for gauge in (self.lag, self.highwater, self.committed):
                gauge.remove(*key)
        self._partitions = seen

    def set_keepup(self, *, arrival_messages: float, arrival_parcels: float, throughput: float,
                   capacity: float, headroom: float, drain_seconds: float) -> None:
        """Export the derived keep-up figures computed by the sampler."""
        self.arrival_messages.set(arrival_messages)
        self.arrival_parcels.set(arrival_parcels)
        self.throughput.set(throughput)
        self.capacity.set(capacity)
        self.headroom.set(headroom)
        self.drain.set(drain_seconds)
        ppm = self.stats.w_n / self.stats.w_msgs if self.stats.w_msgs > 0 else math.nan
        self.lag_parcels.set(self._lag_messages * ppm)

    def set_recent_latency(self, quantiles: Mapping[float, float]) -> None:
        """Export latency quantiles over the recent window, e.g. {0.5: 0.08, 0.99: 0.21}."""
        for q, seconds in quantiles.items():
            self.latency_recent.labels(f"{q:g}").set(seconds)

    def latency_counts(self) -> dict[float, float]:
        """Cumulative latency histogram now: upper bound -> observations at or below it."""
        return {float(s.labels["le"]): s.value for metric in self.latency.collect() for s in metric.samples
                if s.name.endswith("_bucket")}

    def set_broker(self, bootstrap: str, *, up: bool | None, last_contact: float | None,
                   down_since: float | None) -> None:
        """Export broker reachability (None = not probed yet / never / not down)."""
        self.broker_up.labels(bootstrap).set(math.nan if up is None else float(up))
        self.broker_last_contact.labels(bootstrap).set(last_contact or 0.0)
        self.broker_down_since.labels(bootstrap).set(down_since or 0.0)

    def set_build_info(self, **labels: str) -> None:
        """Export screener_build_info{version, ruleset, ruleset_version, ...} = 1."""
        self.build_info.info(labels)

    def set_state_sizes(self, kind: str, sizes: Iterable[tuple[str, int]]) -> None:
        """Export the number of entries of each named piece of state of one kind."""
        for name, size in sizes:
            self.state_entries.labels(kind, name).set(size)

    def set_entity_state(self, counts: Mapping[str, int]) -> None:
        """Export a stateful worker's consignee state: entities and window events held, events dropped so far."""
        self.set_state_sizes("consignee", ((k, v) for k, v in counts.items() if k != "window_events_dropped"))
        dropped = int(counts.get("window_events_dropped", 0))   # a total since the worker started
        if dropped > self._dropped_seen:
            self.window_events_dropped.inc(dropped - self._dropped_seen)
        self._dropped_seen = dropped

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve /metrics on port in a background thread."""
        start_http_server(port, addr=addr, registry=self.registry)
