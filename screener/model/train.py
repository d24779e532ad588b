"""`screener train`: features computed by replaying the data through the worker's batch code, LightGBM on them,
the trees flattened into node arrays. LightGBM is a training-only dependency (the `train` extra).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from screener.backtest import metrics
from screener.backtest.replay import Replay
from screener.backtest.sources import Source, merge_sources
from screener.features.builder import FeatureBuilder
from screener.model.artifact import file_sha256, save_model
from screener.model.kernel import probabilities
from screener.model.screener import ModelScreener
from screener.model.trees import from_lightgbm_text
from screener.pipeline.screening import Screener

# Fixed before looking at any validation split (no tuning on it); num_leaves/max_depth keep trees shallow
# for the kernel, min_data_per_group/cat_smooth keep rare categories from being memorised.
LIGHTGBM_PARAMS = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "max_depth": 6, "min_data_in_leaf": 40,
    "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
    "min_data_per_group": 50, "cat_smooth": 20.0, "max_cat_to_onehot": 8, "seed": 7, "deterministic": True,
    "num_threads": 1, "verbose": -1,
}
NUM_TREES = 200
FLAG_RATE, RED_RATE = 0.05, 0.01  # model lanes: yellow for the top 5% of training scores, red for the top 1%


def labelled_rows(replay: Replay, outcomes: dict) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of the screened parcels that have an outcome in `outcomes`, in replay order."""
    s = replay.screened
    X = np.concatenate(s.features) if s.features else np.zeros((0, 0))
    pids = s.parcel_ids
    keep = np.array([i for i, p in enumerate(pids) if p in outcomes], dtype=np.int64)
    y = np.array([outcomes[pids[i]].illicit for i in keep.tolist()], dtype=bool)
    return X[keep], y


def quality(p: np.ndarray, y: np.ndarray) -> dict:
    """precision/recall at 1, 2, 5, 10% and ROC AUC of probabilities p against labels y."""
    at = metrics.at_percent(p, y)
    return {"rows": int(len(y)), "illicit_rate": float(y.mean()) if len(y) else 0.0,
            "precision_at_pct": at["precision"], "recall_at_pct": at["recall"], "auc": metrics.roc_auc(p, y)}


def train(data: Source, rules: Screener, out: str | Path, valid: Source | None = None,
          label_delay_days: float = 14.0, num_trees: int = NUM_TREES, params: dict | None = None,
          on_progress=None) -> dict:
    """Train on `data`, evaluate on `valid`, write the model to `out`.

    Both are replayed as one history (exactly as `backtest --data TRAIN --data VALID` replays them), so the
    validation parcels' features carry the entity statistics of the training period, and the validation
    figures here are the ones that backtest reports from the validation period's first date.
    """
    import lightgbm as lgb

    builder = FeatureBuilder(rule_features=list(getattr(rules, "rule_ids", [])))
    screener = ModelScreener(rules, builder)
    replay = Replay(screener, label_delay_days, keep_features=True)
    replay.run(merge_sources(data, valid) if valid is not None else data, on_progress)
    X, y = labelled_rows(replay, data.outcomes)
    if len(y) == 0 or y.all() or not y.any():
        raise ValueError("training needs parcels with outcomes of both kinds (illicit and not)")
    names = builder.feature_names
    params = {**LIGHTGBM_PARAMS, **(params or {})}
    dataset = lgb.Dataset(X, y.astype(int), feature_name=names, categorical_feature=builder.categorical_features,
                          free_raw_data=False)
    booster = lgb.train(params, dataset, num_boost_round=num_trees)
    text = booster.model_to_string()
    ensemble = from_lightgbm_text(text)
    p_train = probabilities(ensemble, X)
    builder.freeze()

    manifest: dict = {
        "version": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "features": names,
        "categorical_features": builder.categorical_features,
        "categories": builder.category_values(),
        "label_delay_days": label_delay_days,
        "lanes": {"yellow": float(np.quantile(p_train, 1 - FLAG_RATE)), "red": float(np.quantile(p_train, 1 - RED_RATE))},
        "lightgbm": {"version": lgb.__version__, "params": params, "num_trees": ensemble.n_trees},
        "training_data": [{"path": str(p), "sha256": file_sha256(p)} for p in data.files],
        "training": quality(p_train, y),
    }
    if valid is not None:
        Xv, yv = labelled_rows(replay, valid.outcomes)
        pv = probabilities(ensemble, Xv)
        manifest["validation_data"] = [{"path": str(p), "sha256": file_sha256(p)} for p in valid.files]
        manifest["validation"] = quality(pv, yv)
        manifest["validation"]["max_abs_diff_vs_lightgbm"] = float(
            np.abs(pv - booster.predict(Xv, num_threads=1)).max()) if len(yv) else 0.0
    replay.release_all()
    trees_path = Path(out) / "trees.npz"
    save_model(out, manifest | {"trees_sha256": ""}, ensemble, builder.stats.snapshot(), text)
    manifest["trees_sha256"] = file_sha256(trees_path)
    save_model(out, manifest, ensemble, builder.stats.snapshot(), text)
    return manifest

