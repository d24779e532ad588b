"""Model kernel benchmark: the Numba tree kernel against LightGBM's `predict`, same model, same batch, one core.

Run `python -m benchmarks.model_kernel [--quick]` (last full run: benchmarks/model_kernel-results.json).
The model is trained with the parameters `screener train`
uses (screener/model/train.py: 200 trees, num_leaves 31, max_depth 6) on synthetic data with a categorical
column and missing values; both scorers get the same float64 batch and one thread; best of several
repeats each, interleaved. Times are the process's CPU time (time.process_time): the machine is shared,
and CPU time is what one core spends, whatever else runs. Prints parcels per CPU-second of both, their
ratio, and checks they agree to 1e-6.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def run(quick: bool = False) -> dict:
    """Figures as a dict (parcels/s of the kernel and of LightGBM, ratio, max difference)."""
    import lightgbm as lgb

    from screener.model.kernel import raw_scores
    from screener.model.train import LIGHTGBM_PARAMS, NUM_TREES
    from screener.model.trees import from_lightgbm_text

    rng = np.random.default_rng(0)
    n_train, n_batch, n_features = (20_000, 50_000, 40) if quick else (100_000, 200_000, 80)
    X = rng.normal(size=(n_train, n_features))
    X[:, 0] = rng.integers(0, 30, n_train)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 1]) + 0.5 * np.nan_to_num(X[:, 2]) + (X[:, 0] % 4 == 0) + rng.normal(size=n_train) > 0.8)
    params = {**LIGHTGBM_PARAMS, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y.astype(int), categorical_feature=[0]), NUM_TREES)
    ensemble = from_lightgbm_text(booster.model_to_string())
    batch = rng.normal(size=(n_batch, n_features))
    batch[:, 0] = rng.integers(0, 40, n_batch)
    batch[rng.random(batch.shape) < 0.1] = np.nan
    raw_scores(ensemble, batch[:10])  # compile
    raw_scores(ensemble, batch[:10], "walk")
    best_kernel = best_walk = best_lgb = float("inf")
    for _ in range(2 if quick else 5):
        t0 = time.process_time()
        ours = raw_scores(ensemble, batch)
        best_kernel = min(best_kernel, time.process_time() - t0)
        t0 = time.process_time()
        walk = raw_scores(ensemble, batch, "walk")
        best_walk = min(best_walk, time.process_time() - t0)
        t0 = time.process_time()
        theirs = booster.predict(batch, raw_score=True, num_threads=1)
        best_lgb = min(best_lgb, time.process_time() - t0)
    return {"trees": ensemble.n_trees, "features": n_features, "batch": n_batch,
            "kernel_parcels_per_s": n_batch / best_kernel, "walk_kernel_parcels_per_s": n_batch / best_walk,
            "lightgbm_parcels_per_s": n_batch / best_lgb, "ratio": best_lgb / best_kernel,
            "max_abs_diff": float(max(np.abs(ours - theirs).max(), np.abs(walk - theirs).max()))}


def main() -> None:
    """Print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(run(ap.parse_args().quick), indent=1))


if __name__ == "__main__":
    main()
