"""A tree ensemble as plain node arrays, read from LightGBM's text model format (no LightGBM import).

Node encoding (all trees concatenated): internal nodes are numbered globally; a child index >= 0
is an internal node, a child < 0 is leaf `~child` (global leaf number). A tree with one leaf has
root `~leaf`. Categorical splits keep LightGBM's bitsets (uint32 words) with per-node word ranges.
Like lleaves, we read the text dump rather than the JSON dump: it holds the exact thresholds
(printed with 17 significant digits) and the raw category bitsets.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# decision_type bits (LightGBM include/LightGBM/tree.h)
CATEGORICAL_MASK = 1
DEFAULT_LEFT_MASK = 2


@dataclass(eq=False)  # compared by identity: kernels cache a layout per ensemble
class TreeEnsemble:
    """A binary-classification tree ensemble as arrays the kernel reads."""

    roots: np.ndarray            # int32 [trees]: root node, or ~leaf for a single-leaf tree
    feature: np.ndarray          # int32 [nodes]
    threshold: np.ndarray        # float64 [nodes] (numerical splits)
    categorical: np.ndarray      # uint8 [nodes]: 1 = categorical split
    default_left: np.ndarray     # uint8 [nodes]
    missing_type: np.ndarray     # uint8 [nodes]: 0 none, 1 zero, 2 NaN
    left: np.ndarray             # int32 [nodes]
    right: np.ndarray            # int32 [nodes]
    cat_lo: np.ndarray           # int32 [nodes]: first bitset word of a categorical split
    cat_hi: np.ndarray           # int32 [nodes]: one past its last word
    cat_bits: np.ndarray         # uint32 [words]
    node_value: np.ndarray       # float64 [nodes]: expected raw score at the node (path contributions)
    leaf_value: np.ndarray       # float64 [leaves]
    feature_names: list[str]
    sigmoid: float = 1.0         # probability = 1 / (1 + exp(-sigmoid * raw))

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return len(self.roots)

    @property
    def n_features(self) -> int:
        """Number of input columns the ensemble reads."""
        return len(self.feature_names)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array field by name (for saving)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}

    def save(self, path) -> None:
        """Write the arrays (and the feature names and sigmoid) to one .npz file."""
        np.savez(path, **self.arrays(), feature_names=np.array(self.feature_names, dtype=str),
                 sigmoid=np.float64(self.sigmoid))

    @classmethod
    def load(cls, path) -> TreeEnsemble:
        """Read an ensemble written by `save`."""
        with np.load(path, allow_pickle=False) as z:
            kw = {f.name: z[f.name] for f in fields(cls) if f.name not in ("feature_names", "sigmoid")}
            return cls(**kw, feature_names=[str(s) for s in z["feature_names"]], sigmoid=float(z["sigmoid"]))


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split()] if s.strip() else []


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split()] if s.strip() else []


def _blocks(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Header key=values and one key=value dict per `Tree=` block."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        line = line.strip()
        if line == "end of trees":
            break
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
            continue
        if "=" in line:
            k, v = line.split("=", 1)
            current[k] = v
    return header, trees


def _child(c: int, node0: int, leaf0: int) -> int:
    """A tree-local child reference (node >= 0, leaf ~k) as a global one."""
    return node0 + c if c >= 0 else ~(leaf0 + ~c)


def from_lightgbm_text(text: str) -> TreeEnsemble:
    """The ensemble of a LightGBM binary model (`Booster.model_to_string()`)."""
    header, trees = _blocks(text)
    objective = header.get("objective", "")
    if not objective.startswith(("binary", "cross_entropy")):
        raise ValueError(f"only binary models are supported, got objective {objective!r}")
    sigmoid = 1.0
    for part in objective.split()[1:]:
        if part.startswith("sigmoid:"):
            sigmoid = float(part.split(":", 1)[1])
    names = header.get("feature_names", "").split()
    cols: dict[str, list] = {k: [] for k in ("feature", "threshold", "categorical", "default_left", "missing_type",
                                              "left", "right", "cat_lo", "cat_hi", "node_value")}
    roots, leaf_value, cat_bits = [], [], []
    for tree in trees:
        if tree.get("is_linear", "0") != "0":
            raise ValueError("linear trees are not supported")
        node0, leaf0 = len(cols["feature"]), len(leaf_value)
        leaves = _floats(tree["leaf_value"])
        leaf_value.extend(leaves)
        if int(tree["num_leaves"]) == 1:
            roots.append(~leaf0)
            continue
        roots.append(node0)
        decision = _ints(tree["decision_type"])
        thresholds = _floats(tree["threshold"])
        bounds = _ints(tree.get("cat_boundaries", ""))
        words = _ints(tree.get("cat_threshold", ""))
        word0 = len(cat_bits)
        cat_bits.extend(words)

        for f, d, thr in zip(_ints(tree["split_feature"]), decision, thresholds):
            is_cat = d & CATEGORICAL_MASK
            cols["feature"].append(f)
            cols["categorical"].append(is_cat)
            cols["default_left"].append(1 if d & DEFAULT_LEFT_MASK else 0)
            cols["missing_type"].append((d >> 2) & 3)
            cols["threshold"].append(thr)
            k = int(thr) if is_cat else 0
            cols["cat_lo"].append(word0 + bounds[k] if is_cat else 0)
            cols["cat_hi"].append(word0 + bounds[k + 1] if is_cat else 0)
        cols["left"].extend(_child(c, node0, leaf0) for c in _ints(tree["left_child"]))
        cols["right"].extend(_child(c, node0, leaf0) for c in _ints(tree["right_child"]))
        cols["node_value"].extend(_floats(tree["internal_value"]))
    i32, u8 = np.int32, np.uint8
    return TreeEnsemble(
        roots=np.array(roots, dtype=i32), feature=np.array(cols["feature"], dtype=i32),
        threshold=np.array(cols["threshold"], dtype=np.float64), categorical=np.array(cols["categorical"], dtype=u8),
        default_left=np.array(cols["default_left"], dtype=u8), missing_type=np.array(cols["missing_type"], dtype=u8),
        left=np.array(cols["left"], dtype=i32), right=np.array(cols["right"], dtype=i32),
        cat_lo=np.array(cols["cat_lo"], dtype=i32), cat_hi=np.array(cols["cat_hi"], dtype=i32),
        cat_bits=np.array(cat_bits, dtype=np.uint32), node_value=np.array(cols["node_value"], dtype=np.float64),
        leaf_value=np.array(leaf_value, dtype=np.float64), feature_names=names, sigmoid=sigmoid)
