"""Rules of the same shape share code: constants and lookup columns are parameters, results unchanged.

Compile time follows the number of distinct condition shapes, not of rules (issue 11 item 7). The
kernel of a pack built from a few templates with random constants, lists and tables must still
agree with the reference interpreter on every hit, score and lane, in one chunk or split.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from screener.pipeline.batch import Vocabularies
from screener.rules import load_pack
from screener.rules.compiler import generate
from screener.rules.screener import PackScreener

from .helpers import make_batch, write_pack
from .test_properties import parcel_lists, thresholds

CONSTS = st.sampled_from(["0", "1", "2.5", "-1", "10", "100", "0.001", "1e6", "0.35"])
PREFIXES = st.lists(st.sampled_from(["85", "9301", "61", "", "3004", "8517"]), min_size=1, max_size=3)
TERMS = st.lists(st.sampled_from(["gift", "fake nike", "cocaine", "shoes", "Phone", "x"]), min_size=1, max_size=3)


@st.composite
def templated_rule(draw):
    """One rule from a handful of templates, with drawn constants and lists."""
    t = draw(st.integers(0, 5))
    a, b = draw(CONSTS), draw(CONSTS)
    num = draw(st.sampled_from(["declared_value", "freight", "paid_amount", "gross_weight_kg"]))
    country = draw(st.sampled_from(["origin_country", "departure_country", "seller_country"]))
    return [
        f"{num} > {a} and item_count >= {b}",
        f"any_item(startswith(hs_code, {draw(PREFIXES)!r}) and line_value_usd < {a})",
        f"any_item(contains_any(description, {draw(TERMS)!r}))",
        f"value_per_kg < {a} * min_item(band_min(hs_code, item_origin_country)) or freight > {b}",
        f"{country} in {draw(st.lists(st.sampled_from(['CN', 'HK', 'AF', 'XA', '']), min_size=1, max_size=3))!r}",
        f"(origin_country, departure_country) in table('routes', 'origin_country', 'departure_country') "
        f"and watchlisted(consignee_id) or gross_weight_kg < net_weight_kg * {a}",
    ][t]


def test_same_shape_rules_share_one_block(tmp_path):
    rules = [{"id": f"R{k}", "weight": 0.1, "condition": f"declared_value > {k} and any_item(startswith(hs_code, "
              f"'{8500 + k}'))"} for k in range(200)]
    rules += [{"id": f"Q{k}", "weight": 0.1, "condition": f"freight < {k}"} for k in range(100)]
    pack = load_pack(write_pack(tmp_path, rules))
    src = generate([(r.id, r.ir) for r in pack.active_rules])
    assert src.text.count("for q in range(SHAPES[") == 2
    assert "# shape 0: rules 0, 1, 2, 3, ..." in src.text
    code = src.text.split("def kernel")[1]
    assert "(150.0)" not in code and "PF[q, 0]" in code    # constants live in PF / PI, not in the code


def test_rules_reading_different_fields_share_a_shape(tmp_path):
    rules = [{"id": "A", "weight": 0.5, "condition": "declared_value > 10 and origin_country == 'CN'"},
             {"id": "B", "weight": 0.5, "condition": "freight > 20 and departure_country == 'HK'"},
             {"id": "C", "weight": 0.5, "condition": "freight > 20 or departure_country == 'HK'"}]
    pack = load_pack(write_pack(tmp_path, rules))
    src = generate([(r.id, r.ir) for r in pack.active_rules])
    assert src.shapes == 2 and "# shape 0: rules 0, 1" in src.text
    assert "COLS_N[PI[q, 0]][i]" in src.text and "COLS_S[PI[q, 1]][i]" in src.text


@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(conditions=st.lists(templated_rule(), min_size=2, max_size=24), batches=st.lists(parcel_lists(), min_size=1,
                                                                                       max_size=2),
       chunk=st.sampled_from([None, 2]))
def test_templated_packs_kernel_equals_interpreter(tmp_path_factory, scratch_cache, conditions, batches, chunk):
    rules = [{"id": f"T{k}", "weight": 0.05 + (k % 7) * 0.1, "condition": c} for k, c in enumerate(conditions)]
    yellow, red = thresholds(rules)
    path = write_pack(tmp_path_factory.mktemp("tpl"), rules, yellow=yellow, red=red)
    screener = PackScreener(load_pack(path), scratch_cache, chunk_rules=chunk)
    vocab = Vocabularies()
    for parcels_ in batches:
        batch = make_batch(parcels_, vocab)
        got, want = screener.screen(batch), screener.interpreter.screen(batch)
        assert np.array_equal(got.hits, want.hits), conditions
        assert np.array_equal(got.score, want.score, equal_nan=True), conditions
        assert np.array_equal(got.lane, want.lane) and np.array_equal(got.random, want.random), conditions
