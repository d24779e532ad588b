"""Numba kernels over a TreeEnsemble's node arrays: raw scores for a batch, path contributions for flagged rows.

Decisions follow LightGBM's `Tree::NumericalDecision` / `CategoricalDecision` (include/LightGBM/tree.h):
numerical: NaN becomes 0.0 unless the node's missing type is NaN; a missing value (NaN for type NaN,
|x| <= 1e-35 for type Zero) takes the default direction; otherwise left when x <= threshold.
categorical: NaN, negative or out-of-bitset values go right; left when the category's bit is set.

Two scoring kernels give the same results:
- `bitvector` (the default when every tree has at most 64 leaves and no zero-as-missing split): the
  row-vectorised form of QuickScorer (Lucchese et al., SIGIR 2015). Leaves are numbered left to right;
  every internal node has a mask clearing the leaves of its left subtree; a row starts a tree with all
  bits set and ANDs the mask of every node whose test sends it right; its leaf is the lowest set bit.
  A block of ROW_BLOCK rows is transposed to feature-major order, so each node's test is one branch-free
  loop over a contiguous column, which LLVM vectorises; no data-dependent branches, no walk.
- `walk`: the plain walk from the root, node by node (any tree shape, every missing type).
Path contributions are Saabas's: along a row's path, each split adds the change of the node's
expected value to its feature; the root values sum to the bias, and bias + contributions = raw score.
"""

from __future__ import annotations

import math
import weakref

import numba as nb
import numpy as np

from screener.model.trees import TreeEnsemble

ROW_BLOCK = 128  # rows scored together by the bitvector kernel (a compile-time constant: LLVM unrolls)
WALK_BLOCK = 256
MAX_LEAVES = 64
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
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
    for start in range(0, n, WALK_BLOCK):
        stop = min(start + WALK_BLOCK, n)
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


@nb.njit(cache=True, nogil=True)
def predict_raw_bitvector(X, node_start, node_column, node_threshold, node_mask, node_categorical,
                          cat_lo, cat_hi, cat_bits, leaf_start, leaf_value, out):
    """Raw scores of every row of X into out, QuickScorer-style (see the module docstring).

    The block is transposed twice: columns [0, F) with NaN as -inf, [F, 2F) as they are; a node whose
    missing values go left reads the first copy (-inf <= any threshold), one whose go right the second
    (NaN <= anything is false), so every numerical test is a single `x <= threshold`, also for the
    `x <= inf` splits LightGBM makes to separate missing values.
    """
    n, n_features = X.shape
    B = ROW_BLOCK
    xt = np.zeros((2 * n_features, B))
    bits = np.empty(B, dtype=np.uint64)
    for start in range(0, n, B):
        m = min(B, n - start)
        for r in range(B):
            for f in range(n_features):
                x = X[start + r, f] if r < m else 0.0
                nan = x != x
                xt[f, r] = -np.inf if nan else x
                xt[n_features + f, r] = x
        for r in range(m):
            out[start + r] = 0.0
        for t in range(node_start.shape[0] - 1):
            for r in range(B):
                bits[r] = _ALL
            for k in range(node_start[t], node_start[t + 1]):
                col = xt[node_column[k]]
                mask = node_mask[k]
                if node_categorical[k] and cat_hi[k] - cat_lo[k] <= 2:
                    # categories 0..63 in one 64-bit word: a variable shift, no gather (LLVM vectorises it)
                    word64 = np.uint64(cat_bits[cat_lo[k]])
                    if cat_hi[k] - cat_lo[k] == 2:
                        word64 |= np.uint64(cat_bits[cat_lo[k] + 1]) << np.uint64(32)
                    for r in range(B):
                        x = col[r]
                        valid = (x >= 0.0) & (x < 64.0)  # NaN fails
                        c = np.uint64(x if valid else 0.0)
                        left = valid & (((word64 >> c) & np.uint64(1)) != np.uint64(0))
                        bits[r] &= mask | (np.uint64(0) - np.uint64(left))
                elif node_categorical[k]:
                    # branch-free: out-of-range, negative and NaN categories read bit 0 of word 0 and are masked out
                    lo, limit = cat_lo[k], 32.0 * (cat_hi[k] - cat_lo[k])
                    for r in range(B):
                        x = col[r]
                        valid = (x >= 0.0) & (x < limit)  # NaN fails
                        c = np.int64(x if valid else 0.0)
                        word = np.uint64(cat_bits[lo + (c >> 5)])
                        left = valid & (((word >> np.uint64(c & 31)) & np.uint64(1)) != np.uint64(0))
                        bits[r] &= mask | (np.uint64(0) - np.uint64(left))
                else:
                    th = node_threshold[k]
                    for r in range(B):
                        bits[r] &= mask | (np.uint64(0) - np.uint64(col[r] <= th))
            base = leaf_start[t]
            for r in range(m):
                v = bits[r]
                lowest = v & (~v + np.uint64(1))
                out[start + r] += leaf_value[base + int(math.log2(float(lowest)))]  # exact for powers of two


class BitvectorLayout:
    """An ensemble's nodes as QuickScorer masks, tree by tree (built once per ensemble)."""

    def __init__(self, e: TreeEnsemble) -> None:
        starts, column, threshold, mask, categorical, lo, hi = [0], [], [], [], [], [], []
        n_features = e.n_features
        leaf_start, leaf_value = [0], []
        for root in e.roots.tolist():
            order = _leaves_in_order(e, root)
            position = {leaf: i for i, leaf in enumerate(order)}
            leaf_value.extend(e.leaf_value[order].tolist())
            leaf_start.append(len(leaf_value))
            stack = [root] if root >= 0 else []
            while stack:
                node = stack.pop()
                m = (1 << 64) - 1
                for leaf in _leaves_in_order(e, int(e.left[node])):
                    m &= ~(1 << position[leaf])
                mask.append(m)
                threshold.append(float(e.threshold[node]))
                # missing type NaN: the default direction; none: NaN is compared as 0.0
                nan_left = bool(e.default_left[node]) if e.missing_type[node] == 2 else 0.0 <= e.threshold[node]
                categorical.append(int(e.categorical[node]))
                # the copy of the column whose NaN (-inf / +inf) goes where this node sends missing values
                column.append(int(e.feature[node]) + (0 if nan_left and not e.categorical[node] else n_features))
                lo.append(int(e.cat_lo[node]))
                hi.append(int(e.cat_hi[node]))
                stack.extend(c for c in (int(e.left[node]), int(e.right[node])) if c >= 0)
            starts.append(len(column))
        i64 = np.int64
        self.args = (np.array(starts, dtype=i64), np.array(column, dtype=i64), np.array(threshold),
                     np.array(mask, dtype=np.uint64),
                     np.array(categorical, dtype=np.uint8), np.array(lo, dtype=i64), np.array(hi, dtype=i64),
                     e.cat_bits, np.array(leaf_start, dtype=i64), np.array(leaf_value))

    @staticmethod
    def fits(e: TreeEnsemble) -> bool:
        """Whether the bitvector kernel can score this ensemble (at most 64 leaves a tree, no zero-as-missing)."""
        return all(len(_leaves_in_order(e, r)) <= MAX_LEAVES for r in e.roots.tolist()) and \
            not (e.missing_type == 1).any()


def _leaves_in_order(e: TreeEnsemble, node: int) -> list[int]:
    """Leaves under `node`, left to right."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if n < 0:
            out.append(~n)
        else:
            stack.append(int(e.right[n]))
            stack.append(int(e.left[n]))
    return out


_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _layout(e: TreeEnsemble) -> BitvectorLayout | None:
    if e not in _LAYOUTS:
        _LAYOUTS[e] = BitvectorLayout(e) if BitvectorLayout.fits(e) else None
    return _LAYOUTS[e]


def _node_args(e: TreeEnsemble) -> tuple:
    return (e.roots, e.feature, e.threshold, e.categorical, e.default_left, e.missing_type, e.left, e.right,
            e.cat_lo, e.cat_hi, e.cat_bits)


def raw_scores(ensemble: TreeEnsemble, X: np.ndarray, kernel: str = "auto") -> np.ndarray:
    """Raw scores of X [n, features]; kernel "bitvector", "walk" or "auto" (bitvector when the ensemble fits)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    out = np.empty(X.shape[0], dtype=np.float64)
    layout = _layout(ensemble) if kernel in ("auto", "bitvector") else None
    if kernel == "bitvector" and layout is None:
        raise ValueError("the bitvector kernel needs trees of at most 64 leaves and no zero-as-missing splits")
    if layout is not None:
        predict_raw_bitvector(X, *layout.args, out)
    else:
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
