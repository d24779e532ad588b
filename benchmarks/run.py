"""Runs every benchmark in one go on one embedded broker and writes the results.

    python -m benchmarks.run --full    # RESULTS.md + results.json (20M-parcel day included; 30-60 min)
    python -m benchmarks.run --quick   # results-quick.json in under 3 minutes
    python -m benchmarks.run --smoke   # tiny, seconds; for `make test` (figures meaningless)

Measurements run one after another (in --smoke concurrently), so each has the machine to itself
apart from the broker and the harness; ratios are taken between figures of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from screener.kafka.broker import EmbeddedBroker

from . import ceiling, endtoend, fullday, growth, keepup, longpoll
from .kafka import create_topics, delete_topics, publish
from .measure import drain
from .procs import Proc, load_average, machine, source_state
from .workload import make_pool

HERE = Path(__file__).resolve().parent
PEAK_RATE = 20_000_000 * 10 / 86_400  # 2,315 parcels/s: 20M a day at 10x the average rate
TARGETS = {"ratio_to_ceiling": 0.5, "speedup_vs_baseline": 20.0, "day_20m_seconds": 300.0, "keepup_p99_ms": 250.0}


@dataclass
class Sizes:
    """How much of everything one mode measures."""

    parcels_500: int
    parcels_100: int
    parcels_1: int
    baseline_parcels: int
    keepup_seconds: float
    keepup_rate: float
    keepup_manifest: int
    entities: tuple[int, ...]
    entity_batches: int
    day_parcels: int | None
    profile: bool
    concurrent: bool = False
    partitions: int = 4
    pool_parcels: int = 20_000  # generated once per message size, then re-published with new ids


MODES = {
    "smoke": Sizes(2_000, 1_000, 300, 300, 3, 500, 100, (0, 20_000), 2, 2_000, False, concurrent=True),
    "quick": Sizes(100_000, 50_000, 10_000, 10_000, 30, PEAK_RATE, 100, (0, 100_000, 1_000_000), 5, None, False),
    "full": Sizes(1_000_000, 500_000, 100_000, 50_000, 180, PEAK_RATE, 100, (0, 1_000_000, 10_000_000), 10,
                  20_000_000, True, pool_parcels=50_000),
}
OUTPUT_JSON = {"smoke": None, "quick": HERE / "results-quick.json", "full": HERE / "results.json"}


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def measure_all(mode: str, sizes: Sizes, workdir: Path, json_path: Path | None) -> dict:
    """Every measurement of `mode` on one broker; the results dict."""
    started = time.time()
    results: dict = {"mode": mode, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                     "command": "python -m benchmarks.run --" + mode, "machine": machine(), "sizes": asdict(sizes),
                     "source": source_state()}
    broker = EmbeddedBroker.start(log_path=str(workdir / "broker.log"))
    bs, url, bpid, parts = broker.bootstrap, broker.url, broker.process.pid, sizes.partitions
    try:
        log(f"{mode}: broker {url}, load {load_average()}; generating pools")
        pools = {k: make_pool(k, pool_parcels, seed) for k, pool_parcels, seed in
                 ((500, min(sizes.pool_parcels, sizes.parcels_500), 71),
                  (100, min(sizes.pool_parcels // 2, sizes.parcels_100), 72), (1, min(5_000, sizes.parcels_1), 73))}
        wanted = {500: sizes.parcels_500, 100: sizes.parcels_100, 1: max(sizes.parcels_1, sizes.baseline_parcels)}
        prefixes = {500: "e500-", 100: "e100-", 1: "e1-"}
        published = {}
        for k, pool in pools.items():
            await create_topics(bs, endtoend.topics(prefixes[k]) + [f"ceiling{k}-out"], parts)
            sent = await publish(bs, prefixes[k] + "manifests", pool.stream(pool.messages_for(wanted[k])), parts, k)
            published[k] = sent.parcels
            results.setdefault("publish", {})[str(k)] = {
                "parcels": sent.parcels, "messages": sent.messages,
                "parcels_per_s": round(sent.parcels / sent.seconds, 1)}
            log(f"published {sent.parcels:,} parcels as messages of {k} ({sent.parcels / sent.seconds:,.0f} parcels/s)")
        await create_topics(bs, ["baseline-decisions"], parts)

        results["ceiling"] = {}
        for k in (500, 100, 1):
            seen = await ceiling.run(bs, prefixes[k] + "manifests", f"ceiling{k}-out", parts, published[k])
            results["ceiling"][str(k)] = {"parcels": seen.parcels, "parcels_per_s": round(seen.rate(), 1),
                                          "span_s": round(seen.span_s(), 3)}
            log(f"ceiling, messages of {k}: {seen.rate():,.0f} parcels/s")

        async def run_baseline() -> dict:
            proc = Proc("baseline", [sys.executable, "-m", "benchmarks.baseline", "--broker", url,
                                     "--in-topic", "e1-manifests", "--out-topic", "baseline-decisions",
                                     "--app-id", f"baseline-{int(time.time())}", "--partitions", str(parts),
                                     "--data-dir", str(workdir / "baseline-data")],
                        dict(__import__("os").environ), workdir / "baseline.log")
            res = await drain([proc], bs, "baseline-decisions", parts, sizes.baseline_parcels,
                              timeout=120 + sizes.baseline_parcels / 200, extra_pids={"broker": bpid})
            log(f"baseline: {res['parcels_per_s']:,.0f} parcels/s")
            return res

        async def run_screener(k: int) -> dict:
            res = await endtoend.run(bs, url, workdir, prefixes[k], parts, published[k],
                                     timeout=120 + published[k] / 1000, broker_pid=bpid)
            log(f"screener, messages of {k}: {res['parcels_per_s']:,.0f} parcels/s (start-up {res.get('startup_s')} s)")
            return res

        async def run_keepup() -> dict:
            res = await keepup.run(bs, url, workdir, pools[sizes.keepup_manifest], sizes.keepup_rate,
                                   sizes.keepup_seconds, parts, broker_pid=bpid)
            log(f"keep-up at {sizes.keepup_rate:,.0f} parcels/s: p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, "
                f"worker {res['worker_cpu_cores']} cores")
            return res

        async def run_day() -> dict:
            log(f"day: {sizes.day_parcels:,} parcels in manifests of 500")
            day_pool = pools[500] if mode != "full" else make_pool(500, 50_000, 74)
            counts = (1,) if sizes.concurrent else (1, 2)
            return await fullday.run(bs, url, workdir, day_pool, sizes.day_parcels, parts, worker_counts=counts,
                                     broker_pid=bpid, log=log)

        jobs = {"baseline": run_baseline, "screener_1": lambda: run_screener(1),
                "screener_100": lambda: run_screener(100), "screener_500": lambda: run_screener(500),
                "keepup": run_keepup}
        if sizes.concurrent and sizes.day_parcels:  # smoke: exercise the day's code path alongside the rest
            jobs["day"] = run_day
        if sizes.concurrent:
            done = await asyncio.gather(*(job() for job in jobs.values()))
            results.update(zip(jobs, done))
        else:
            for name, job in jobs.items():
                results[name] = await job()
        for k in (1, 100):  # their backlogs are no longer needed: give the broker's memory back
            await delete_topics(bs, endtoend.topics(prefixes[k]) + [f"ceiling{k}-out"])

        if sizes.profile:
            prof = HERE / "profiles"
            rate = results["screener_500"]["parcels_per_s"] or 10_000
            res = await endtoend.profile(bs, url, workdir, prefixes[500], parts,
                                         min(published[500], int(rate * 16)), prof / "screener-500.speedscope.json",
                                         timeout=300, seconds=10)
            results["profile_screener_500"] = res
            log(f"profiled the screener (manifests of 500): {res.get('profile')}")
        await delete_topics(bs, endtoend.topics(prefixes[500]) + ["ceiling500-out", "baseline-decisions"])

        results["longpoll"] = await longpoll.run(bs, messages=8 if sizes.concurrent else 30)
        log("broker long-poll: " + ", ".join(f"wait {x['fetch_max_wait_ms']} ms -> p50 {x['p50_ms']} ms"
                                             for x in results["longpoll"]))

        log("growth: rules (benchmarks/rules_kernel.py) and entities")
        results["kernels"] = (growth.rules(quick=mode != "full") if not sizes.concurrent else
                              {"available": False, "why": "not run in --smoke (it compiles packs of 100 rules)"})
        results["entities"] = growth.entities_subprocess(list(sizes.entities), sizes.entity_batches)
        for p in results["entities"]["points"]:
            log(f"  {p['distinct_consignees']:,} known consignees: {p['parcels_per_s']:,.0f} parcels/s, "
                f"RSS {p['rss_mb']} MB")

        if sizes.day_parcels and "day" not in results:
            results["day"] = await run_day()
        results["broker_peak_rss_mb"] = round(_peak_rss(bpid) / 2**20, 1)
    finally:
        broker.stop()
    results["machine"]["load_average_at_end"] = load_average()
    # Others edit the hot path while benchmarks run: a run that straddles a change is flagged, not trusted.
    src = results["source"]
    src["code_digest_at_end"] = source_state()["code_digest"]
    src["changed_during_run"] = src["code_digest_at_end"] != src["code_digest"]
    results["harness_seconds"] = round(time.time() - started, 1)
    summarise(results, sizes)
    return results


def _peak_rss(pid: int) -> int:
    from .procs import memory
    return memory(pid)["peak_rss"]


def summarise(r: dict, sizes: Sizes) -> None:
    """The headline keys (issue 6) and the targets, from the detailed figures."""
    def rate(key: str) -> float:
        return (r.get(key) or {}).get("parcels_per_s") or 0.0

    ceil500 = r["ceiling"]["500"]["parcels_per_s"]
    s500, s100, s1, base = rate("screener_500"), rate("screener_100"), rate("screener_1"), rate("baseline")
    r["ceiling_parcels_per_s"] = ceil500
    r["baseline_parcels_per_s"] = base
    r["screener_parcels_per_s"] = s500
    r["screener_100_parcels_per_s"] = s100
    r["screener_single_parcels_per_s"] = s1
    r["ratio_to_ceiling"] = round(s500 / ceil500, 3) if ceil500 else None
    r["speedup_vs_baseline"] = round(s500 / base, 2) if base else None
    r["ratios"] = {str(k): {"to_ceiling": round(rate(f"screener_{k}") / r["ceiling"][str(k)]["parcels_per_s"], 3)
                            if r["ceiling"][str(k)]["parcels_per_s"] else None,
                            "to_baseline": round(rate(f"screener_{k}") / base, 2) if base else None}
                   for k in (1, 100, 500)}
    r["keepup_p50_ms"] = r["keepup"]["p50_ms"]
    r["keepup_p99_ms"] = r["keepup"]["p99_ms"]
    r["keepup_worker_cpu_cores"] = r["keepup"]["worker_cpu_cores"]
    day = r.get("day")
    if day and day["parcels"] >= 20_000_000:
        r["day_20m_seconds"] = day["runs"]["1"]["span_s"]
        if "2" in day["runs"]:
            r["day_20m_seconds_two_workers"] = day["runs"]["2"]["span_s"]
    elif day:
        r["day_parcels"] = day["parcels"]
        r["day_seconds"] = day["runs"]["1"]["span_s"]
    measured = {"ratio_to_ceiling": r["ratio_to_ceiling"], "speedup_vs_baseline": r["speedup_vs_baseline"],
                "day_20m_seconds": r.get("day_20m_seconds"), "keepup_p99_ms": r["keepup_p99_ms"]}
    r["targets"] = {}
    for key, target in TARGETS.items():
        value = measured[key]
        lower_is_better = key in ("day_20m_seconds", "keepup_p99_ms")
        if value is None:
            r["targets"][key] = {"target": target, "measured": None, "met": None}
            continue
        met = value <= target if lower_is_better else value >= target
        off = value / target if lower_is_better else target / value
        r["targets"][key] = {"target": target, "measured": value, "met": met,
                             "factor_off": None if met else round(off, 2)}
    if sizes.keepup_rate != PEAK_RATE:
        r["targets"]["keepup_p99_ms"]["note"] = f"measured at {sizes.keepup_rate} parcels/s, not the peak rate"


def write(results: dict, json_path: Path | None, report_path: Path | None) -> None:
    """results.json (latency samples left out), then the Markdown report with its plots."""
    if json_path is not None:
        slim = json.loads(json.dumps(results))
        slim.get("keepup", {}).pop("latencies_ms", None)
        json_path.write_text(json.dumps(slim, indent=2) + "\n")
    if report_path is not None:
        from .report import render
        render(results, report_path)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> dict:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description="parcel screener benchmarks")
    group = ap.add_mutually_exclusive_group()
    for m in MODES:
        group.add_argument(f"--{m}", dest="mode", action="store_const", const=m)
    ap.add_argument("--json", help="write the results JSON here instead of the mode's default file")
    ap.add_argument("--report", help="write the Markdown report here (default: RESULTS.md for --full only)")
    ap.add_argument("--profile", action="store_true", help="also py-spy the screener (always on in --full)")
    ap.add_argument("--keep-workdir", action="store_true", help="keep worker logs (printed path)")
    args = ap.parse_args(argv)
    mode = args.mode or "quick"
    sizes = MODES[mode]
    if args.profile:
        sizes = dataclasses.replace(sizes, profile=True)
    json_path = Path(args.json) if args.json else OUTPUT_JSON[mode]
    report_path = Path(args.report) if args.report else (HERE / "RESULTS.md" if mode == "full" else None)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{mode}-"))
    # SIGTERM unwinds like Ctrl-C, so the broker and workers (own sessions) are stopped, not orphaned.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = asyncio.run(measure_all(mode, sizes, workdir, json_path))
    except BaseException:
        log(f"failed; worker and broker logs kept in {workdir}")
        raise
    write(results, json_path, report_path)
    if args.keep_workdir:
        log(f"logs in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    keys = ("ceiling_parcels_per_s", "baseline_parcels_per_s", "screener_parcels_per_s", "screener_100_parcels_per_s",
            "screener_single_parcels_per_s", "ratio_to_ceiling", "speedup_vs_baseline", "keepup_p50_ms",
            "keepup_p99_ms", "day_20m_seconds", "day_20m_seconds_two_workers")
    for k in keys:
        if k in results:
            print(f"{k:32s} {results[k]}")
    log(f"done in {results['harness_seconds']} s" + (f"; wrote {json_path}" if json_path else ""))
    return results


if __name__ == "__main__":
    main()
