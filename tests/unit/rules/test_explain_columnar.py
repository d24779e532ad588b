"""explain_many (numpy columns over the explained parcels) == the reference interpreter's trace, parcel by parcel.

The interpreter stays the oracle: for generated packs and parcels (NaN, inf, -0.0, missing fields,
empty strings, zero items, dates on validity boundaries; see test_properties.py), every reason's
values, `because` lines, matched terms, witness item, wording and contribution must equal what the
trace of that one parcel gives, and every parcel-level node the interpreter evaluated must have the
same value in the columns.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from screener.pipeline.batch import LANE_NAMES, Vocabularies
from screener.rules import ir, load_pack
from screener.rules.columnar import PARCEL, VECTOR_RANKS, Columns
from screener.rules.explain import explain_rule, noisy_or_contributions, noisy_or_shares
from screener.rules.reasons import reason_text
from screener.rules.screener import PackScreener

from .helpers import make_batch, write_pack
from .test_properties import KITCHEN_SINK, items, parcel_lists, parcels, rule_specs, thresholds


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


def _parcel_level_nodes(node: ir.Node):
    """Nodes evaluated once per parcel (quantifier bodies excluded: the trace keeps only their last item)."""
    yield node
    if not isinstance(node, ir.Quant):
        for child in ir.children(node):
            yield from _parcel_level_nodes(child)


def expected_reasons(screener: PackScreener, batch, result, i: int) -> list[tuple]:
    """(rule_id, contribution, values, text) of parcel i from the interpreter's trace: the oracle."""
    fired = screener.fired_rules(result, i)
    shares = noisy_or_contributions([screener.rules[r].weight for r in fired])
    currency = batch.string_value("currency", i)
    n_items = int(batch.item_offsets[i + 1] - batch.item_offsets[i])
    out = []
    for r, share in zip(fired, shares):
        rule = screener.rules[r]
        hit, trace = screener.interpreter.trace(batch, i, rule)
        assert hit, (rule.id, batch.parcel_ids[i])
        values, words = explain_rule(rule, trace, True, currency, n_items)
        floor = LANE_NAMES[rule.lane_floor] if rule.lane_floor else None
        if floor:
            values["lane_floor"] = floor
        out.append((rule.id, share, values, reason_text(rule.description, words, floor)))
    return out


def check_explanations(screener: PackScreener, batch, order: np.random.Generator) -> None:
    result = screener.screen(batch)
    explained = np.flatnonzero(result.hits.any(axis=1) | result.random)
    # Any subset, any order, parcels without hits included: each gets its own reasons.
    indices = order.permutation(batch.n)[: max(1, batch.n - 2)]
    got = screener.explain_many(batch, result, indices)
    assert len(got) == len(indices)
    for i, reasons in zip(indices.tolist(), got):
        rule_reasons = [r for r in reasons if r.rule_id != "random"]
        want = expected_reasons(screener, batch, result, i)
        ctx = (batch.parcel_ids[i], [r.id for r in screener.rules])
        assert [r.rule_id for r in rule_reasons] == [w[0] for w in want], ctx
        for r, (rule_id, share, values, text) in zip(rule_reasons, want):
            assert r.contribution == round(share, 6), (ctx, rule_id)   # a Reason holds the wire value
            assert r.values == values, (ctx, rule_id)
            assert r.text == text, (ctx, rule_id)
        assert [r.rule_id for r in reasons if r.rule_id == "random"] == ["random"] * bool(result.random[i]), ctx
        assert bool(reasons) == (i in set(explained.tolist())), ctx
    check_node_values(screener, batch, indices)


def check_node_values(screener: PackScreener, batch, indices: np.ndarray) -> None:
    """Every parcel-level node of every rule: columns == interpreter trace, wherever the trace evaluated it."""
    cols = Columns(batch, indices)
    for rule in screener.rules:
        cols.value(rule.ir)
        for p, i in enumerate(indices.tolist()):
            _, trace = screener.interpreter.trace(batch, i, rule)
            for node in _parcel_level_nodes(rule.ir):
                if id(node) not in trace:
                    continue                 # short-circuited by the interpreter
                arr = cols.values[(id(node), PARCEL)]
                got = cols.strings(node)[int(arr[p])] if isinstance(node, ir.StrField) else arr[p].item()
                assert _same(got, trace[id(node)]), (rule.id, node.label or type(node).__name__, got,
                                                     trace[id(node)], batch.parcel_ids[i])


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(rules=st.integers(1, 6).flatmap(rule_specs), batches=st.lists(parcel_lists(), min_size=1, max_size=2),
       rate=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 2**32 - 1))
def test_generated_packs_explain_many_equals_interpreter(tmp_path_factory, scratch_cache, rules, batches, rate,
                                                         seed):
    yellow, red = thresholds(rules)
    path = write_pack(tmp_path_factory.mktemp("gen"), rules, yellow=yellow, red=red, rate=rate, seed=5)
    screener = PackScreener(load_pack(path), scratch_cache)
    vocab = Vocabularies()
    order = np.random.default_rng(seed)
    for parcels_ in batches:
        check_explanations(screener, make_batch(parcels_, vocab), order)


@pytest.fixture(scope="module")
def sink(tmp_path_factory, scratch_cache):
    rules = [{"id": f"K{k}", "weight": w, "condition": c, **({"lane_floor": "red"} if k == 3 else {})}
             for k, (c, w) in enumerate(zip(KITCHEN_SINK, [0.6, 0.9, 0.5, 0.75, 0.5, 0.3, 0.2, 0.35, 0.4, 1.0]))]
    rules.append({"id": "NOT", "weight": 0.3,
                  "condition": "not (any_item(startswith(hs_code, ['85', '9301'])) or missing(freight))"})
    rules.append({"id": "MINMAX", "weight": 0.3,   # ties of 0.0 and -0.0: the first item's sign must win
                  "condition": "min_item(line_value) <= 0 or max_item(quantity) >= 0 or count_items(quantity > 1) > 3"})
    path = write_pack(tmp_path_factory.mktemp("sink"), rules, yellow=0.3, red=0.7, rate=0.1, seed=3)
    return PackScreener(load_pack(path), scratch_cache)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(batches=st.lists(parcel_lists(max_size=25), min_size=1, max_size=2), seed=st.integers(0, 2**32 - 1))
def test_kitchen_sink_explain_many_equals_interpreter(sink, batches, seed):
    vocab = Vocabularies()
    order = np.random.default_rng(seed)
    for parcels_ in batches:
        check_explanations(sink, make_batch(parcels_, vocab), order)


HOSTILE = [
    {"parcel_id": "nan", "declared_value": float("nan"), "net_weight_kg": float("nan"), "items": []},
    {"parcel_id": "inf", "declared_value": float("inf"), "net_weight_kg": 0.0, "gross_weight_kg": 0.0,
     "paid_amount": float("inf"), "currency": "USD", "items": [{"hs_code": "", "description": ""}]},
    {"parcel_id": "neg0", "declared_value": -0.0, "net_weight_kg": -0.0, "gross_weight_kg": 1e-9,
     "currency": "CNY", "items": [{"hs_code": "9301000000", "description": "", "line_value": -0.0}]},
    {"parcel_id": "empty"},
    {"parcel_id": "all", "consignee_id": "C2", "origin_country": "AF", "departure_country": "XA",
     "currency": "EUR", "declared_value": 1e300, "paid_amount": 1e300, "net_weight_kg": 1e-300,
     "items": [{"hs_code": "8517130000", "description": "fake nike cocaine gift", "quantity": float("inf"),
                "unit_price": float("nan"), "line_value": 1e300}] * 3},
]


def test_hostile_values_explain_like_the_interpreter(sink):
    batch = make_batch(HOSTILE)
    check_explanations(sink, batch, np.random.default_rng(0))
    assert any(sink.explain_many(batch, sink.screen(batch), np.arange(batch.n)))


def test_shares_for_many_parcels_equal_the_per_parcel_function():
    weights = [0.05, 0.5, 1.0, 0.99, 0.0, 1.0, 0.3]
    rng = np.random.default_rng(1)
    fired = rng.random((len(weights), 300)) < 0.4
    got = noisy_or_shares(weights, fired)
    for p in range(fired.shape[1]):
        idx = np.flatnonzero(fired[:, p]).tolist()
        want = noisy_or_contributions([weights[r] for r in idx])
        assert got[idx, p].tolist() == want
        assert not got[~fired[:, p], p].any()


def test_explain_is_explain_many_of_one_parcel(sink):
    batch = make_batch(HOSTILE)
    result = sink.screen(batch)
    many = sink.explain_many(batch, result, np.arange(batch.n))
    for i in range(batch.n):
        assert [r.as_dict() for r in sink.explain(batch, result, i)] == [r.as_dict() for r in many[i]]
    assert sink.explain_many(batch, result, np.array([], dtype=np.int64)) == []


@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(long=st.lists(parcels(0).flatmap(lambda p: st.lists(items(), min_size=VECTOR_RANKS - 2,
                                                             max_size=VECTOR_RANKS + 40).map(
    lambda its: {**p, "items": its})), min_size=1, max_size=4), short=parcel_lists(max_size=5))
def test_parcels_with_many_items_explain_like_the_interpreter(sink, long, short):
    """Items past VECTOR_RANKS are reduced by a loop: same values, same deciding item."""
    batch = make_batch([{**p, "parcel_id": f"L{k}"} for k, p in enumerate(long)] + short)
    assert int(np.diff(batch.item_offsets).max()) >= VECTOR_RANKS - 2
    check_explanations(sink, batch, np.random.default_rng(len(long)))
