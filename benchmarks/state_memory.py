"""Consignee state store: memory per entity, apply throughput and recovery from changelog records.

N distinct consignees (keys f"C-{i:09d}", one parcel each, so one window event each) are applied in batches
of 32,000 as a worker would (intern the keys, then one kernel call). Memory per entity is reported from the
arrays (`nbytes`: allocated, doubling included; `nbytes_used`: up to what is in use) and from RSS growth of
this process (the untouched tail of a doubled numpy array is not resident), both as grown and after one
more `release_freed_heap` (the store gives back the heap its outgrown arrays held each time it grows; what is
left is the rest of the process's garbage). Recovery encodes the first
1,000,000 entities to changelog records and times `restore` into a fresh store, then checks that the
restored store gives the same columns as the original for a following parcel of each of a sample of keys.

Run: `python -m benchmarks.state_memory --entities 10000000` prints JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time

import numpy as np

BASE_MS = 1_750_000_000_000


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _trimmed_rss() -> int:
    from screener.pipeline.batch import release_freed_heap

    release_freed_heap()
    return _rss()


def _batch(lo: int, hi: int):
    keys = [f"C-{i:09d}" for i in range(lo, hi)]
    idx = np.arange(lo, hi, dtype=np.int64)
    # 5 ms apart: 10M parcels span 14 hours, inside one window, so every entity keeps its event.
    return keys, idx + 1, BASE_MS + 5 * idx, np.full(hi - lo, 25.0), idx.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)


def same_columns_after(store, restored, keys: list[bytes], entities: int) -> bool:
    """Whether a following parcel of each of a sample of `keys` gets the same columns from both stores."""
    from screener.state.consignee import COLUMNS

    sample = np.random.default_rng(5).choice(len(keys), min(len(keys), 10_000), replace=False)
    follow = ([keys[i].decode() for i in sample], entities + 1 + np.arange(len(sample)),
              np.full(len(sample), BASE_MS + 5 * entities), np.ones(len(sample)), np.arange(len(sample), dtype=np.uint64))
    mine, theirs = store.apply(*follow), restored.apply(*follow)
    return all(np.array_equal(mine[c], theirs[c], equal_nan=True) for c in COLUMNS)


def run(entities: int, batch: int, recovery: int) -> dict:
    """Fill a store with `entities` consignees, then encode and restore `recovery` of them."""
    from screener.state.changelog import encode_entities, restore
    from screener.state.consignee import ConsigneeState

    warm = ConsigneeState()   # compile (or load) every kernel outside the timings
    warm.apply(*_batch(0, 10))
    restore(ConsigneeState(), *encode_entities(warm, warm.live_slots()))
    warm.expire()
    del warm
    gc.collect()

    rss0 = _trimmed_rss()
    store = ConsigneeState()
    intern_s = apply_s = 0.0
    for lo in range(0, entities, batch):
        keys, seq, t, v, pid = _batch(lo, min(entities, lo + batch))
        a = time.perf_counter()
        slots = store.slots_of(keys)
        b = time.perf_counter()
        store.apply(slots, seq, t, v, pid)
        c = time.perf_counter()
        intern_s += b - a
        apply_s += c - b
    del keys, seq, t, v, pid, slots
    gc.collect()
    rss1 = _rss()
    rss1_trimmed = _trimmed_rss()
    assert len(store) == entities and store.live_events == entities

    n_rec = min(recovery, entities)
    a = time.perf_counter()
    keys, values = encode_entities(store, np.arange(1, n_rec + 1, dtype=np.int32))
    encode_s = time.perf_counter() - a
    restored = ConsigneeState()
    a = time.perf_counter()
    restore(restored, keys, values)
    restore_s = time.perf_counter() - a
    same = same_columns_after(store, restored, keys[:n_rec], entities)

    return {
        "entities": entities,
        "batch": batch,
        "bytes_per_entity_nbytes_allocated": round(store.nbytes() / entities, 1),
        "bytes_per_entity_nbytes_used": round(store.nbytes_used() / entities, 1),
        "bytes_per_entity_rss": round((rss1 - rss0) / entities, 1),
        "vocabulary_bytes_per_entity": round(store.vocab.nbytes() / entities, 1),
        "store_bytes_per_entity_and_event": sum(getattr(store, a).itemsize for a in store.ENTITY_ARRAYS + store.EVENT_ARRAYS),
        "bytes_per_entity_rss_trimmed": round((rss1_trimmed - rss0) / entities, 1),
        "rss_growth_mb": round((rss1 - rss0) / 2**20, 1),
        "rss_growth_trimmed_mb": round((rss1_trimmed - rss0) / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "apply_parcels_per_s": round(entities / apply_s),
        "intern_and_apply_parcels_per_s": round(entities / (intern_s + apply_s)),
        "recovery_records": n_rec,
        "record_bytes": len(values[0]) if values else 0,
        "encode_s": round(encode_s, 3),
        "encode_records_per_s": round(n_rec / encode_s) if encode_s else None,
        "restore_s": round(restore_s, 3),
        "restore_records_per_s": round(n_rec / restore_s) if restore_s else None,
        "restored_columns_identical": same,
    }


def main() -> None:
    """Command line: prints the measurements as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=32_000)
    parser.add_argument("--recovery", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(run(args.entities, args.batch, args.recovery), indent=2))


if __name__ == "__main__":
    main()
