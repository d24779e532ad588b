"""`screener demo`: embedded broker, a worker process, a live publisher with some bad input mixed in,
inspectors sending back outcomes, and a live view of what comes out, ending with a summary once every
parcel is accounted for.

The demo runs rules/default-stateful.toml: the default targeting plus split shipments, yearly quota, new
consignees and repeat offenders (R2, R3, R12, R11). The inspectors inspect every flagged parcel and publish
its ground truth (the generator's label) to `inspections`, as `screener inspect` would; the worker joins each
outcome to the parcel it selected, and later parcels of consignees found illicit score higher (R11).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from screener.generator import BAD_MESSAGES, PARCEL_DEFECTS, GeneratorConfig, ManifestGenerator, break_parcel
from screener.kafka.broker import EmbeddedBroker, free_port
from screener.kafka.feedback import INSPECTIONS
from screener.kafka.publisher import Publisher
from screener.kafka.tail import (
    Filter,
    TailError,
    highwaters,
    partitions_of,
    read_range,
    read_topic,
    start_consumer,
)
from screener.settings import Settings
from screener.state.risk import JOINED_TOPIC

DEMO_PACK = "rules/default-stateful.toml"
BAD_PARCEL_EVERY = 40      # one damaged parcel in every 40th manifest
BAD_MESSAGE_EVERY = 50     # one non-manifest message after every 50th manifest
TIMEOUT_S = 300.0
RATE_WINDOW_S = 5.0
MIN_RATE_SPAN_S = 1.0  # below this, a rate says more about timer resolution than about the screener
MIN_THROUGHPUT_SPAN_S = 5.0


@dataclass
class Tally:
    """What the demo has published and what came back."""

    published_parcels: int = 0
    expected_valid: int = 0
    expected_dead: int = 0
    publishing_done: bool = False
    decided: set = field(default_factory=set)
    decisions: int = 0
    lanes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    dead: Counter = field(default_factory=Counter)
    flagged_ids: set = field(default_factory=set)
    labels: dict = field(default_factory=dict)      # parcel_id -> the generator's label (ground truth)
    inspected: set = field(default_factory=set)     # parcels whose outcome the inspectors published
    outcome_dead: Counter = field(default_factory=Counter)   # dead letters of outcomes, by reason
    joined: int = 0                                  # records on outcomes-joined at the end
    started_at: float = 0.0  # first publish
    first_at: float = 0.0  # first decision read
    last_at: float = 0.0  # last decision read
    # (time, parcels decided) at every refresh of the live view, the last RATE_WINDOW_S seconds of them.
    samples: deque = field(default_factory=deque)

    def done(self) -> bool:
        """Every valid parcel decided and every bad item dead-lettered."""
        return (self.publishing_done and len(self.decided) >= self.expected_valid
                and sum(self.dead.values()) >= self.expected_dead)

    def rate(self, now: float) -> float:
        """Decided parcels per second over the last RATE_WINDOW_S seconds (since the first publish, before that).

        Sampled on the view's clock, not on arrivals: decisions arrive in bursts of a whole batch,
        and a rate between two arrivals a millisecond apart is meaningless.
        """
        self.samples.append((now, len(self.decided)))
        while len(self.samples) > 1 and now - self.samples[1][0] >= RATE_WINDOW_S:
            self.samples.popleft()
        t0, n0 = self.samples[0]
        if now - self.started_at < RATE_WINDOW_S:
            t0, n0 = self.started_at, 0
        return (len(self.decided) - n0) / (now - t0) if now - t0 >= MIN_RATE_SPAN_S else 0.0

    def throughput(self) -> float:
        """Distinct parcels decided per second from the first to the last decision; NaN if that took under
        MIN_THROUGHPUT_SPAN_S (a few batches decided within milliseconds say nothing about a rate)."""
        span = self.last_at - self.first_at
        return len(self.decided) / span if span >= MIN_THROUGHPUT_SPAN_S else math.nan

    def end_to_end(self) -> float:
        """Distinct parcels decided per second from the first publish (worker start-up included)."""
        span = self.last_at - self.started_at
        return len(self.decided) / span if span > 0 else math.nan


def _view(t: Tally, target: int | None, started: float) -> Group:
    head = Table.grid(padding=(0, 3))
    now = time.monotonic()
    head.add_row("[bold]published[/]", f"{t.published_parcels:,} parcels",
                 "[bold]decided[/]", f"{len(t.decided):,}" + (f" / {target:,}" if target else ""),
                 "[bold]rate[/]", f"{t.rate(now):,.0f} parcels/s", "[bold]elapsed[/]", f"{now - started:.0f}s")
    lanes = Table(title="lanes", show_edge=False)
    lanes.add_column("lane")
    lanes.add_column("parcels", justify="right")
    lanes.add_column("share", justify="right")
    total = max(sum(t.lanes.values()), 1)
    for lane, style in (("green", "green"), ("yellow", "yellow"), ("red", "red")):
        lanes.add_row(f"[{style}]{lane}[/]", f"{t.lanes[lane]:,}", f"{100 * t.lanes[lane] / total:.2f}%")
    reasons = Table(title="top reasons", show_edge=False)
    reasons.add_column("rule")
    reasons.add_column("hits", justify="right")
    for rule, n in t.reasons.most_common(8):
        reasons.add_row(rule, f"{n:,}")
    dead = Table(title=f"dead-letter ({sum(t.dead.values())})", show_edge=False)
    dead.add_column("reason")
    dead.add_column("count", justify="right")
    for reason, n in t.dead.most_common(8):
        dead.add_row(reason, str(n))
    # Columns puts a table on the next line when the terminal is too narrow, instead of cutting numbers.
    return Group(Panel(head, title="parcel screener demo"), Columns([lanes, reasons, dead], padding=(0, 4)))


async def _publish(settings: Settings, tally: Tally, total: int | None, per_manifest: int, rate: float,
                   seed: int) -> None:
    gen = ManifestGenerator(GeneratorConfig(manifests=0, parcels_per_manifest=per_manifest, seed=seed))
    defects = itertools.cycle(PARCEL_DEFECTS)
    bad_messages = itertools.cycle(BAD_MESSAGES.values())

    def lines():
        for m in itertools.count():
            if total is not None and tally.published_parcels >= total:
                return
            first_label = len(gen.labels)
            manifest = gen.manifest(m)
            tally.labels.update((lab["parcel_id"], lab) for lab in gen.labels[first_label:])
            n = len(manifest["parcels"])
            if m % BAD_PARCEL_EVERY == BAD_PARCEL_EVERY - 1:
                break_parcel(manifest["parcels"][m % n], next(defects))
                tally.expected_dead += 1
                n -= 1
            tally.expected_valid += n
            tally.published_parcels += len(manifest["parcels"])
            yield orjson.dumps(manifest)
            if m % BAD_MESSAGE_EVERY == BAD_MESSAGE_EVERY - 1:
                tally.expected_dead += 1
                yield next(bad_messages)[0]

    async with Publisher(settings.bootstrap_servers, settings.manifests_topic, rate) as pub:
        for value in lines():
            await pub.send(value)
            # The generator is CPU-bound: yield so the live view and the readers keep running.
            await asyncio.sleep(0)
    tally.publishing_done = True


async def _consume(settings: Settings, tally: Tally) -> None:
    async def decisions():
        async for _msg, value in read_topic(settings.bootstrap_servers, settings.decisions_topic):
            if not value:
                continue
            for d in value.get("decisions", []):
                tally.decided.add(d["parcel_id"])
                tally.decisions += 1
                tally.lanes[d["lane"]] += 1
                for r in d.get("reasons", []):
                    tally.reasons[r["rule_id"]] += 1
            tally.last_at = time.monotonic()
            tally.first_at = tally.first_at or tally.last_at

    async def dead():
        inspections = settings.topic(INSPECTIONS)
        async for _msg, value in read_topic(settings.bootstrap_servers, settings.dead_letter_topic):
            value = value or {}
            into = tally.outcome_dead if (value.get("source") or {}).get("topic") == inspections else tally.dead
            into[value.get("reason", "?")] += 1

    await asyncio.gather(decisions(), dead())


async def _inspect(settings: Settings, tally: Tally) -> None:
    """The inspectors: each flagged parcel is inspected once and its ground truth published as an outcome."""
    async with Publisher(settings.bootstrap_servers, settings.topic(INSPECTIONS)) as pub:
        async for _msg, value in read_topic(settings.bootstrap_servers, settings.flagged_topic):
            pid = (value or {}).get("parcel_id")
            label = tally.labels.get(pid)
            if label is None or pid in tally.inspected:
                continue
            tally.inspected.add(pid)
            outcome = {"parcel_id": pid, "inspected_at": value["parcel"]["event_time"], "lane": value["lane"],
                       "illicit": label["illicit"], "revenue": label["revenue"],
                       "finding_code": label["finding_code"], "note": "demo inspector (generator ground truth)"}
            await pub.send(orjson.dumps(outcome), key=pid.encode())


async def _count_joined(settings: Settings, tally: Tally, timeout_s: float = 15.0) -> None:
    # Outcomes of the last flagged parcels may still be on their way: wait a little for the join.
    consumer = await start_consumer(settings.bootstrap_servers)
    try:
        tps = await partitions_of(consumer, settings.topic(JOINED_TOPIC), settings.bootstrap_servers)
    except TailError:
        return   # the pack reads no outcomes: the worker made no such topic
    finally:
        await consumer.stop()
    deadline = time.monotonic() + timeout_s
    while True:
        tally.joined = sum((await highwaters(settings.bootstrap_servers, tps)).values())
        if tally.joined + sum(tally.outcome_dead.values()) >= len(tally.inspected) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.5)


async def _read_flagged(settings: Settings, tally: Tally) -> None:
    # Read once every decision is in: the worker produces a batch's flagged records before its
    # decisions are acknowledged, so the topic's high-water marks now cover every flag, and recall
    # is the same on identical runs (a live reader could still be behind when the summary is made).
    consumer = await start_consumer(settings.bootstrap_servers)
    try:
        tps = await partitions_of(consumer, settings.flagged_topic, settings.bootstrap_servers)
        end = await highwaters(settings.bootstrap_servers, tps)
        async for p in read_range(consumer, "flagged", {tp: 0 for tp in tps}, end, Filter()):
            tally.flagged_ids.add(p.record.get("parcel_id"))
    finally:
        await consumer.stop()


def _summary(console: Console, t: Tally, labels: dict[str, str], elapsed: float) -> None:
    table = Table(title="demo summary", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("parcels published", f"{t.published_parcels:,}")
    table.add_row("valid parcels decided (distinct)", f"{len(t.decided):,} of {t.expected_valid:,}")
    table.add_row("decision records (duplicates are replays)", f"{t.decisions:,}")
    table.add_row("dead-letter entries", f"{sum(t.dead.values()):,} of {t.expected_dead:,} expected")
    for lane in ("green", "yellow", "red"):
        table.add_row(f"  {lane}", f"{t.lanes[lane]:,} ({100 * t.lanes[lane] / max(t.decisions, 1):.2f}%)")
    rate = t.throughput()
    table.add_row("throughput (first to last decision)",
                  f"run too short (under {MIN_THROUGHPUT_SPAN_S:g}s)" if math.isnan(rate) else f"{rate:,.0f} parcels/s")
    table.add_row("end to end (first publish to last decision)", f"{t.end_to_end():,.0f} parcels/s")
    illicit = {pid for pid, code in labels.items() if code != "NONE" and pid in t.decided}
    caught = illicit & t.flagged_ids
    table.add_row("planted fraud flagged (recall)", f"{len(caught):,} of {len(illicit):,}"
                  f" ({100 * len(caught) / max(len(illicit), 1):.1f}%)")
    table.add_row("flags that were planted fraud (precision)",
                  f"{100 * len(caught) / max(len(t.flagged_ids), 1):.1f}%")
    dead_outcomes = ", ".join(f"{n:,} {r}" for r, n in t.outcome_dead.most_common()) or "none"
    table.add_row("inspection outcomes sent (flagged parcels)", f"{len(t.inspected):,}")
    table.add_row("  joined to their parcels / dead-lettered", f"{t.joined:,} / {dead_outcomes}")
    stateful = {r: n for r, n in t.reasons.items() if r.split("_")[0] in ("R2", "R3", "R11", "R12", "R15")}
    table.add_row("stateful rule hits", ", ".join(f"{r} {n:,}" for r, n in sorted(stateful.items())) or "none")
    table.add_row("wall time", f"{elapsed:.1f}s")
    console.print(table)
    if t.reasons:
        console.print("top reasons: " + ", ".join(f"{r} {n:,}" for r, n in t.reasons.most_common(6)))


def run_demo(parcels: int, parcels_per_manifest: int, rate: float, forever: bool, partitions: int,
             metrics_port: int, pack: str | None, seed: int) -> int:
    """Run the whole demo; returns the process exit code."""
    console = Console()
    workdir = Path(".demo")
    workdir.mkdir(exist_ok=True)
    broker = EmbeddedBroker.start(log_path=str(workdir / "broker.log"))
    settings = Settings.load({"broker": broker.url, "partitions": partitions, "data_dir": str(workdir / "data")})
    if metrics_port and not _port_free(metrics_port):
        metrics_port = free_port()
    env = dict(os.environ, SCREENER_BROKER=broker.url, SCREENER_PARTITIONS=str(partitions),
               SCREENER_DATA_DIR=str(workdir / "data"), SCREENER_METRICS_PORT=str(metrics_port),
               # One process: the live view and `status` read one metrics endpoint.
               SCREENER_PROCESSES="1")
    env["SCREENER_PACK"] = pack or DEMO_PACK
    log = open(workdir / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "screener.cli", "worker"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    metrics_note = (f"metrics http://127.0.0.1:{metrics_port}/metrics (`screener status --metrics-url "
                    f"http://127.0.0.1:{metrics_port}/metrics` in another terminal)" if metrics_port else "metrics off")
    console.print(f"[dim]broker {broker.url} | worker pid {worker.pid} (log .demo/worker.log) | {metrics_note}[/]")
    tally = Tally()
    target = None if forever else parcels
    started = time.monotonic()
    code = 0

    async def main() -> int:
        tally.started_at = time.monotonic()
        pub = asyncio.create_task(_publish(settings, tally, target, parcels_per_manifest, rate, seed))
        con = asyncio.create_task(_consume(settings, tally))
        inspectors = asyncio.create_task(_inspect(settings, tally))
        with Live(_view(tally, target, started), console=console, refresh_per_second=4) as live:
            while True:
                await asyncio.sleep(0.25)
                live.update(_view(tally, target, started))
                if worker.poll() is not None:
                    console.print(f"[red]worker exited with {worker.returncode}; see .demo/worker.log[/]")
                    return 1
                if pub.done() and pub.exception():
                    raise pub.exception()
                if not forever and tally.done():
                    await _read_flagged(settings, tally)
                    await _count_joined(settings, tally)
                    break
                if time.monotonic() - started > TIMEOUT_S and not forever:
                    console.print(f"[red]not every parcel was accounted for within {TIMEOUT_S:.0f}s[/]")
                    return 1
        con.cancel()
        inspectors.cancel()
        return 0

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = 0 if forever else 130
        asyncio.run(_read_flagged(settings, tally))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        broker.stop()
    labels = {pid: lab["finding_code"] for pid, lab in tally.labels.items()}
    _summary(console, tally, labels, time.monotonic() - started)
    return code


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False
