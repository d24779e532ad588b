"""A rule pack's screener plus a learned model, behind the same `Screener` seam the worker drives.

Lane and score (docs/model.md): the model reads the pack's rule hits as features (so it learns how far
to trust each rule on the data), and its probability `p` is the parcel's score. `p` gives a model lane
(red when p >= manifest `lanes.red`, yellow when p >= `lanes.yellow`); the parcel's lane is the higher
of the rules' lane (thresholds, floors, random picks: never lowered) and the model lane. A model lane above green sets the
hit bit of the pseudo-rule `MODEL`, so the parcel is explained: its reason carries p and the top
features by path contribution, computed by the Numba kernel for flagged parcels only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from screener.features.builder import RULE_PREFIX, FeatureBuilder
from screener.features.entity import EntityStats
from screener.model.artifact import ModelError, SavedModel, load_model
from screener.model.kernel import probabilities, top_contributions
from screener.pipeline.batch import LANE_GREEN, LANE_RED, LANE_YELLOW, ParcelBatch, Reason, ScreenResult
from screener.pipeline.screening import Screener

MODEL_RULE_ID = "MODEL"
TOP_FEATURES = 3


@dataclass
class ModelScreenResult(ScreenResult):
    """A ScreenResult with the model's probability and, for model-flagged parcels, its top contributions."""

    probability: np.ndarray = field(default_factory=lambda: np.zeros(0))
    contributions: dict = field(default_factory=dict)  # row -> [(feature, value, contribution)]


class ModelScreener:
    """Screens with the rules, computes the batch's features, and (with a model) joins the model's score.

    Without a model it returns the rules' result unchanged: training uses it to compute features exactly
    as the stream does. `on_screen(batch, features, result)` observes every screened batch.
    """

    def __init__(self, rules: Screener, features: FeatureBuilder, model: SavedModel | None = None,
                 on_screen=None) -> None:
        self.rules = rules
        self.features = features
        self.model = model
        self.on_screen = on_screen
        self.rules_rule_ids = list(getattr(rules, "rule_ids", []))
        self.rule_ids = self.rules_rule_ids + ([MODEL_RULE_ID] if model is not None else [])
        self.ruleset_id = rules.ruleset_id if model is None else f"{rules.ruleset_id}+model"
        self.version = rules.version if model is None else f"{rules.version}+{model.version}"
        self.hash = rules.hash if model is None else hashlib.sha256(
            f"{rules.hash}:{model.manifest['trees_sha256']}".encode()).hexdigest()[:16]
        if model is not None:
            self.yellow = float(model.manifest["lanes"]["yellow"])
            self.red = float(model.manifest["lanes"]["red"])
            self.categorical = set(model.manifest["categorical_features"])

    def screen(self, batch: ParcelBatch) -> ScreenResult:
        """Rules, features and (with a model) the model's probability, joined into lane and score."""
        base = self.rules.screen(batch)
        X = self.features.build(batch, base.hits, self.rules_rule_ids)
        result = base if self.model is None else self._join(X, base)
        if self.on_screen is not None:
            self.on_screen(batch, X, result)
        return result

    def _join(self, X: np.ndarray, base: ScreenResult) -> ModelScreenResult:
        ens = self.model.ensemble
        p = probabilities(ens, X)
        model_lane = np.where(p >= self.red, LANE_RED, np.where(p >= self.yellow, LANE_YELLOW, LANE_GREEN))
        bit = len(self.rule_ids) - 1
        words = max(base.hits.shape[1], bit // 64 + 1)
        hits = np.zeros((len(p), words), dtype=np.uint64)
        hits[:, :base.hits.shape[1]] = base.hits
        flagged = np.flatnonzero(model_lane > LANE_GREEN)
        hits[flagged, bit // 64] |= np.uint64(1) << np.uint64(bit % 64)
        contributions = {}
        if len(flagged):
            _, feats, values = top_contributions(ens, X, flagged, TOP_FEATURES)
            names = ens.feature_names
            for row, fs, vs in zip(flagged.tolist(), feats.tolist(), values.tolist()):
                contributions[row] = [(names[f], self._shown(names[f], X[row, f]), v) for f, v in zip(fs, vs) if f >= 0 and v > 0]
        return ModelScreenResult(lane=np.maximum(base.lane, model_lane).astype(np.uint8),
                                 score=p, hits=hits, random=base.random,
                                 probability=p, contributions=contributions)

    def _shown(self, name: str, x: float):
        """A feature value as an inspector reads it: the category string for categoricals."""
        if np.isnan(x):
            return None
        if name in self.categorical:
            values = self.features.categories[name].values
            return values[int(x)] if 0 <= int(x) < len(values) else None
        return round(float(x), 6)

    def explain(self, batch: ParcelBatch, result: ScreenResult, i: int) -> list[Reason]:
        """The rules' reasons, then the model's (probability and top feature contributions) when it flagged i."""
        return self._with_model(result, i, self.rules.explain(batch, result, i))

    def explain_many(self, batch: ParcelBatch, result: ScreenResult, rows: np.ndarray) -> list[list[Reason]]:
        """Reasons of many parcels: the rules' bulk explainer when they have one, plus the model's reasons."""
        many = getattr(self.rules, "explain_many", None)
        base = many(batch, result, rows) if many is not None else [
            self.rules.explain(batch, result, int(i)) for i in rows.tolist()]
        return [self._with_model(result, int(i), reasons) for i, reasons in zip(rows.tolist(), base)]

    def _with_model(self, result: ScreenResult, i: int, reasons: list[Reason]) -> list[Reason]:
        if isinstance(result, ModelScreenResult) and i in result.contributions:
            p = float(result.probability[i])
            top = [{"feature": f, "value": v, "contribution": round(c, 6)} for f, v, c in result.contributions[i]]
            reasons = [*reasons, Reason(MODEL_RULE_ID, p,
                                        {"probability": round(p, 6), "top_features": top},
                                        f"learned model {self.model.version}: probability {p:.3f} "
                                        f"(yellow from {self.yellow:.3f}, red from {self.red:.3f})")]
        return reasons


def builder_for(model: SavedModel, retain: bool) -> FeatureBuilder:
    """A feature builder with the model's categories and a fresh entity state (backtests replay from scratch)."""
    rules = [f.removeprefix(RULE_PREFIX) for f in model.manifest["features"] if f.startswith(RULE_PREFIX)]
    builder = FeatureBuilder(categories=model.manifest["categories"], stats=EntityStats(retain=retain),
                             rule_features=rules)
    if builder.feature_names != model.manifest["features"]:
        raise ModelError("the model was trained on other features than this screener computes; retrain it")
    return builder


def load_model_screener(directory: str, rules: Screener) -> ModelScreener:
    """The worker's screener for `--model DIR`: entity statistics start from the model's end-of-training state.

    The worker gets no inspection outcomes yet, so it keeps no parcels for them (retain=False).
    """
    model = load_model(directory)
    builder = builder_for(model, retain=False)
    builder.stats.restore(model.entity_state)
    screener = ModelScreener(rules, builder, model)
    warm = np.zeros((1, model.ensemble.n_features))  # compile both kernels before joining the group
    probabilities(model.ensemble, warm)
    top_contributions(model.ensemble, warm, np.zeros(1, dtype=np.int64), TOP_FEATURES)
    return screener
