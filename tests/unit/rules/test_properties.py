"""Kernel == reference interpreter on every hit, score, lane and random pick, for generated packs and parcels.

Conditions are generated as rule text over the whole language (so the parser is exercised
too), parcels as raw columns with NaNs, empty strings, zero items, infinities and dates on
validity boundaries. Each generated pack compiles a kernel (about a second), so the pack
property runs few examples with many parcels each; a fixed "kitchen sink" pack then takes
many generated batches cheaply.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from screener.pipeline.batch import Vocabularies
from screener.rules import load_pack
from screener.rules.screener import PackScreener

from .helpers import make_batch, write_pack

# --- rule text ---------------------------------------------------------------------------------
PARCEL_NUMS = ["gross_weight_kg", "net_weight_kg", "declared_value", "freight", "paid_amount", "tax_withheld",
               "fx_usd", "value_usd", "value_per_kg", "weight_kg", "item_count", "total_quantity", "items_value",
               "items_value_usd", "paid_usd"]
ITEM_NUMS = ["quantity", "unit_price", "line_value", "unit_price_usd", "line_value_usd"]
PARCEL_STRS = ["origin_country", "departure_country", "seller_country", "currency", "consignee_id", "seller_id",
               "declaration_type"]
ITEM_STRS = ["hs_code", "description", "unit", "item_origin_country"]
CONSTS = ["0", "1", "2.5", "-1", "10", "100", "0.001", "1e6"]
COUNTRIES = ["CN", "HK", "AF", "XA", "TR", "VN", "US", ""]
HS = ["8517130000", "8504403090", "6109100000", "9301000000", "3004900000", "1234", ""]
WORDS = ["gift", "sample", "spare", "parts", "fake", "nike", "cocaine", "shoes", "Phone", "x"]
STR_LITS = {"origin_country": COUNTRIES, "departure_country": COUNTRIES, "seller_country": COUNTRIES,
            "item_origin_country": COUNTRIES, "currency": ["USD", "CNY", "EUR", "GBP", ""],
            "consignee_id": ["C1", "C2", "C3", ""], "seller_id": ["S1", "S2", ""], "hs_code": HS,
            "declaration_type": ["CN_9610", "EU_H7", ""], "unit": ["pcs", "set", ""],
            "description": ["gift", "fake nike", "shoes", ""]}


def lit(value: str) -> str:
    return repr(value)


@st.composite
def num_expr(draw, item: bool, depth: int):
    options = ["field", "const"] + (["arith", "abs", "minmax", "neg", "strnum"] if depth > 0 else [])
    if depth > 0 and not item:
        options.append("agg")
    if item:
        options.append("band")
    kind = draw(st.sampled_from(options))
    if kind == "field":
        return draw(st.sampled_from(PARCEL_NUMS + (ITEM_NUMS if item else [])))
    if kind == "const":
        return draw(st.sampled_from(CONSTS))
    if kind == "arith":
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        return f"({draw(num_expr(item, depth - 1))} {op} {draw(num_expr(item, depth - 1))})"
    if kind == "abs":
        return f"abs({draw(num_expr(item, depth - 1))})"
    if kind == "neg":
        return f"-{draw(num_expr(item, depth - 1))}"
    if kind == "minmax":
        args = draw(st.lists(num_expr(item, depth - 1), min_size=2, max_size=3))
        return f"{draw(st.sampled_from(['min', 'max']))}({', '.join(args)})"
    if kind == "strnum":
        field = draw(st.sampled_from(PARCEL_STRS + (ITEM_STRS if item else [])))
        return f"{draw(st.sampled_from(['length', 'word_count']))}({field})"
    if kind == "band":
        origin = draw(st.sampled_from(["", ", item_origin_country", ", origin_country"]))
        return f"{draw(st.sampled_from(['band_min', 'band_max']))}(hs_code{origin})"
    agg = draw(st.sampled_from(["sum_items", "min_item", "max_item", "count_items"]))
    body = draw(bool_expr(True, depth - 1)) if agg == "count_items" else draw(num_expr(True, depth - 1))
    return f"{agg}({body})"


@st.composite
def bool_expr(draw, item: bool, depth: int):
    options = ["cmp", "streq", "strin", "strfn", "missing", "pair", "same", "const", "watch"]
    if depth > 0:
        options += ["and", "or", "not", "cmp"]
        if not item:
            options += ["any", "all"]
    kind = draw(st.sampled_from(options))
    strs = PARCEL_STRS + (ITEM_STRS if item else [])
    if kind == "cmp":
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        return f"{draw(num_expr(item, min(depth, 2)))} {op} {draw(num_expr(item, min(depth, 2)))}"
    if kind == "streq":
        field = draw(st.sampled_from(strs))
        return f"{field} {draw(st.sampled_from(['==', '!=']))} {lit(draw(st.sampled_from(STR_LITS[field])))}"
    if kind == "strin":
        field = draw(st.sampled_from(strs))
        values = draw(st.lists(st.sampled_from(STR_LITS[field]), min_size=1, max_size=3))
        neg = draw(st.sampled_from(["in", "not in"]))
        return f"{field} {neg} [{', '.join(map(lit, values))}]"
    if kind == "strfn":
        fn = draw(st.sampled_from(["startswith", "contains_any", "only_terms"]))
        field = draw(st.sampled_from(strs))
        lst = draw(st.sampled_from([
            "['85', '9301', '61', '']", "'851713'", "['C', 'S1', 'U']",
            "table('restricted_hs', 'hs_prefix')", "table('words', 'term')",
            "table('terms', 'term')" if fn != "only_terms" else "['gift', 'spare parts']",
            "['fake nike', 'cocaine', 'Phone']"]))
        return f"{fn}({field}, {lst})"
    if kind == "missing":
        field = draw(st.sampled_from(strs + PARCEL_NUMS[:6] + (ITEM_NUMS[:3] if item else [])))
        return f"{draw(st.sampled_from(['missing', 'present']))}({field})"
    if kind == "pair":
        a = draw(st.sampled_from(["origin_country", "seller_country"] + (["item_origin_country"] if item else [])))
        return f"({a}, departure_country) in table('routes', 'origin_country', 'departure_country')"
    if kind == "same":
        a, b = draw(st.sampled_from([("origin_country", "departure_country"), ("seller_id", "consignee_id"),
                                     ("currency", "origin_country")] + ([("item_origin_country", "origin_country"),
                                                                          ("description", "unit")] if item else [])))
        return f"{a} {draw(st.sampled_from(['==', '!=']))} {b}"
    if kind == "watch":
        return f"watchlisted({draw(st.sampled_from(['consignee_id', 'seller_id']))})"
    if kind == "const":
        return draw(st.sampled_from(["True", "False"]))
    if kind in ("and", "or"):
        args = draw(st.lists(bool_expr(item, depth - 1), min_size=2, max_size=3))
        return "(" + f" {kind} ".join(args) + ")"
    if kind == "not":
        return f"not ({draw(bool_expr(item, depth - 1))})"
    return f"{'any_item' if kind == 'any' else 'all_items'}({draw(bool_expr(True, depth - 1))})"


DATES = ["", "2026-01-01", "2026-06-30", "2026-11-11", "2027-01-01"]


@st.composite
def rule_specs(draw, count):
    rules = []
    for k in range(count):
        r = {"id": f"G{k}", "weight": draw(st.sampled_from([0.05, 0.2, 0.35, 0.5, 0.8, 0.99, 1.0])),
             "condition": draw(bool_expr(False, 3))}
        if draw(st.booleans()):
            r["lane_floor"] = draw(st.sampled_from(["yellow", "red", "green"]))
        lo, hi = sorted(draw(st.lists(st.sampled_from(DATES[1:]), min_size=2, max_size=2)))
        if draw(st.integers(0, 3)) == 0 and lo < hi:
            r["valid_from"], r["valid_until"] = f'"{lo}"', f'"{hi}"'
        if draw(st.integers(0, 9)) == 0:
            r["enabled"] = False
        rules.append(r)
    if all(r.get("enabled") is False for r in rules):
        rules[0]["enabled"] = True
    return rules


# --- parcels -----------------------------------------------------------------------------------
NUMBERS = st.sampled_from([None, 0.0, -0.0, 1.0, 2.5, 10.0, 100.0, 5000.0, 0.35, 1e-9, -3.0, float("inf"), 1e300])
TIMES = ["2025-12-31T23:59:59.999Z", "2026-01-01T00:00:00Z", "2026-03-31T23:59:59.999Z", "2026-06-30T12:00:00Z",
         "2026-11-11T00:00:00Z", "2026-12-31T23:59:59.999Z", "2027-01-01T00:00:00Z"]
DESCRIPTIONS = st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join)


@st.composite
def items(draw):
    return {"hs_code": draw(st.sampled_from(HS + [None])), "description": draw(DESCRIPTIONS),
            "unit": draw(st.sampled_from(["pcs", "set", None])), "origin_country": draw(st.sampled_from(COUNTRIES)),
            "quantity": draw(NUMBERS), "unit_price": draw(NUMBERS), "line_value": draw(NUMBERS)}


@st.composite
def parcels(draw, k):
    p = {"parcel_id": f"P{k}-{draw(st.integers(0, 10**6))}", "event_time": draw(st.sampled_from(TIMES)),
         "items": draw(st.lists(items(), max_size=4))}
    for f in ("origin_country", "departure_country", "seller_country"):
        p[f] = draw(st.sampled_from(COUNTRIES))
    for f in ("currency", "consignee_id", "seller_id", "declaration_type"):
        p[f] = draw(st.sampled_from(STR_LITS[f]))
    for f in ("gross_weight_kg", "net_weight_kg", "declared_value", "freight", "paid_amount", "tax_withheld"):
        p[f] = draw(NUMBERS)
    return p


@st.composite
def parcel_lists(draw, min_size=1, max_size=40):
    n = draw(st.integers(min_size, max_size))
    return [draw(parcels(k)) for k in range(n)]


def check_equal(screener: PackScreener, batch) -> None:
    got = screener.screen(batch)
    want = screener.interpreter.screen(batch)
    for i in range(batch.n):
        ctx = (screener.pack.rules, batch.parcel_ids[i])
        assert np.array_equal(got.hits[i], want.hits[i]), ctx
        assert got.score[i] == want.score[i] or (np.isnan(got.score[i]) and np.isnan(want.score[i])), ctx
        assert got.lane[i] == want.lane[i], ctx
        assert got.random[i] == want.random[i], ctx


def thresholds(rules) -> tuple[float, float]:
    keep = 1.0
    for r in rules:
        if r.get("enabled", True):
            keep *= 1.0 - r["weight"]
    # Rounded down: a threshold rounded up past the best reachable score is refused by the pack check.
    best = math.floor((1.0 - keep) * 1e6) / 1e6
    return min(0.3, best), min(0.6, best)


# No shrinking here: every shrink step compiles another kernel (minutes); the failing pack and
# parcels are printed as generated.
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(rules=st.integers(1, 8).flatmap(rule_specs), batches=st.lists(parcel_lists(), min_size=1, max_size=3),
       rate=st.sampled_from([0.0, 0.3, 1.0]), chunk=st.sampled_from([None, 3]))
def test_generated_packs_kernel_equals_interpreter(tmp_path_factory, scratch_cache, rules, batches, rate, chunk):
    yellow, red = thresholds(rules)
    path = write_pack(tmp_path_factory.mktemp("gen"), rules, yellow=yellow, red=red, rate=rate, seed=5)
    # chunk=3 splits the pack into several chunk functions, as big packs are compiled.
    screener = PackScreener(load_pack(path), scratch_cache, chunk_rules=chunk)
    vocab = Vocabularies()                 # one worker vocabulary across batches: lookups grow incrementally
    for parcels_ in batches:
        check_equal(screener, make_batch(parcels_, vocab))


KITCHEN_SINK = [
    "value_per_kg < min_item(band_min(hs_code, item_origin_country)) or value_per_kg > max_item(band_max(hs_code))",
    "any_item(contains_any(description, table('terms', 'term')) and not only_terms(description, ['gift', 'shoes']))",
    "(origin_country, departure_country) in table('routes', 'origin_country', 'departure_country')",
    "watchlisted(consignee_id) or watchlisted(seller_id)",
    "abs(paid_amount - (declared_value + max(freight, 0) + max(tax_withheld, 0))) > 0.05 * paid_amount",
    "count_items(startswith(hs_code, table('restricted_hs', 'hs_prefix')) or length(description) < 4) >= 1",
    "origin_country != departure_country and seller_id != consignee_id and currency in ['USD', 'EUR']",
    "all_items(item_origin_country == origin_country) and item_count > 1 and total_quantity / item_count > 2",
    "missing(net_weight_kg) or gross_weight_kg < net_weight_kg or -items_value_usd < -1000",
    "sum_items(line_value_usd) / max(weight_kg, 0.001) >= 50 and word_count(declaration_type) == 1",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(batches=st.lists(parcel_lists(max_size=25), min_size=1, max_size=3))
def test_kitchen_sink_pack_kernel_equals_interpreter(kitchen_sink, batches):
    vocab = Vocabularies()
    for parcels_ in batches:
        check_equal(kitchen_sink, make_batch(parcels_, vocab))


@pytest.fixture(scope="module")
def kitchen_sink(tmp_path_factory, scratch_cache):
    rules = [{"id": f"K{k}", "weight": w, "condition": c, **({"lane_floor": "red"} if k == 3 else {}),
              **({"valid_from": '"2026-01-01"', "valid_until": '"2026-11-11"'} if k == 5 else {})}
             for k, (c, w) in enumerate(zip(KITCHEN_SINK, [0.6, 0.9, 0.5, 0.75, 0.5, 0.3, 0.2, 0.35, 0.4, 1.0]))]
    path = write_pack(tmp_path_factory.mktemp("sink"), rules, yellow=0.3, red=0.7, rate=0.1, seed=3)
    return PackScreener(load_pack(path), scratch_cache)
