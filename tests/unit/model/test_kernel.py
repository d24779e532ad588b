"""The Numba tree kernel against LightGBM's own predictions: a trained model and random small models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

lgb = pytest.importorskip("lightgbm")

from screener.model.kernel import probabilities, raw_scores, top_contributions  # noqa: E402
from screener.model.trees import TreeEnsemble, from_lightgbm_text  # noqa: E402


def _data(rng, n, n_features, n_categories, missing):
    X = rng.normal(size=(n, n_features))
    X[:, 0] = rng.integers(0, n_categories, n)
    X[rng.random((n, n_features)) < missing] = np.nan
    # missingness of column 2 carries signal, so trees split missing from present (`x <= inf` splits)
    y = (np.nan_to_num(X[:, 1]) + (np.nan_to_num(X[:, 0]) % 3 == 0) + np.isnan(X[:, 2]) + rng.normal(size=n) > 0.5)
    return X, y.astype(int)


def _hostile_inputs(rng, n, n_features, n_categories):
    """Inputs with missing values, zeros, infinities, unseen and negative categories, values far outside training."""
    X = rng.normal(size=(n, n_features)) * rng.choice([1.0, 1e6], size=(n, n_features))
    X[rng.random((n, n_features)) < 0.02] = np.inf
    X[rng.random((n, n_features)) < 0.02] = -np.inf
    X[:, 0] = rng.integers(-3, n_categories + 40, n)
    X[rng.random((n, n_features)) < 0.2] = np.nan
    X[rng.random((n, n_features)) < 0.05] = 0.0
    return X


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(1)
    X, y = _data(rng, 3000, 6, 12, 0.1)
    booster = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1, "seed": 1},
                        lgb.Dataset(X, y, categorical_feature=[0]), 60)
    return booster, from_lightgbm_text(booster.model_to_string())


def test_trained_model_matches_lightgbm_to_1e6_with_missing_and_unseen_categories(trained):
    booster, ensemble = trained
    X = _hostile_inputs(np.random.default_rng(2), 2000, 6, 12)
    assert np.abs(probabilities(ensemble, X) - booster.predict(X, num_threads=1)).max() < 1e-6
    expected = booster.predict(X, raw_score=True, num_threads=1)
    for kernel in ("bitvector", "walk"):
        assert np.abs(raw_scores(ensemble, X, kernel) - expected).max() < 1e-6
    # categorical and numerical splits, missing values with a default direction, missing-vs-present splits
    assert ensemble.categorical.any() and (ensemble.missing_type == 2).any() and np.isinf(ensemble.threshold).any()


def test_path_contributions_add_up_to_the_raw_score(trained):
    _, ensemble = trained
    X = _hostile_inputs(np.random.default_rng(3), 50, 6, 12)
    bias, feats, values = top_contributions(ensemble, X, np.arange(50), top_k=6)
    assert np.abs(bias + values.sum(axis=1) - raw_scores(ensemble, X)).max() < 1e-9
    assert np.allclose(bias, bias[0])  # the sum of the trees' root values, the same for every row
    assert np.all(np.diff(values, axis=1) <= 0)  # largest first
    assert all(sorted(row) == list(range(6)) for row in feats.tolist())
    # the top 2 are the two largest of the full set
    _, top2, v2 = top_contributions(ensemble, X, np.arange(50), top_k=2)
    assert np.array_equal(top2, feats[:, :2]) and np.array_equal(v2, values[:, :2])


def test_saved_ensemble_loads_identically(tmp_path, trained):
    _, ensemble = trained
    ensemble.save(tmp_path / "t.npz")
    again = TreeEnsemble.load(tmp_path / "t.npz")
    X = _hostile_inputs(np.random.default_rng(4), 200, 6, 12)
    assert np.array_equal(raw_scores(ensemble, X), raw_scores(again, X))
    assert again.feature_names == ensemble.feature_names


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), leaves=st.integers(2, 12), trees=st.integers(1, 8),
       categories=st.integers(2, 120), missing=st.sampled_from([0.0, 0.1, 0.5]),
       zero_as_missing=st.booleans(), use_missing=st.booleans())
def test_random_small_models_match_lightgbm(seed, leaves, trees, categories, missing, zero_as_missing, use_missing):
    rng = np.random.default_rng(seed)
    X, y = _data(rng, 400, 4, categories, missing)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    params = {"objective": "binary", "num_leaves": leaves, "min_data_in_leaf": 5, "min_data_per_group": 5,
              "cat_smooth": 1.0, "max_cat_to_onehot": 4, "zero_as_missing": zero_as_missing,
              "use_missing": use_missing, "verbose": -1, "num_threads": 1, "seed": seed % 1000}
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[0]), trees)
    ensemble = from_lightgbm_text(booster.model_to_string())
    Xt = _hostile_inputs(rng, 300, 4, categories)
    expected = booster.predict(Xt, raw_score=True, num_threads=1)
    assert np.abs(raw_scores(ensemble, Xt, "walk") - expected).max() < 1e-6
    if not zero_as_missing:  # the bitvector kernel takes every model without zero-as-missing splits here
        assert np.abs(raw_scores(ensemble, Xt, "bitvector") - expected).max() < 1e-6
