"""Growth: screening throughput and memory as the worker's vocabularies grow to millions of consignees,
and (from benchmarks/rules_kernel.py, when present) as the rule count grows.

Entities are measured on the pure screening path (`BatchProcessor.process`, no broker) in a
subprocess of its own, so its RSS is the vocabulary's and nothing else's. Feeding 10M distinct
consignees through the pipeline would take longer than the whole benchmark, so the vocabularies
are pre-filled with N synthetic consignees (id, name, phone, address: the four fields a consignee
brings) through the same `intern_many` the decoder uses, a million at a time with a batch screened
in between (so the processor's bound on its vocabularies acts as in a worker); then batches whose
every consignee is new are screened. The first batch after a pre-fill also brings the rule lookups up to date for
the N new strings: that catch-up is reported on its own.

Run alone: `python -m benchmarks.growth --distinct 0,1000000 --batches 10` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CONSIGNEE_FIELDS = ("consignee_id", "consignee_name", "consignee_phone", "consignee_address")
CHUNK = 1_000_000


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def entities(distinct: list[int], batches: int, manifests_per_batch: int = 8) -> dict:
    """Throughput on batches of all-new consignees with 0..N consignees already known, and memory per consignee."""
    import gc

    from screener.pipeline.decode import RawMessage
    from screener.pipeline.processor import BatchProcessor
    from screener.pipeline.screening import load_screener

    from .procs import REPO
    from .workload import make_pool, rename_consignees

    pool = make_pool(500, 500 * manifests_per_batch * 2, seed=81)
    processor = BatchProcessor(load_screener(str(REPO / "rules" / "default.toml")))
    copy = [0]

    def batch(fresh: bool) -> list[RawMessage]:
        msgs = []
        for _ in range(manifests_per_batch):
            copy[0] += 1
            m = pool.copy(copy[0], tag=b"g")
            msgs.append(RawMessage(rename_consignees(m, b"F%dx" % copy[0]) if fresh else m))
        return msgs

    processor.process(batch(False))  # compile / load kernels outside the timings
    gc.set_threshold(200_000, 20, 50)  # as `run_worker` sets it: the worker's collector, not the default one
    gc.collect()
    points, known, rss0 = [], 0, _rss()
    for target in sorted(set(distinct)):
        t0 = time.perf_counter()
        while known < target:
            n = min(CHUNK, target - known)
            # Into the processor's vocabularies of the moment, with a batch in between, as a worker sees
            # consignees arrive: its bound (SCREENER_VOCABULARY_MAX_STRINGS) swaps generations on the way.
            vocab = processor.vocab
            for name in CONSIGNEE_FIELDS:
                prefix = name.split("_")[1][:4]
                vocab[name].intern_many([f"{prefix}-G{k:09d}" for k in range(known, known + n)])
            known += n
            processor.process(batch(True))
        prefill_s = time.perf_counter() - t0
        gc.collect()
        t0 = time.perf_counter()
        catch = processor.process(batch(True))
        catch_up_s = time.perf_counter() - t0
        parcels, t0 = 0, time.perf_counter()
        for _ in range(batches):
            parcels += processor.process(batch(True)).outcome.parcels
        el = time.perf_counter() - t0
        rss = _rss()
        points.append({
            "distinct_consignees": target, "vocab_consignee_id": len(processor.vocab["consignee_id"]),
            "generations": processor.generations,
            "prefill_s": round(prefill_s, 2), "first_batch_s": round(catch_up_s, 3),
            "first_batch_parcels": catch.outcome.parcels,
            "parcels_per_s": round(parcels / el, 1), "rss_mb": round(rss / 2**20, 1),
            "bytes_per_consignee": round((rss - rss0) / target, 1) if target else None,
        })
    return {"method": "pure path, pre-filled vocabularies, batches of all-new consignees",
            "batch_parcels": 500 * manifests_per_batch, "points": points}


def entities_subprocess(distinct: list[int], batches: int, timeout: float = 1800) -> dict:
    """Run `entities` in a fresh interpreter (clean RSS, memory returned at exit)."""
    cmd = [sys.executable, "-m", "benchmarks.growth", "--distinct", ",".join(map(str, distinct)),
           "--batches", str(batches)]
    from .procs import REPO

    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"growth subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rules(quick: bool) -> dict:
    """Kernel vs interpreter and rule-count figures from benchmarks/rules_kernel.py, if it exists yet."""
    try:
        from . import rules_kernel
    except ImportError as exc:
        return {"available": False, "why": f"benchmarks/rules_kernel.py not importable: {exc}"}
    t0 = time.perf_counter()
    try:
        out = rules_kernel.run(quick)
    except Exception as exc:  # someone else's benchmark failing must not lose the rest of the run
        return {"available": False, "why": f"rules_kernel.run failed: {type(exc).__name__}: {exc}"}
    return {"available": True, "seconds": round(time.perf_counter() - t0, 1), **out}


def main(argv: list[str] | None = None) -> None:
    """Print the entity growth figures as one JSON line."""
    ap = argparse.ArgumentParser(description="entity growth on the pure screening path")
    ap.add_argument("--distinct", default="0,1000000")
    ap.add_argument("--batches", type=int, default=10)
    args = ap.parse_args(argv)
    print(json.dumps(entities([int(x) for x in args.distinct.split(",")], args.batches)))


if __name__ == "__main__":
    main()
