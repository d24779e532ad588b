"""The model behind the Screener seam: lanes never below the rules', MODEL reasons with path contributions,
the worker's loader, and a bad model directory."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from screener.model.artifact import ModelError, load_model
from screener.model.screener import MODEL_RULE_ID, ModelScreener, builder_for, load_model_screener
from screener.pipeline.decode import RawMessage
from screener.pipeline.processor import BatchProcessor
from screener.pipeline.screening import load_screener

from ..backtest.helpers import generated_history

pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from screener.model.train import train

    out = tmp_path_factory.mktemp("model")
    history = generated_history(manifests=30, parcels=80)
    train(history, load_screener("rules/default.toml"), out, num_trees=15, label_delay_days=1.0)
    return out, history


def test_lanes_never_drop_below_the_rules_and_model_flags_are_explained(model_dir):
    out, history = model_dir
    rules = load_screener("rules/default.toml")
    screener = load_model_screener(str(out), rules)
    assert screener.ruleset_id == "default+model" and screener.rule_ids[-1] == MODEL_RULE_ID
    raws = [RawMessage(m.value) for m in history.messages[-5:]]
    model_out = BatchProcessor(screener).process(raws)
    rules_out = BatchProcessor(rules).process(raws)

    def decisions(result):
        return {d["parcel_id"]: d for kind, _, v in result.records if kind == "decisions"
                for d in orjson.loads(v)["decisions"]}

    with_model, alone = decisions(model_out), decisions(rules_out)
    order = {"green": 0, "yellow": 1, "red": 2}
    assert with_model.keys() == alone.keys()
    assert all(order[with_model[p]["lane"]] >= order[alone[p]["lane"]] for p in alone)
    flagged = [d for d in with_model.values() if any(r["rule_id"] == MODEL_RULE_ID for r in d["reasons"])]
    assert flagged, "the model flags the top of the ranking"
    features = set(load_model(out).manifest["features"])
    for d in flagged:
        reason = next(r for r in d["reasons"] if r["rule_id"] == MODEL_RULE_ID)
        assert d["lane"] != "green" and reason["values"]["probability"] == pytest.approx(d["score"], abs=1e-6)
        top = reason["values"]["top_features"]
        assert top and all(t["feature"] in features and t["contribution"] > 0 for t in top)


def test_the_worker_starts_from_the_end_of_training_statistics(model_dir):
    out, _ = model_dir
    model = load_model(out)
    fresh = builder_for(model, retain=False)
    loaded = load_model_screener(str(out), load_screener("rules/default.toml")).features
    assert fresh.stats.outcomes == 0
    assert loaded.stats.outcomes == model.entity_state["global"][0] > 0
    importer = loaded.stats.tables["importer"]
    assert len(importer) > 0 and importer.labelled[: len(importer)].sum() > 0


def test_a_directory_that_is_not_a_model_is_one_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not a model directory"):
        load_model(tmp_path)


def test_without_a_model_the_rules_result_is_returned_unchanged(model_dir):
    _, history = model_dir
    rules = load_screener("rules/default.toml")
    seen = []
    screener = ModelScreener(rules, builder_for(load_model(model_dir[0]), retain=True),
                             on_screen=lambda b, X, r: seen.append(X.shape))
    raws = [RawMessage(m.value) for m in history.messages[:2]]
    a = BatchProcessor(screener).process(raws).outcome
    b = BatchProcessor(rules).process(raws).outcome
    assert a.lanes == b.lanes and seen and seen[0][1] == len(screener.features.feature_names)
    assert np.all(np.array([s[0] for s in seen]) > 0)
