"""Detection quality of a ranking, as the customs-fraud literature reports it (DOMAIN.md).

Parcels are ranked by score, highest first (ties keep replay order); the top n% (n = 1, 2, 5, 10;
ceil(n% of parcels)) are "inspected". precision@n%: illicit share of the inspected; recall@n%:
share of all illicit parcels inspected; revenue@n%: share of all recoverable revenue inspected.
"""

from __future__ import annotations

import math

import numpy as np

PERCENTS = (1, 2, 5, 10)


def top_k(n: int, pct: float) -> int:
    """How many parcels the top pct% of n is (at least one when n > 0)."""
    return min(n, max(1, math.ceil(n * pct / 100.0))) if n else 0


def ranking(score: np.ndarray) -> np.ndarray:
    """Indices by descending score, ties in original order."""
    return np.argsort(-score, kind="stable")


def at_percent(score: np.ndarray, illicit: np.ndarray, revenue: np.ndarray | None = None,
               percents=PERCENTS) -> dict[str, dict[str, float]]:
    """precision, recall and (with revenue) revenue share at each n%, keyed by str(n)."""
    order = ranking(score)
    y = illicit[order].astype(np.float64)
    caught = np.cumsum(y)
    total = y.sum()
    out: dict[str, dict[str, float]] = {"precision": {}, "recall": {}}
    if revenue is not None:
        rev = np.nan_to_num(revenue[order])
        cum_rev = np.cumsum(rev)
        out["revenue"] = {}
    for pct in percents:
        k = top_k(len(y), pct)
        key = str(pct)
        out["precision"][key] = float(caught[k - 1] / k) if k else 0.0
        out["recall"][key] = float(caught[k - 1] / total) if k and total else 0.0
        if revenue is not None:
            out["revenue"][key] = float(cum_rev[k - 1] / cum_rev[-1]) if k and cum_rev[-1] > 0 else 0.0
    return out


def roc_auc(score: np.ndarray, illicit: np.ndarray) -> float | None:
    """Area under the ROC curve (None when only one class is present)."""
    from sklearn.metrics import roc_auc_score

    y = illicit.astype(int)
    if y.min(initial=0) == y.max(initial=0):
        return None
    return float(roc_auc_score(y, score))


def curves(score: np.ndarray, illicit: np.ndarray, points: int = 200) -> dict[str, list[float]]:
    """precision@k, recall@k and lift@k at up to `points` inspection shares (for the report's charts)."""
    order = ranking(score)
    y = illicit[order].astype(np.float64)
    n = len(y)
    if n == 0:
        return {"share": [], "precision": [], "recall": [], "lift": []}
    ks = np.unique(np.linspace(1, n, min(points, n)).round().astype(int))
    caught = np.cumsum(y)[ks - 1]
    base = y.mean() if y.sum() else 1.0
    precision = caught / ks
    return {"share": (ks / n).tolist(), "precision": precision.tolist(),
            "recall": (caught / max(y.sum(), 1.0)).tolist(), "lift": (precision / base).tolist()}
