"""Where a stateful worker's memory goes as new consignees keep coming, and whether it stays bounded.

    python -m benchmarks.worker_memory                          # 1,000,000 parcels, default bound
    python -m benchmarks.worker_memory --parcels 2000000 --max-strings 500000

The stateful worker's compute, without a broker, as `benchmarks.stateful`'s `compute_only` runs it: the
asking worker (decode, validate, ask, screen, reasons, facts) and four state partitions answering (state,
changelog), over `benchmarks.stateful`'s fresh-consignee manifests
(every copy of the pool renames its consignees), made batch by batch so the input is never all held.
Every few batches it samples the process's RSS, the distinct strings the vocabularies hold, their
generation and the consignee stores' arrays (`nbytes`). It reports the RSS growth over the run split into
the stores and the rest, the rest per distinct string interned, and the peak: past `--max-strings`
(`SCREENER_VOCABULARY_MAX_STRINGS`) a fresh generation starts, so the strings and the RSS stop growing
while the stores keep their ~100 B per entity (benchmarks/state_memory.py). Writes
benchmarks/worker_memory-results.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
from pathlib import Path

from .ceiling import WORKER_GC_THRESHOLD
from .hitpacks import compose_stateful
from .state_memory import _rss
from .stateful import LocalState, asker, benchmark_pool, screen_with_state

RESULTS = Path(__file__).resolve().parent / "worker_memory-results.json"
MANIFESTS_PER_BATCH = 64
PARTITIONS = 4


def run(parcels: int, max_strings: int, samples: int = 12) -> dict:
    """RSS, strings and store bytes of the stateful compute over `parcels` fresh-consignee parcels."""
    from screener.pipeline.decode import RawMessage

    pool = benchmark_pool("fresh")
    with tempfile.TemporaryDirectory() as tmp:
        processor, keys = asker(compose_stateful(Path(tmp)), PARTITIONS, max_strings)
    state = LocalState(PARTITIONS)
    vocabularies, shards = processor.vocabularies, state.shards
    n_batches = -(-pool.messages_for(parcels) // MANIFESTS_PER_BATCH)
    every = max(1, n_batches // samples)
    gc.set_threshold(*WORKER_GC_THRESHOLD)

    def batch(b: int) -> None:
        values = pool.stream(MANIFESTS_PER_BATCH, start=b * MANIFESTS_PER_BATCH)
        raws = [RawMessage(v, "manifests", k % PARTITIONS, b * MANIFESTS_PER_BATCH + k) for k, v in enumerate(values)]
        screen_with_state(processor, keys, state, raws, PARTITIONS)   # with changelog and facts, as the worker

    def sample(b: int) -> dict:
        return {"parcels": (b + 1) * MANIFESTS_PER_BATCH * pool.parcels_per_message, "rss_mb": round(_rss() / 2**20, 1),
                "strings": sum(vocabularies.vocab.sizes().values()), "generation": vocabularies.count,
                "entities": sum(len(s.store) for s in shards),
                "stores_mb": round(sum(s.store.nbytes() for s in shards) / 2**20, 1)}

    batch(0)          # compiles (or loads) every kernel before the first sample
    first = sample(0)
    trace = [first]
    for b in range(1, n_batches):
        batch(b)
        if b % every == 0 or b == n_batches - 1:
            trace.append(sample(b))
    last = trace[-1]
    peak = max(trace, key=lambda s: s["rss_mb"])
    rest_mb = (last["rss_mb"] - first["rss_mb"]) - (last["stores_mb"] - first["stores_mb"])
    # Per string while the first generation grows (a renewal frees the strings but not the stores).
    grown = max((s for s in trace if s["generation"] == 1), key=lambda s: s["strings"])
    rest_first = (grown["rss_mb"] - first["rss_mb"]) - (grown["stores_mb"] - first["stores_mb"])
    return {"command": f"python -m benchmarks.worker_memory --parcels {parcels} --max-strings {max_strings}",
            "parcels": last["parcels"], "max_strings": max_strings, "generations": last["generation"],
            "rss_start_mb": first["rss_mb"], "rss_end_mb": last["rss_mb"], "rss_peak_mb": peak["rss_mb"],
            "rss_peak_at_parcels": peak["parcels"], "stores_mb": last["stores_mb"], "entities": last["entities"],
            "rest_growth_mb": round(rest_mb, 1),
            "rest_bytes_per_string_first_generation": round(rest_first * 2**20 / max(grown["strings"] - first["strings"], 1)),
            "trace": trace}


def main(argv: list[str] | None = None) -> dict:
    """Command line entry point: prints and writes the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=1_000_000)
    ap.add_argument("--max-strings", type=int, default=2_000_000,
                    help="the vocabulary bound (SCREENER_VOCABULARY_MAX_STRINGS)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    res = run(args.parcels, args.max_strings)
    text = json.dumps(res, indent=2)
    print(text)
    args.out.write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
