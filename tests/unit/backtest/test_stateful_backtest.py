"""The backtest replays history through consignee state and learns R11 rates from delayed outcomes only."""

from __future__ import annotations

from screener.backtest.replay import Replay
from screener.features.builder import FeatureBuilder
from screener.model.screener import ModelScreener
from screener.rules import load_pack_screener
from screener.state.screener import StatefulScreener
from tests.unit.backtest.helpers import generated_history


def replay(delay_days: float) -> tuple[Replay, StatefulScreener]:
    rules = StatefulScreener(load_pack_screener("rules/stateful.toml"))
    r = Replay(ModelScreener(rules, FeatureBuilder()), label_delay_days=delay_days, batch_messages=2)
    r.run(generated_history(manifests=30, parcels=40, hours_apart=12.0, consignees=20))
    return r, rules


def test_outcomes_reach_the_rates_after_the_label_delay_and_not_before():
    soon, soon_rules = replay(1.0)
    never, never_rules = replay(1000.0)       # history spans 15 days: no outcome is visible in time
    assert soon_rules.risk.kept > 0
    assert never_rules.risk.kept == 0
    # Consignee state works in the replay: with 20 consignees over 15 days, windows hold several parcels.
    hits = soon.screened.concat("hits")
    r2 = soon.screener.rule_ids.index("R2_SPLIT_SHIPMENT_CN_9610")
    assert hits[:, r2].any()
