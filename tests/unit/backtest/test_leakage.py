"""No leakage: a record's features and score never depend on outcomes from its future or within the label delay."""

from __future__ import annotations

import numpy as np
import pytest

from screener.backtest.replay import Replay
from screener.backtest.sources import Outcome
from screener.features.builder import FeatureBuilder
from screener.model.screener import ModelScreener
from screener.pipeline.screening import load_screener

from .helpers import generated_history

DELAY_DAYS = 2.0


def replay_features(source, batch_messages=1, delay_days=DELAY_DAYS):
    rules = load_screener("rules/default.toml")
    replay = Replay(ModelScreener(rules, FeatureBuilder(rule_features=rules.rule_ids)), delay_days,
                    batch_messages=batch_messages, keep_features=True)
    replay.run(source)
    s = replay.screened
    return s.parcel_ids, np.concatenate(s.features), s.concat("time_ms"), s.concat("score")


def with_flipped(source, pids):
    flipped = dict(source.outcomes)
    for p in pids:
        o = flipped[p]
        flipped[p] = Outcome(not o.illicit, o.revenue)
    return type(source)(source.messages, flipped, source.extras, source.files)


@pytest.fixture(scope="module")
def history():
    source = generated_history()
    return source, replay_features(source)


@pytest.mark.parametrize("position", [0.3, 0.6, 0.9])
def test_outcomes_in_the_future_or_within_the_delay_change_nothing(history, position):
    source, (pids, X, times, score) = history
    r = int(len(pids) * position)
    cutoff = times[r] - DELAY_DAYS * 86_400_000
    late = [p for p, t in zip(pids, times.tolist()) if t > cutoff]  # not yet visible at record r
    _, X2, _, score2 = replay_features(with_flipped(source, late))
    np.testing.assert_array_equal(X2[: r + 1], X[: r + 1])
    np.testing.assert_array_equal(score2[: r + 1], score[: r + 1])


def test_outcomes_older_than_the_delay_do_reach_the_features(history):
    # The check above could pass with statistics that ignore outcomes altogether: flipping visible ones must show.
    source, (pids, X, times, _) = history
    r = int(len(pids) * 0.9)
    cutoff = times[r] - DELAY_DAYS * 86_400_000
    visible = [p for p, t in zip(pids, times.tolist()) if t <= cutoff]
    assert visible
    _, X2, _, _ = replay_features(with_flipped(source, visible))
    assert not np.array_equal(np.nan_to_num(X2[r]), np.nan_to_num(X[r]))


def test_entity_counts_do_not_depend_on_batching():
    # Parcels of a batch count the earlier parcels of the same batch, so one message per batch and
    # four per batch give the same counts (a delay longer than the history keeps outcomes out of it).
    source = generated_history(manifests=12)
    a = replay_features(source, batch_messages=1, delay_days=1000.0)
    b = replay_features(source, batch_messages=4, delay_days=1000.0)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
