"""Worker metrics and keep-up sampling: counters per batch, lag, capacity, headroom and drain time."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from prometheus_client import generate_latest

from screener.ops.metrics import BatchStats, PipelineMetrics
from screener.ops.observability import (
    KeepUpSampler,
    attach,
    capacity_parcels_per_second,
    drain_seconds,
    mean_parcels_per_message,
)
from screener.pipeline.batch import Vocabularies
from screener.pipeline.processor import BatchOutcome
from screener.settings import Settings


def outcome(parcels: int = 500, messages: int = 1, dead: int = 0) -> BatchOutcome:
    """A batch outcome of `messages` good manifests holding `parcels` parcels, plus `dead` bad messages."""
    o = BatchOutcome()
    o.parcels = parcels
    o.lanes.update(green=parcels - parcels // 10, yellow=parcels // 20, red=parcels // 10 - parcels // 20)
    o.messages.update(ok=messages, dead_letter=dead)
    o.dead_letters.update({"not_json": dead})
    o.rule_hits.update({"R1": 3, "R14": 2})
    o.kernel_seconds = 0.001
    return o


def value(m: PipelineMetrics, metric: str, /, **labels) -> float | None:
    """The exported sample value of `metric` with exactly these labels (None if absent)."""
    return m.registry.get_sample_value(metric, labels)


def test_observe_batch_counts_lanes_messages_reasons_rules_and_time():
    m = PipelineMetrics()
    m.observe_batch(outcome(500, messages=2, dead=1), 0.02, [1, 2, 0])
    m.observe_batch(outcome(100, messages=1), 0.01, [5])
    assert value(m, "screener_parcels_total", lane="green") == 450 + 90
    assert value(m, "screener_parcels_total", lane="red") == 25 + 5
    assert value(m, "screener_messages_total", outcome="ok") == 3
    assert value(m, "screener_messages_total", outcome="dead_letter") == 1
    assert value(m, "screener_dead_letter_total", reason="not_json") == 1
    assert value(m, "screener_rule_hits_total", rule_id="R1") == 6
    assert value(m, "screener_batch_seconds_count") == 2
    assert value(m, "screener_busy_seconds_total") == pytest.approx(0.03)
    assert value(m, "screener_kernel_seconds_total") == pytest.approx(0.002)
    # One latency observation per input message with a timestamp (0 = none).
    assert value(m, "screener_publish_to_decision_seconds_count") == 3
    assert m.stats.parcels == 600 and m.stats.messages == 4 and m.stats.batches == 2


def test_lanes_and_outcomes_are_exported_before_the_first_batch():
    text = generate_latest(PipelineMetrics().registry).decode()
    for lane in ("green", "yellow", "red"):
        assert f'screener_parcels_total{{lane="{lane}"}} 0.0' in text
    assert 'screener_messages_total{outcome="dead_letter"} 0.0' in text
    # Unknown until a batch is screened: NaN, so that no alert fires on a fresh worker.
    assert "screener_headroom_ratio NaN" in text and "screener_drain_seconds NaN" in text


def test_set_offsets_exports_lag_and_forgets_revoked_partitions():
    m = PipelineMetrics()
    m.set_offsets({("manifests", 0): (1000, 400), ("manifests", 1): (500, 500)})
    assert value(m, "screener_consumer_lag", topic="manifests", partition="0") == 600
    assert value(m, "screener_consumer_lag", topic="manifests", partition="1") == 0
    assert value(m, "screener_consumer_highwater", topic="manifests", partition="0") == 1000
    assert value(m, "screener_consumer_committed_offset", topic="manifests", partition="0") == 400
    m.set_offsets({("manifests", 1): (700, 650)})
    assert value(m, "screener_consumer_lag", topic="manifests", partition="0") is None
    assert value(m, "screener_consumer_highwater", topic="manifests", partition="0") is None
    assert value(m, "screener_consumer_lag", topic="manifests", partition="1") == 50


def _stats(batches: list[tuple[int, int, float]], decay: float = 0.98) -> BatchStats:
    s = BatchStats(decay=decay)
    for parcels, messages, seconds in batches:
        s.add(parcels, messages, seconds)
    return s


def test_capacity_is_nan_before_any_parcel_and_plain_rate_for_alike_batches():
    assert math.isnan(capacity_parcels_per_second(BatchStats(), 256))
    assert math.isnan(capacity_parcels_per_second(_stats([(0, 3, 0.01)]), 256))
    # 30 batches of the same size: fixed and per-parcel cost cannot be separated.
    s = _stats([(500, 1, 0.01)] * 30)
    assert capacity_parcels_per_second(s, 256) == pytest.approx(50_000)


def test_capacity_is_judged_at_a_full_batch_not_at_the_current_load():
    # Single-parcel messages, batch cost 2 ms fixed + 20 us per parcel, small batches at low load.
    fixed, per_parcel = 0.002, 20e-6
    sizes = [1, 3, 5, 8, 12, 20, 2, 6, 15, 30] * 5
    s = _stats([(n, n, fixed + per_parcel * n) for n in sizes])
    plain = s.w_n / s.w_t
    full = 256 / (fixed + per_parcel * 256)
    assert capacity_parcels_per_second(s, 256) == pytest.approx(full, rel=1e-6)
    assert capacity_parcels_per_second(s, 256) > 3 * plain  # what a plain ratio would underestimate


def test_capacity_never_below_the_observed_rate_when_the_fit_is_nonsense():
    # Bigger batches took less time (noise): no per-parcel cost can be fitted.
    s = _stats([(n, n, 0.05 - n * 1e-4) for n in [10, 50, 100, 200, 300] * 5])
    assert capacity_parcels_per_second(s, 256) == pytest.approx(s.w_n / s.w_t)


def test_drain_time_rules():
    assert drain_seconds(0, 10.0, 20.0) == 0.0  # no lag: nothing to drain, whatever the rates
    assert drain_seconds(1000, 30.0, 20.0) == pytest.approx(100.0)
    assert drain_seconds(1000, 20.0, 20.0) == math.inf  # never drains
    assert drain_seconds(1000, 10.0, 20.0) == math.inf
    assert math.isnan(drain_seconds(1000, math.nan, 20.0))


class FakeOffsets:
    """Offsets as a broker would report them, changed by the test between samples."""

    def __init__(self) -> None:
        self.now: dict[tuple[str, int], tuple[int, int]] = {}
        self.fail = False

    async def read(self):
        if self.fail:
            raise RuntimeError("consumer not started")
        return dict(self.now)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_sampler_computes_arrival_lag_headroom_drain_and_state_sizes():
    m = PipelineMetrics()
    clock, offsets = Clock(), FakeOffsets()
    vocab = Vocabularies()
    vocab["consignee_id"].intern_many(["a", "b", "c"])
    sampler = KeepUpSampler(m, required_peak=2000.0, full_batch_messages=256, offsets=offsets,
                            state=lambda: vocab, clock=clock)
    offsets.now = {("manifests", 0): (100, 100), ("manifests", 1): (50, 40)}
    asyncio.run(sampler.sample())
    # 10 s later: 200 more messages arrived, 20 batches of one 100-parcel manifest screened at 1 ms each.
    for _ in range(20):
        m.observe_batch(outcome(100, messages=1), 0.001, [])
    clock.t += 10
    offsets.now = {("manifests", 0): (250, 120), ("manifests", 1): (100, 100)}
    asyncio.run(sampler.sample())

    assert value(m, "screener_arrival_rate_messages_per_second") == pytest.approx(20.0)
    assert value(m, "screener_arrival_rate_parcels_per_second") == pytest.approx(2000.0)
    assert value(m, "screener_throughput_parcels_per_second") == pytest.approx(200.0)
    assert value(m, "screener_capacity_parcels_per_second") == pytest.approx(100_000)
    assert value(m, "screener_headroom_ratio") == pytest.approx(50.0)
    assert value(m, "screener_consumer_lag", topic="manifests", partition="0") == 130
    # 130 messages of lag, capacity 1000 messages/s, arrival 20 messages/s.
    assert value(m, "screener_drain_seconds") == pytest.approx(130 / (1000 - 20))
    assert value(m, "screener_state_entries", kind="vocabulary", name="consignee_id") == 4  # "" + 3


def test_sampler_survives_an_unreadable_consumer_and_keeps_the_last_lag():
    m = PipelineMetrics()
    offsets = FakeOffsets()
    sampler = KeepUpSampler(m, required_peak=2000.0, full_batch_messages=256, offsets=offsets, clock=Clock())
    offsets.now = {("manifests", 0): (10, 4)}
    asyncio.run(sampler.sample())
    offsets.fail = True
    asyncio.run(sampler.sample())  # must not raise
    assert value(m, "screener_consumer_lag", topic="manifests", partition="0") == 6


def test_sampler_reports_infinite_drain_when_arrival_outruns_capacity():
    m = PipelineMetrics()
    clock, offsets = Clock(), FakeOffsets()
    sampler = KeepUpSampler(m, required_peak=2000.0, full_batch_messages=1, offsets=offsets, clock=clock)
    offsets.now = {("manifests", 0): (0, 0)}
    asyncio.run(sampler.sample())
    m.observe_batch(outcome(10, messages=1), 0.1, [])  # 100 parcels per busy second = 10 messages/s
    clock.t += 10
    offsets.now = {("manifests", 0): (1000, 1)}  # 100 messages/s arriving
    asyncio.run(sampler.sample())
    assert value(m, "screener_drain_seconds") == math.inf
    assert value(m, "screener_headroom_ratio") == pytest.approx(0.05)
    assert "screener_drain_seconds +Inf" in generate_latest(m.registry).decode()


def test_mean_parcels_per_message():
    assert math.isnan(mean_parcels_per_message(BatchStats()))
    assert mean_parcels_per_message(_stats([(1000, 2, 0.1), (0, 1, 0.01)], decay=1.0)) == pytest.approx(1000 / 3)
    # Recent batches weigh more: the older 1000-parcel batch counts 0.98 times.
    assert mean_parcels_per_message(_stats([(1000, 2, 0.1), (0, 1, 0.01)])) == pytest.approx(980 / 2.96)


def test_attach_registers_a_timer_on_a_real_faust_app_and_exports_the_target():
    import faust

    settings = Settings(daily_volume=20_000_000, peak_factor=10)
    app = faust.App("attach-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    before = len(app._app_tasks)
    m = PipelineMetrics()
    sampler = attach(app, m, settings, vocab=Vocabularies())
    assert len(app._app_tasks) == before + 1
    assert value(m, "screener_required_peak_parcels_per_second") == pytest.approx(20e6 * 10 / 86400)
    assert value(m, "screener_daily_volume_parcels") == 20e6
    assert sampler.offsets.topics == {settings.manifests_topic}


def test_a_partition_seen_mid_window_counts_arrivals_from_then_not_its_backlog():
    m = PipelineMetrics()
    clock, offsets = Clock(), FakeOffsets()
    sampler = KeepUpSampler(m, required_peak=2000.0, full_batch_messages=256, offsets=offsets, clock=clock)
    offsets.now = {("manifests", 0): (0, 0)}
    asyncio.run(sampler.sample())
    clock.t += 10
    # Partition 1 arrives by a rebalance holding 5,000 old messages: lag, not arrival.
    offsets.now = {("manifests", 0): (100, 100), ("manifests", 1): (5000, 0)}
    asyncio.run(sampler.sample())
    assert value(m, "screener_arrival_rate_messages_per_second") == pytest.approx(10.0)
    clock.t += 10
    offsets.now = {("manifests", 0): (200, 200), ("manifests", 1): (5100, 100)}
    asyncio.run(sampler.sample())
    assert value(m, "screener_arrival_rate_messages_per_second") == pytest.approx(200 / 20 + 100 / 10)
    assert value(m, "screener_consumer_lag", topic="manifests", partition="1") == 5000


def test_every_dead_letter_reason_is_exported_at_zero_before_it_happens():
    import re
    from pathlib import Path

    import screener
    from screener.ops.metrics import MESSAGE_DEAD_LETTER_REASONS
    from screener.pipeline.columns import PARCEL_REASONS

    # The message-level codes are spelled out in metrics.py; every code the code emits must be exported
    # (inspection outcomes reuse parcel-level codes for whole messages).
    src = "".join(p.read_text() for p in Path(screener.__file__).parent.rglob("*.py"))
    emitted = set(re.findall(r'Rejection\("([a-z_]+)"', src))
    assert set(MESSAGE_DEAD_LETTER_REASONS) <= emitted <= set(MESSAGE_DEAD_LETTER_REASONS) | set(PARCEL_REASONS)
    m = PipelineMetrics()
    for reason in emitted | set(PARCEL_REASONS):
        assert value(m, "screener_dead_letter_total", reason=reason) == 0


def test_batches_screened_before_the_first_sample_are_in_the_window():
    # A short burst right after start, then the first sample: the window starts at the sampler's creation,
    # so throughput and recent latency are not 0 and "-" for a burst the worker did screen.
    m = PipelineMetrics()
    clock = Clock()
    sampler = KeepUpSampler(m, required_peak=2000.0, full_batch_messages=256, clock=clock)
    m.observe_batch(outcome(500, messages=1), 0.01, [int(time.time() * 1000) - 40])
    clock.t += 10
    asyncio.run(sampler.sample())
    assert value(m, "screener_throughput_parcels_per_second") == pytest.approx(50.0)
    assert not math.isnan(value(m, "screener_publish_to_decision_recent_seconds", quantile="0.99"))


def test_a_stateful_worker_exports_its_consignee_state_and_counts_dropped_window_events_once():
    from screener.kafka.state_shards import StateShards
    from screener.state.consignee import ConsigneeState

    shards = StateShards(["127.0.0.1:1"], "changelog")
    m = PipelineMetrics()
    sampler = KeepUpSampler(m, required_peak=1.0, full_batch_messages=64, entities=shards.sizes)

    class Held:   # a shard as the sampler sees it: only its store matters
        def __init__(self, store):
            self.store = store

    flooded = ConsigneeState(max_events=4)
    flooded.apply(["x"] * 10 + ["y"], range(1, 12), [1_800_000_000_000] * 11, [1.0] * 11, range(11))
    shards.shards = {0: Held(flooded), 1: Held(ConsigneeState())}
    asyncio.run(sampler.sample())
    asyncio.run(sampler.sample())   # sampled again: nothing new is counted
    assert value(m, "screener_state_entries", kind="consignee", name="entities") == 2
    assert value(m, "screener_state_entries", kind="consignee", name="window_events") == 5   # 4 of x, 1 of y
    assert value(m, "screener_state_window_events_dropped_total") == 6
    # Partition 0 revoked, then assigned again, its store rebuilt (counters at 0) and flooded again: the
    # drops of the revoked store stay counted and the new ones add to them.
    shards.revoke([0])
    assert value(m, "screener_state_window_events_dropped_total") == 6
    rebuilt = ConsigneeState(max_events=4)
    rebuilt.apply(["z"] * 5, range(1, 6), [1_800_000_000_000] * 5, [1.0] * 5, range(5))
    shards.shards[0] = Held(rebuilt)
    asyncio.run(sampler.sample())
    assert value(m, "screener_state_window_events_dropped_total") == 7
    assert value(m, "screener_state_entries", kind="consignee", name="entities") == 1
