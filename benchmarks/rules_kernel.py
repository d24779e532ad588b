"""Rule-pack kernel benchmark: compiled kernel vs reference interpreter, compile times, rule-count scaling.

Run `python -m benchmarks.rules_kernel [--quick]`; `run(quick)` returns the figures as a dict for
the overall harness (benchmarks/run.py). Batches come from the synthetic generator through the
worker's own decoder and column builder; decoding is excluded from every kernel figure. Kernel
throughput is the kernel call alone over prepared columns and up-to-date lookups (one core: the
kernel is single-threaded), best of several repeats; the interpreter runs on a slice of the
same batch in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PACK = REPO / "rules" / "default.toml"
REFERENCE = REPO / "rules" / "reference"

# Condition templates for synthetic packs: the default pack's rule types with varying constants,
# so a pack of N rules is N distinct rules of realistic cost (item loops, lookups, arithmetic).
_PREFIXES = ["8517", "8471", "8518", "8504", "8507", "6109", "6204", "6403", "4202", "9102", "3304", "9503",
             "3926", "2106", "7117", "9301", "3004", "1211", "3601", "3604"]
_WORDS = ["smartphone", "router", "laptop", "earphones", "charger", "power", "cotton", "dress", "sneakers",
          "handbag", "watch", "cream", "palette", "toy", "case", "vitamin", "necklace", "gift", "sample", "parts"]
_COUNTRIES = ["US", "JP", "KR", "DE", "FR", "AU", "GB", "IT", "NZ", "CA", "TH", "VN", "CN", "AF", "MM"]


def synthetic_condition(k: int) -> str:
    """Rule k of a synthetic pack (ten rule shapes in rotation, constants varying with k)."""
    t, c = k % 10, k // 10
    return [
        f"value_per_kg < {0.5 + (c % 10) * 0.1:.2f} * min_item(band_min(hs_code, item_origin_country))",
        f"any_item(startswith(hs_code, '{_PREFIXES[c % len(_PREFIXES)]}') and line_value_usd < {5 + c % 50})",
        f"declared_value > {1000 + 37 * c} and item_count >= {1 + c % 3}",
        f"any_item(contains_any(description, ['{_WORDS[c % len(_WORDS)]}']))",
        f"origin_country == '{_COUNTRIES[c % len(_COUNTRIES)]}' and value_usd > {50 + c}",
        (f"abs(paid_amount - (declared_value + max(freight, 0) + max(tax_withheld, 0))) > "
         f"{0.01 + (c % 7) * 0.01:.2f} * paid_amount"),
        f"watchlisted(consignee_id) or watchlisted(seller_id) and total_quantity > {c % 4}",
        (f"(origin_country, departure_country) in table('risky_routes', 'origin_country', 'departure_country') "
         f"and declared_value > {c}"),
        f"gross_weight_kg < net_weight_kg * {0.9 + (c % 5) * 0.02:.2f}",
        f"any_item(quantity * unit_price > {1.02 + (c % 9) * 0.01:.2f} * line_value + 0.05)",
    ][t]


_OPERATORS = ["+", "-", "*", "/"]


def distinct_shape_condition(k: int) -> str:
    """Rule k of a worst-case pack: shape k % 10 and an arithmetic clause whose operators spell k // 10.

    Constants, lists and even the fields a rule reads are parameters of its shape; operators are
    structure, so no two rules of this pack share a shape (up to 2,560 rules).
    """
    c = k // 10
    ops = [_OPERATORS[(c >> (2 * d)) & 3] for d in range(4)]
    clause = (f"declared_value {ops[0]} freight {ops[1]} paid_amount {ops[2]} tax_withheld {ops[3]} "
              f"gross_weight_kg > {c % 7}")
    return f"({synthetic_condition(k)}) and {clause}"


def synthetic_pack(n_rules: int, directory: Path, distinct: bool = False) -> Path:
    """A pack file of n_rules synthetic rules over the default reference tables (`distinct`: no shared shapes)."""
    lines = [f'[pack]\nid = "synthetic{n_rules}"\nversion = "1"\nreference = "{REFERENCE}"\n',
             "[lanes]\nyellow = 0.3\nred = 0.7\n", "[random]\nrate = 0.01\nseed = 1\n"]
    condition = distinct_shape_condition if distinct else synthetic_condition
    for k in range(n_rules):
        lines.append(f'[[rules]]\nid = "S{k:04d}"\nweight = 0.15\ncondition = "{condition(k)}"\n')
    path = directory / f"synthetic{n_rules}{'-distinct' if distinct else ''}.toml"
    path.write_text("\n".join(lines))
    return path


def generated_batch(parcels: int, seed: int = 1):
    """A ParcelBatch of generator parcels, decoded and validated as the worker does it."""
    from screener.generator import GeneratorConfig, ManifestGenerator
    from screener.pipeline.columns import BatchBuilder
    from screener.pipeline.decode import RawMessage, decode

    per = 500
    gen = ManifestGenerator(GeneratorConfig(manifests=max(1, parcels // per), parcels_per_manifest=per, seed=seed))
    msgs = [decode(RawMessage(orjson.dumps(m)), 1 << 24) for m in gen.manifests()]
    batch, _ = BatchBuilder().build(msgs)
    return batch


def slice_batch(batch, n: int):
    """The first n parcels of a batch (same vocabularies)."""
    from screener.pipeline.batch import ParcelBatch

    m = int(batch.item_offsets[n])
    return ParcelBatch(parcel_ids=batch.parcel_ids[:n],
                       message_index=batch.message_index[:n], parcel_hash=batch.parcel_hash[:n],
                       event_time_ms=batch.event_time_ms[:n], strings={k: v[:n] for k, v in batch.strings.items()},
                       numbers={k: v[:n] for k, v in batch.numbers.items()}, item_offsets=batch.item_offsets[:n + 1],
                       item_strings={k: v[:m] for k, v in batch.item_strings.items()},
                       item_numbers={k: v[:m] for k, v in batch.item_numbers.items()}, vocab=batch.vocab)


def kernel_rate(screener, batch, repeats: int) -> float:
    """Parcels/s of the kernel call alone (best of `repeats`), lookups already up to date."""
    args = screener.kernel_args(batch)
    out = screener.new_result(batch.n)
    screener.screen_into(args, out)          # warm caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        screener.screen_into(args, out)
        best = min(best, time.perf_counter() - t0)
    return batch.n / best


def compile_times(pack: Path) -> dict:
    """Cold (empty cache) and cached compile of a pack, each in a fresh process."""
    code = ("import sys, time, json; t0 = time.perf_counter(); from screener.rules import load_pack; "
            "from screener.rules.screener import PackScreener; p = load_pack(sys.argv[1]); t1 = time.perf_counter(); "
            "s = PackScreener(p, sys.argv[2]); t2 = time.perf_counter(); "
            "print(json.dumps({'load_s': t1 - t0, 'compile_s': t2 - t1, 'hits': sum(s.kernel.stats.cache_hits.values())}))")
    with tempfile.TemporaryDirectory() as cache:
        runs = []
        for _ in range(2):
            done = subprocess.run([sys.executable, "-c", code, str(pack), cache], cwd=REPO, capture_output=True,
                                  text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["hits"] == 0 and runs[1]["hits"] == 1, runs
    return {"cold_s": round(runs[0]["compile_s"], 3), "cached_s": round(runs[1]["compile_s"], 3),
            "parse_check_s": round(runs[0]["load_s"], 3)}


def run(quick: bool = False) -> dict:
    """All figures as a dict (see the module docstring)."""
    import numba

    from screener.rules import load_pack
    from screener.rules.screener import PackScreener

    n = 20_000 if quick else 200_000
    n_interp = 1_000 if quick else 5_000
    repeats = 5 if quick else 10
    t0 = time.perf_counter()
    batch = generated_batch(n)
    build_s = time.perf_counter() - t0
    out: dict = {"batch_parcels": batch.n, "batch_items": batch.m, "batch_build_s": round(build_s, 2),
                 "numba": numba.__version__, "threads": 1}

    with tempfile.TemporaryDirectory() as cache:
        screener = PackScreener(load_pack(DEFAULT_PACK), cache)
        t0 = time.perf_counter()
        screener.screen(batch)                          # lookups for every string of the batch, once
        out["rules_lookup_first_batch_s"] = round(time.perf_counter() - t0, 3)
        out["rules_lookup_strings"] = screener.lookups.evaluated
        kps = kernel_rate(screener, batch, repeats)
        t0 = time.perf_counter()
        for _ in range(3):
            screener.screen(batch)
        screen_ps = 3 * batch.n / (time.perf_counter() - t0)
        small = slice_batch(batch, n_interp)
        t0 = time.perf_counter()
        oracle = screener.interpreter.screen(small)
        ips = small.n / (time.perf_counter() - t0)
        got = screener.screen(small)
        out.update({
            "rules_pack": f"{screener.ruleset_id}@{screener.version} ({len(screener.rules)} rules)",
            "rules_kernel_parcels_per_s": round(kps),
            "rules_screen_call_parcels_per_s": round(screen_ps),
            "rules_interpreter_parcels_per_s": round(ips),
            "rules_kernel_speedup": round(kps / ips, 1),
            "rules_kernel_ns_per_parcel": round(1e9 / kps, 1),
            "rules_kernel_matches_interpreter": bool(np.array_equal(got.hits, oracle.hits)
                                                     and np.array_equal(got.lane, oracle.lane)
                                                     and np.array_equal(got.score, oracle.score)),
            "rules_flag_rate": round(float(np.mean(got.lane > 0)), 4),
        })

    ct = compile_times(DEFAULT_PACK)
    out["rules_compile_cold_s"] = ct["cold_s"]
    out["rules_compile_cached_s"] = ct["cached_s"]
    out["rules_pack_check_s"] = ct["parse_check_s"]

    counts = [10, 100] if quick else [10, 100, 1000]
    scaling = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        rbatch = slice_batch(batch, min(batch.n, 50_000))
        for count in counts:
            pack = load_pack(synthetic_pack(count, tmpdir))
            t0 = time.perf_counter()
            s = PackScreener(pack, tmpdir / "cache")
            cold = time.perf_counter() - t0
            s.screen(rbatch)
            rate = kernel_rate(s, rbatch, max(3, repeats // 2))
            scaling.append({"rules": count, "kernel_parcels_per_s": round(rate), "compile_cold_s": round(cold, 2),
                            "ns_per_parcel_per_rule": round(1e9 / rate / count, 2)})
    out["rules_throughput_by_count"] = {row["rules"]: row["kernel_parcels_per_s"] for row in scaling}
    out["rules_compile_cold_by_count_s"] = {row["rules"]: row["compile_cold_s"] for row in scaling}
    out["rules_scaling"] = scaling
    return out


def compile_scaling(counts: list[int], distinct: bool = False) -> dict:
    """Cold and cached compile of synthetic packs of each size, each in a fresh process with an empty cache."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            out[count] = compile_times(synthetic_pack(count, Path(tmp), distinct))
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller batch, 10 and 100 rules only")
    ap.add_argument("--compile-scaling", metavar="N,N,...",
                    help="only cold/cached compile times of synthetic packs of these sizes (e.g. 14,100,300,1000)")
    ap.add_argument("--distinct", action="store_true", help="with --compile-scaling: no two rules share a shape")
    args = ap.parse_args(argv)
    if args.compile_scaling:
        counts = [int(x) for x in args.compile_scaling.split(",")]
        print(json.dumps(compile_scaling(counts, args.distinct), indent=2))
        return
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
