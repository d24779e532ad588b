"""Bytes to columns: the Numba scanner and the fast decoder against the reference path, same manifests, one core.

Run `python -m benchmarks.scan [--quick]` (last full run: benchmarks/scan-results.json). The input is 64
manifests of 500 parcels from the generator's pool (fresh consignees, as benchmarks/stateful.py sends), one
batch, as a worker gets it. Three figures in parcels per CPU-second (time.process_time; best of several
rounds, interleaved, the worker's GC settings): the scanner kernel alone (`kernels/json_scan.py`: bytes to
spans and numbers, validated), the fast decoder (`pipeline/fast_columns.py`: the scan plus every string
column interned, what a pack reading every field costs), and the reference path (`pipeline/decode.py` +
`pipeline/columns.py`: orjson, then field by field in Python). Checks that both decoders take every parcel
and agree on the parcel ids.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .ceiling import WORKER_GC_THRESHOLD
from .workload import make_pool

HERE = Path(__file__).resolve().parent


def run(quick: bool = False) -> dict:
    """Figures as a dict (parcels per CPU-second of each path, their ratios)."""
    from screener.kernels.json_scan import scan
    from screener.pipeline.batch import PARCEL_STRING_FIELDS, Vocabularies
    from screener.pipeline.columns import BatchBuilder
    from screener.pipeline.decode import RawMessage, decode
    from screener.pipeline.fast_columns import FastDecoder

    values = list(replace(make_pool(500, 20_000, 71), fresh_consignees=True).stream(16 if quick else 64))
    parcels = 500 * len(values)
    buf = np.frombuffer(b"".join(values), dtype=np.uint8)
    bounds = np.cumsum([0] + [len(v) for v in values], dtype=np.int64)

    def kernel() -> object:
        return scan(buf, bounds)

    def fast() -> object:
        decoded = FastDecoder(Vocabularies(), 1 << 20).build(values)
        for name in PARCEL_STRING_FIELDS:
            decoded.batch.strings[name]          # intern every string column, as a pack reading all fields would
        return decoded

    def reference() -> object:
        builder = BatchBuilder(Vocabularies())
        return [builder.build([decode(RawMessage(v, "manifests", 0, k), 1 << 20)])[0] for k, v in enumerate(values)]

    gc.set_threshold(*WORKER_GC_THRESHOLD)
    paths = {"kernel": kernel, "fast_decoder": fast, "reference": reference}
    outputs = {name: path() for name, path in paths.items()}     # compiled and warm
    best = {name: float("inf") for name in paths}
    for r in range(2 if quick else 5):
        for name in (list(paths) if r % 2 == 0 else list(paths)[::-1]):
            t0 = time.process_time()
            paths[name]()
            best[name] = min(best[name], time.process_time() - t0)
    fast_ids = outputs["fast_decoder"].batch.parcel_ids
    reference_ids = [pid for batch in outputs["reference"] for pid in batch.parcel_ids]
    if not (len(fast_ids) == parcels and list(fast_ids) == reference_ids):
        raise SystemExit("the fast decoder and the reference path disagree on these manifests")
    rate = {name: parcels / seconds for name, seconds in best.items()}
    return {"command": "python -m benchmarks.scan" + (" --quick" if quick else ""), "manifests": len(values),
            "parcels": parcels, "bytes_per_parcel": round(len(buf) / parcels, 1),
            **{f"{name}_parcels_per_s": round(v) for name, v in rate.items()},
            "kernel_mb_per_s": round(len(buf) / best["kernel"] / 1e6),
            "fast_decoder_over_reference": round(rate["fast_decoder"] / rate["reference"], 2)}


def main() -> None:
    """Print the figures as JSON; a full run also writes benchmarks/scan-results.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    quick = ap.parse_args().quick
    figures = run(quick)
    text = json.dumps(figures, indent=1)
    print(text)
    if not quick:
        (HERE / "scan-results.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
