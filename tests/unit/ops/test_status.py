"""`screener status`: exposition text of real PipelineMetrics in, verdict in words out."""

from __future__ import annotations

import io
import math

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest
from rich.console import Console

from screener.kafka.broker import free_port
from screener.ops.metrics import PipelineMetrics
from screener.ops.observability import KeepUpSampler
from screener.ops.status import (
    EXIT_BEHIND,
    EXIT_BROKER_DOWN,
    EXIT_KEEPS_UP,
    EXIT_UNKNOWN,
    WorkerView,
    fleet,
    fmt_duration,
    histogram_quantile,
    parse_worker,
    render,
    scrape,
    status,
    verdict,
)
from screener.settings import Settings

PEAK = Settings().required_peak_rate  # 20M/day at 10x: 2,314.8/s


def worker_metrics(capacity: float, *, lag: int = 0, drain: float = 0.0, arrival: float = 100.0,
                   latencies: tuple[float, ...] = ()) -> PipelineMetrics:
    """A worker's metrics as the keep-up sampler would leave them."""
    m = PipelineMetrics()
    s = Settings()
    m.set_targets(s.daily_volume, s.peak_factor, s.required_peak_rate)
    m.set_offsets({("manifests", 0): (1000 + lag, 1000)})
    m.set_keepup(arrival_messages=arrival / 500, arrival_parcels=arrival, throughput=arrival,
                 capacity=capacity, headroom=capacity / s.required_peak_rate, drain_seconds=drain)
    for x in latencies:
        m.latency.observe(x)
    return m


def view(m: PipelineMetrics, url: str = "http://w1:9100/metrics") -> WorkerView:
    return parse_worker(url, generate_latest(m.registry).decode())


def test_keeps_up_verdict_names_capacity_multiple_and_daily_volume():
    answer = verdict([view(worker_metrics(41_000))])
    assert answer.exit_code == EXIT_KEEPS_UP
    assert answer.text.startswith("keeps up: capacity 41,000/s = 17.7x the 20M/day peak rate (2,315/s")


def test_capacity_of_workers_adds_up():
    views = [view(worker_metrics(2_000), "a"), view(worker_metrics(2_000), "b")]
    assert fleet(views).capacity == 4_000
    answer = verdict(views)
    assert answer.exit_code == EXIT_KEEPS_UP and "4,000/s = 1.7x" in answer.text


def test_falls_behind_when_capacity_is_below_the_peak_rate():
    answer = verdict([view(worker_metrics(1_000))])
    assert answer.exit_code == EXIT_BEHIND
    assert answer.text.startswith("falls behind at peak: capacity 1,000/s = 0.4x")


def test_tight_under_the_alert_line():
    answer = verdict([view(worker_metrics(3_000))])
    assert answer.exit_code == EXIT_BEHIND and answer.text.startswith("tight: capacity 3,000/s = 1.3x")


def test_behind_when_the_backlog_drains_too_slowly_or_never():
    slow = verdict([view(worker_metrics(41_000, lag=90_000, drain=1_800))])
    assert slow.exit_code == EXIT_BEHIND
    assert slow.text.startswith("behind: backlog of 90,000 messages needs 30m 00s to drain (limit 15m 00s)")
    never = verdict([view(worker_metrics(41_000, lag=5, drain=math.inf, arrival=50_000))])
    assert never.exit_code == EXIT_BEHIND and "never drains, arrival 50,000/s" in never.text


def test_keeps_up_mentions_a_backlog_that_drains_in_time():
    answer = verdict([view(worker_metrics(41_000, lag=1_200, drain=42))])
    assert answer.exit_code == EXIT_KEEPS_UP and answer.text.endswith("backlog of 1,200 messages drains in 42s")


def test_unknown_before_the_first_batch_and_when_nobody_answers():
    fresh = PipelineMetrics()  # capacity NaN until a batch is screened
    assert verdict([view(fresh)]).exit_code == EXIT_UNKNOWN
    assert "no batch screened yet" in verdict([view(fresh)]).text
    down = scrape(f"http://127.0.0.1:{free_port()}/metrics", timeout=1.0)
    assert down.error
    answer = verdict([down])
    assert answer.exit_code == EXIT_UNKNOWN and answer.text.startswith("unknown: no worker answered")
    # One worker down does not hide the others.
    assert verdict([down, view(worker_metrics(41_000))]).exit_code == EXIT_KEEPS_UP


def test_latency_quantiles_from_the_histogram_of_a_worker_without_recent_quantiles():
    lat = (0.02,) * 98 + (3.0,) * 2
    text = generate_latest(worker_metrics(41_000, latencies=lat).registry).decode()
    old_worker = "\n".join(line for line in text.splitlines() if "recent_seconds" not in line) + "\n"
    f = fleet([parse_worker("w1", old_worker)])
    assert 0.01 < f.p50 <= 0.025  # in the (10 ms, 25 ms] bucket
    assert 2.5 < f.p99 <= 5.0
    assert math.isnan(histogram_quantile(0.5, {}))
    # Interpolation as Prometheus does it: half of 10 observations in (0, 1] -> 0.5.
    assert histogram_quantile(0.5, {1.0: 10, math.inf: 10}) == pytest.approx(0.5)
    assert histogram_quantile(0.99, {1.0: 0, math.inf: 10}) == 1.0


def test_durations_read_like_words():
    assert [fmt_duration(x) for x in (0, 42, 750, 3 * 3600 + 300, math.inf)] == ["0s", "42s", "12m 30s", "3h 05m",
                                                                                  "never"]


def test_latency_is_recent_not_since_start():
    # A 10 s pause long ago must not hold p99 up: the sampler's window only sees the last minutes.
    clock = [0.0]
    m = worker_metrics(41_000, latencies=(10.0,) * 50)
    sampler = KeepUpSampler(m, required_peak=PEAK, full_batch_messages=64, clock=lambda: clock[0])
    sampler.update(None)
    for t in range(1, 80):  # 400 s of samples every 5 s; 20 ms latencies from now on
        clock[0] = t * 5.0
        for _ in range(10):
            m.latency.observe(0.02)
        sampler.update(None)
    f = fleet([view(m)])
    assert 0.01 < f.p99 <= 0.025
    assert math.isnan(histogram_quantile(0.5, {})) is True


def test_status_command_reads_a_served_metrics_page():
    m = worker_metrics(41_000, latencies=(0.02,) * 10)
    m.set_recent_latency({0.5: 0.018, 0.99: 0.0248})
    port = free_port()
    m.serve(port, addr="127.0.0.1")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(status, ["--metrics-url", f"http://127.0.0.1:{port}/metrics"])
    assert result.exit_code == EXIT_KEEPS_UP, result.output
    assert "keeps up: capacity 41,000/s = 17.7x the 20M/day peak rate" in " ".join(result.output.split())
    # p50 of ten 20 ms observations, interpolated inside the (10 ms, 25 ms] bucket.
    assert "18 ms" in result.output


def test_broker_unreachable_is_the_verdict_whatever_the_figures_say():
    m = worker_metrics(41_000)  # would "keep up, lag 0" on its own
    m.set_broker("127.0.0.1:9092", up=False, last_contact=1_000.0, down_since=1_060.0)
    answer = verdict([view(m)], now=1_105.0)
    assert answer.exit_code == EXIT_BROKER_DOWN
    assert answer.text.startswith("broker unreachable since 00:17:40 UTC (45s ago): 127.0.0.1:9092")
    assert "seen by 1 of 1 worker" in answer.text
    m.set_broker("127.0.0.1:9092", up=True, last_contact=1_110.0, down_since=None)
    assert verdict([view(m)], now=1_111.0).exit_code == EXIT_KEEPS_UP


def test_status_table_fits_80_columns_without_cutting_numbers():
    m = worker_metrics(16_999.0, lag=123_456, drain=42.0)
    m.set_broker("kafka-1:9092", up=True, last_contact=1.0, down_since=None)
    views = [view(m, f"http://worker-{i}.example:9100/metrics") for i in range(3)]
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(render(views, verdict(views)))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text and "..." not in text
    assert text.count("16,999/s") == 3 and "50,997/s" in text and "123,456" in text
