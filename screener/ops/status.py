"""`screener status`: read the workers' /metrics and say in one table whether the screener keeps up.

The pure part (`parse_worker`, `fleet`, `verdict`) turns exposition text into figures and words and
is unit-tested; the command only fetches the pages and prints. Every figure is recent: rates over
the sampler's last minute, latency quantiles over its last five minutes
(`screener_publish_to_decision_recent_seconds`), never since the worker started.
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import click
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from screener.ops.metrics import histogram_quantile

DEFAULT_METRICS_URL = "http://127.0.0.1:9100/metrics"
# Same lines as deploy/prometheus/rules/screener-alerts.yml.
HEADROOM_ALERT = 1.5
DRAIN_ALERT_S = 900.0
LATENCY = "screener_publish_to_decision_seconds"

EXIT_KEEPS_UP, EXIT_BEHIND, EXIT_UNKNOWN, EXIT_BROKER_DOWN = 0, 1, 2, 3


@dataclass
class WorkerView:
    """One worker's keep-up figures, from one scrape of its /metrics."""

    url: str
    error: str | None = None
    throughput: float = math.nan
    arrival: float = math.nan
    capacity: float = math.nan
    required_peak: float = math.nan
    daily_volume: float = math.nan
    peak_factor: float = math.nan
    lag: float = 0.0
    lag_parcels: float = math.nan
    drain: float = math.nan
    parcels: float = 0.0
    p50: float = math.nan
    p99: float = math.nan
    # Broker reachability as the worker's probe sees it: bootstrap -> (up 1/0/NaN, down since, unix s).
    brokers: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Cumulative latency histogram since start: only the fallback for workers without recent quantiles.
    latency_buckets: dict[float, float] = field(default_factory=dict)


@dataclass
class Verdict:
    """The answer in words, and the exit code that goes with it."""

    text: str
    exit_code: int


GAUGES = {
    "screener_throughput_parcels_per_second": "throughput",
    "screener_arrival_rate_parcels_per_second": "arrival",
    "screener_capacity_parcels_per_second": "capacity",
    "screener_required_peak_parcels_per_second": "required_peak",
    "screener_daily_volume_parcels": "daily_volume",
    "screener_peak_factor": "peak_factor",
    "screener_drain_seconds": "drain",
    "screener_consumer_lag_parcels": "lag_parcels",
}
RECENT_LATENCY = "screener_publish_to_decision_recent_seconds"


def parse_worker(url: str, text: str) -> WorkerView:
    """Keep-up figures of one worker from its exposition text."""
    view = WorkerView(url)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in GAUGES:
                setattr(view, GAUGES[s.name], float(s.value))
            elif s.name == "screener_consumer_lag":
                view.lag += s.value
            elif s.name == "screener_parcels_total":
                view.parcels += s.value
            elif s.name == RECENT_LATENCY and s.labels.get("quantile") in ("0.5", "0.99"):
                setattr(view, "p50" if s.labels["quantile"] == "0.5" else "p99", float(s.value))
            elif s.name == LATENCY + "_bucket":
                view.latency_buckets[float(s.labels["le"])] = s.value
            elif s.name in ("screener_broker_up", "screener_broker_down_since_timestamp_seconds"):
                up, since = view.brokers.get(s.labels["bootstrap"], (math.nan, 0.0))
                view.brokers[s.labels["bootstrap"]] = ((float(s.value), since) if s.name == "screener_broker_up"
                                                       else (up, float(s.value)))
    if not any(name == RECENT_LATENCY for name in _names(text)):
        view.p50 = histogram_quantile(0.5, view.latency_buckets)
        view.p99 = histogram_quantile(0.99, view.latency_buckets)
    return view


def _names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


@dataclass
class Fleet:
    """All answering workers together: rates add up, drain time is the slowest worker's."""

    workers: int
    throughput: float
    arrival: float
    capacity: float
    required_peak: float
    daily_volume: float
    peak_factor: float
    lag: float
    lag_parcels: float
    drain: float
    p50: float
    p99: float

    @property
    def headroom(self) -> float:
        """Capacity over the required peak rate."""
        return self.capacity / self.required_peak if self.required_peak > 0 else math.nan


def _sum_known(values: list[float]) -> float:
    known = [v for v in values if not math.isnan(v)]
    return sum(known) if known else math.nan


def _max_known(values: list[float]) -> float:
    known = [v for v in values if not math.isnan(v)]
    return max(known) if known else math.nan


def fleet(views: list[WorkerView]) -> Fleet:
    """Combine the workers that answered; latency quantiles are the worst worker's."""
    ok = [v for v in views if v.error is None]
    return Fleet(
        workers=len(ok),
        throughput=_sum_known([v.throughput for v in ok]),
        arrival=_sum_known([v.arrival for v in ok]),
        capacity=_sum_known([v.capacity for v in ok]),
        required_peak=_max_known([v.required_peak for v in ok]),
        daily_volume=_max_known([v.daily_volume for v in ok]),
        peak_factor=_max_known([v.peak_factor for v in ok]),
        lag=sum(v.lag for v in ok),
        lag_parcels=_sum_known([v.lag_parcels for v in ok]),
        drain=_max_known([v.drain for v in ok]),
        p50=_max_known([v.p50 for v in ok]),
        p99=_max_known([v.p99 for v in ok]),
    )


def broker_outage(views: list[WorkerView], now: float) -> str | None:
    """'broker unreachable since ...' if any answering worker cannot reach its broker, else None."""
    down: dict[str, float] = {}
    workers = 0
    for v in views:
        if v.error is None:
            lost = {b: since for b, (up, since) in v.brokers.items() if up == 0}
            workers += bool(lost)
            for b, since in lost.items():
                down[b] = min(down.get(b, since), since) if since else down.get(b, 0.0)
    if not down:
        return None
    since = min((t for t in down.values() if t), default=0.0)
    when = (f"since {time.strftime('%H:%M:%S', time.gmtime(since))} UTC ({fmt_duration(now - since)} ago)"
            if since else "")
    answering = sum(v.error is None for v in views)
    return (f"broker unreachable {when}: {', '.join(sorted(down))} (seen by {workers} of {answering} "
            f"worker{'s' if answering != 1 else ''}); nothing is screened until it is back").replace("  ", " ")


def verdict(views: list[WorkerView], now: float | None = None) -> Verdict:
    """Broker down, keeps up, tight, behind or unknown, with the figures that decide it."""
    if not views or all(v.error for v in views):
        failed = "; ".join(f"{v.url}: {v.error}" for v in views) or "no metrics URL given"
        return Verdict(f"unknown: no worker answered ({failed})", EXIT_UNKNOWN)
    outage = broker_outage(views, time.time() if now is None else now)
    if outage:
        return Verdict(outage, EXIT_BROKER_DOWN)
    f = fleet(views)
    if math.isnan(f.capacity):
        return Verdict("unknown: no batch screened yet, so capacity is not measured "
                       f"(lag {fmt_count(f.lag)} messages)", EXIT_UNKNOWN)
    against = (f"{f.headroom:.1f}x the {fmt_volume(f.daily_volume)}/day peak rate "
               f"({fmt_rate(f.required_peak)} at peak factor {f.peak_factor:g})")
    capacity = f"capacity {fmt_rate(f.capacity)} = {against}"
    parcels = "" if math.isnan(f.lag_parcels) else f" (~{fmt_count(f.lag_parcels)} parcels)"
    backlog = f"backlog of {fmt_count(f.lag)} messages{parcels}"
    if f.headroom < 1.0:
        return Verdict(f"falls behind at peak: {capacity}", EXIT_BEHIND)
    if math.isinf(f.drain) and f.lag > 0:
        return Verdict(f"behind: {backlog} never drains, arrival {fmt_rate(f.arrival)} >= what the workers "
                       f"screen; {capacity}", EXIT_BEHIND)
    if f.drain > DRAIN_ALERT_S:
        return Verdict(f"behind: {backlog} needs {fmt_duration(f.drain)} to drain "
                       f"(limit {fmt_duration(DRAIN_ALERT_S)}); {capacity}", EXIT_BEHIND)
    if f.headroom < HEADROOM_ALERT:
        return Verdict(f"tight: {capacity}, under the {HEADROOM_ALERT}x alert line", EXIT_BEHIND)
    tail = f"; {backlog} drains in {fmt_duration(f.drain)}" if f.lag > 0 and f.drain > 0 else ""
    return Verdict(f"keeps up: {capacity}{tail}", EXIT_KEEPS_UP)


def fmt_rate(v: float) -> str:
    """Parcels per second with thousands separators."""
    return "-" if math.isnan(v) else f"{v:,.0f}/s"


def fmt_count(v: float) -> str:
    """A whole count with thousands separators."""
    return "-" if math.isnan(v) else f"{v:,.0f}"


def fmt_volume(v: float) -> str:
    """20000000 -> 20M, 1500000 -> 1.5M, 7000000000 -> 7B."""
    if math.isnan(v):
        return "?"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:g}"


def fmt_duration(s: float) -> str:
    """Seconds as 0s, 42s, 12m 30s, 3h 05m; +Inf as 'never'."""
    if math.isnan(s):
        return "-"
    if math.isinf(s):
        return "never"
    s = round(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def fmt_latency(s: float) -> str:
    """Seconds as milliseconds, or seconds above 10 s."""
    if math.isnan(s):
        return "-"
    return f"{s * 1000:,.0f} ms" if s < 10 else f"{s:,.1f} s"


ROWS = ("throughput", "arrival", "capacity", "headroom", "lag (messages)", "lag (parcels)", "drain time",
        "p50 latency (5 min)", "p99 latency (5 min)", "broker")


def _column(f: Fleet, v: WorkerView | None) -> list[str]:
    broker = "-"
    if v is not None and v.brokers:
        broker = ", ".join("up" if up == 1 else "DOWN" if up == 0 else "?" for up, _ in v.brokers.values())
    return [fmt_rate(f.throughput), fmt_rate(f.arrival), fmt_rate(f.capacity), _fmt_ratio(f.headroom),
            fmt_count(f.lag), fmt_count(f.lag_parcels), fmt_duration(f.drain), fmt_latency(f.p50),
            fmt_latency(f.p99), broker]


def render(views: list[WorkerView], answer: Verdict) -> Group:
    """One figure per row and one column per worker (narrow enough for 80 columns), then the verdict.

    The verdict is a paragraph of its own, not a caption: a caption wraps at the table's width.
    """
    table = Table(title="screener status")
    table.add_column("", no_wrap=True)
    columns: list[list[str]] = []
    for v in views:
        name = urllib.parse.urlsplit(v.url).netloc or v.url
        table.add_column(name, justify="right", overflow="fold")
        columns.append([f"[red]down: {v.error}[/red]"] + [""] * (len(ROWS) - 1) if v.error else _column(fleet([v]), v))
    f = fleet(views)
    if len(views) > 1 and f.workers:
        table.add_column("all workers", justify="right", style="bold", overflow="fold")
        columns.append(_column(f, None))
    for i, label in enumerate(ROWS):
        table.add_row(label, *[c[i] for c in columns])
    return Group(table, Text(answer.text, style="bold green" if answer.exit_code == EXIT_KEEPS_UP else "bold red"))


def _fmt_ratio(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.1f}x"


def scrape(url: str, timeout: float = 3.0) -> WorkerView:
    """Fetch and parse one worker's /metrics; an unreachable worker becomes a view with an error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return parse_worker(url, resp.read().decode("utf-8"))
    except urllib.error.URLError as exc:
        return WorkerView(url, error=str(exc.reason))
    except Exception as exc:  # reported in the table, not raised: other workers may still answer
        return WorkerView(url, error=f"{type(exc).__name__}: {exc}")


@click.command()
@click.option("--metrics-url", "urls", multiple=True, default=[DEFAULT_METRICS_URL], show_default=True,
              help="A worker's /metrics URL; repeat for every worker.")
def status(urls: tuple[str, ...]) -> None:
    """Say whether the screener keeps up: throughput, lag, drain time, latency, verdict.

    Exit code 0 keeps up, 1 behind or tight, 2 unknown (no worker answered, nothing screened yet),
    3 broker unreachable. Rates cover the last minute, latency quantiles the last five minutes.
    """
    views = [scrape(u) for u in urls]
    answer = verdict(views)
    Console().print(render(views, answer))
    raise SystemExit(answer.exit_code)
