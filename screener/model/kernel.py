"""Numba kernels over a TreeEnsemble's node arrays: raw scores for a batch, path contributions for flagged rows.

Decisions follow LightGBM's `Tree::NumericalDecision` / `CategoricalDecision` (include/LightGBM/tree.h):
numerical: NaN becomes 0.0 unless the node's missing type is NaN; a missing value (NaN for type NaN,
|x| <= 1e-35 for type Zero) takes the default direction; otherwise left when x <= threshold.
categorical: NaN, negative or out-of-bitset values go right; left when the category's bit is set.

Loop order: blocks of rows, trees outer, rows inner, so one tree's nodes stay in L1 cache while
a block of rows walks it (the rows' walks are independent, which the CPU overlaps).
Path contributions are Saabas's: along a row's path, each split adds the change of the node's
expected value to its feature; the root values sum to the bias, and bias + contributions = raw score.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from screener.model.trees import TreeEnsemble

ROW_BLOCK = 256
_ZERO = 1e-35


@nb.njit(inline="always", cache=True)
def _go_left(x, node, feature, threshold, categorical, default_left, missing_type, cat_lo, cat_hi, cat_bits):
    if categorical[node]:
        if math.isnan(x) or x < 0.0 or x >= 2147483648.0:
            return False
        c = int(x)
        w = cat_lo[node] + (c >> 5)
        if w >= cat_hi[node]:
            return False
        return ((cat_bits[w] >> np.uint32(c & 31)) & np.uint32(1)) != 0
    mt = missing_type[node]
    if mt != 2 and math.isnan(x):
        x = 0.0
    if (mt == 1 and abs(x) <= _ZERO) or (mt == 2 and math.isnan(x)):
        return default_left[node] != 0
    return x <= threshold[node]


@nb.njit(cache=True)
def _leaf(X, row, node, feature, threshold, categorical, default_left, missing_type, left, right,
          cat_lo, cat_hi, cat_bits):
    while node >= 0:
        x = X[row, feature[node]]
        if _go_left(x, node, feature, threshold, categorical, default_left, missing_type, cat_lo, cat_hi, cat_bits):
            node = left[node]
        else:
            node = right[node]
    return ~node


@nb.njit(cache=True, nogil=True)
def predict_raw(X, roots, feature, threshold, categorical, default_left, missing_type, left, right,
                cat_lo, cat_hi, cat_bits, leaf_value, out):
    """Raw scores (sum of leaf values) of every row of X [n, features] into out [n]."""
    n = X.shape[0]
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        for r in range(start, stop):
            out[r] = 0.0
        for t in range(roots.shape[0]):
            root = roots[t]
            for r in range(start, stop):
                out[r] += leaf_value[_leaf(X, r, root, feature, threshold, categorical, default_left,
                                           missing_type, left, right, cat_lo, cat_hi, cat_bits)]


@nb.njit(cache=True, nogil=True)
def path_contributions(X, rows, roots, feature, threshold, categorical, default_left, missing_type, left, right,
                       cat_lo, cat_hi, cat_bits, node_value, leaf_value, top_k, out_bias, out_feature, out_value):
    """For each row index in `rows`: bias and the top_k features by path contribution, largest first.

    out_feature [len(rows), top_k] int32 (-1 when top_k exceeds the features), out_value the same shape;
    with top_k = features, bias + the sum of out_value is the row's raw score.
    """
    n_features = X.shape[1]
    contrib = np.zeros(n_features)
    for k in range(rows.shape[0]):
        r = rows[k]
        contrib[:] = 0.0
        bias = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            if node < 0:
                bias += leaf_value[~node]
                continue
            bias += node_value[node]
            while node >= 0:
                f = feature[node]
                if _go_left(X[r, f], node, feature, threshold, categorical, default_left, missing_type,
                            cat_lo, cat_hi, cat_bits):
                    nxt = left[node]
                else:
                    nxt = right[node]
                value = node_value[nxt] if nxt >= 0 else leaf_value[~nxt]
                contrib[f] += value - node_value[node]
                node = nxt
        out_bias[k] = bias
        order = np.argsort(-contrib)
        for j in range(top_k):
            if j < n_features:
                out_feature[k, j] = order[j]
                out_value[k, j] = contrib[order[j]]
            else:
                out_feature[k, j] = -1
                out_value[k, j] = 0.0


def _node_args(e: TreeEnsemble) -> tuple:
    return (e.roots, e.feature, e.threshold, e.categorical, e.default_left, e.missing_type, e.left, e.right,
            e.cat_lo, e.cat_hi, e.cat_bits)


def raw_scores(ensemble: TreeEnsemble, X: np.ndarray) -> np.ndarray:
    """Raw scores of X [n, features] (C-contiguous float64)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    out = np.empty(X.shape[0], dtype=np.float64)
    predict_raw(X, *_node_args(ensemble), ensemble.leaf_value, out)
    return out


def probabilities(ensemble: TreeEnsemble, X: np.ndarray) -> np.ndarray:
    """Probability of the positive class for every row of X."""
    return 1.0 / (1.0 + np.exp(-ensemble.sigmoid * raw_scores(ensemble, X)))


def top_contributions(ensemble: TreeEnsemble, X: np.ndarray, rows: np.ndarray,
                      top_k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bias [k], feature [k, top_k], contribution [k, top_k]) in raw-score units for the given rows."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    bias = np.empty(len(rows))
    feat = np.empty((len(rows), top_k), dtype=np.int32)
    value = np.empty((len(rows), top_k))
    path_contributions(X, rows, *_node_args(ensemble), ensemble.node_value, ensemble.leaf_value, top_k,
                       bias, feat, value)
    return bias, feat, value
