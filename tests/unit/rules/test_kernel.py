"""The compiled kernel: scoring, lanes, floors, validity dates, random selection, hit masks, explanations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.kernels.hashing import seeded_uniform_reference
from screener.pipeline.batch import LANE_GREEN, LANE_RED, LANE_YELLOW
from screener.pipeline.columns import BatchBuilder
from screener.pipeline.decode import RawMessage, decode
from screener.rules import load_pack, load_pack_screener
from screener.rules.examples import run_examples
from screener.rules.explain import noisy_or_contributions
from screener.rules.screener import PackScreener

from .helpers import make_batch, write_pack

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PACK = ROOT / "rules" / "default.toml"


def assert_same(a, b):
    assert np.array_equal(a.hits, b.hits)
    assert np.array_equal(a.score, b.score)
    assert np.array_equal(a.lane, b.lane)
    assert np.array_equal(a.random, b.random)


@pytest.fixture(scope="module")
def default_screener():
    return load_pack_screener(DEFAULT_PACK)


@pytest.fixture(scope="module")
def generated_batch():
    gen = ManifestGenerator(GeneratorConfig(manifests=6, parcels_per_manifest=500, seed=11, fraud_scale=5.0))
    msgs = [decode(RawMessage(orjson.dumps(m)), 1 << 22) for m in gen.manifests()]
    batch, rejected = BatchBuilder().build(msgs)
    assert not rejected
    return batch, {lab["parcel_id"]: lab["finding_code"] for lab in gen.labels}


def test_default_pack_kernel_agrees_with_interpreter_on_generated_parcels(default_screener, generated_batch):
    batch, labels = generated_batch
    assert default_screener.kernel.signatures          # compiled at load, before any batch
    result = default_screener.screen(batch)
    assert_same(result, default_screener.interpreter.screen(batch))
    # Planted fraud is caught by the rule meant for it.
    expected = {"RESTRICTED_HS": ("R4_PROHIBITED_HS", "R4_LICENSED_HS"), "PROHIBITED_DESCRIPTION":
                ("R5_PROHIBITED_DESCRIPTION",), "VAGUE_DESCRIPTION": ("R6_VAGUE_DESCRIPTION",),
                "WATCHLIST": ("R8_WATCHLIST",), "WEIGHT_INCONSISTENT": ("R9_GROSS_BELOW_NET",),
                "RISKY_ROUTE": ("R10_RISKY_ROUTE",), "AMOUNT_MISMATCH": ("R13_PAID_AMOUNT_MISMATCH",)}
    for i, pid in enumerate(batch.parcel_ids):
        rules = {default_screener.rule_ids[r] for r in default_screener.fired_rules(result, i)}
        kind = labels[pid]
        if kind in expected:
            assert rules & set(expected[kind]), (pid, kind, rules)
            assert result.lane[i] != LANE_GREEN
    under = [i for i, p in enumerate(batch.parcel_ids) if labels[p] == "UNDERVALUATION"]
    caught = sum(1 for i in under if result.hits[i, 0] & 1)
    assert caught >= 0.75 * len(under)
    clean = [i for i, p in enumerate(batch.parcel_ids) if labels[p] == "NONE"]
    assert np.mean(result.lane[clean] != LANE_GREEN) < 0.05


def test_hit_mask_spans_words_beyond_64_rules(tmp_path, scratch_cache):
    rules = [{"id": f"V{k}", "weight": 0.01, "condition": f"declared_value > {k}"} for k in range(70)]
    path = write_pack(tmp_path, rules, yellow=0.3, red=0.4)
    s = PackScreener(load_pack(path), scratch_cache)
    batch = make_batch([{"declared_value": 65.5}, {"declared_value": 69.5}, {"declared_value": -1}, {}])
    res = s.screen(batch)
    assert res.hits.shape == (4, 2)
    assert res.hits[0, 0] == np.uint64(2**64 - 1) and res.hits[0, 1] == np.uint64(0b11)   # rules 0..65
    assert res.hits[1, 1] == np.uint64(0b111111)                                           # rules 64..69
    assert not res.hits[2].any() and not res.hits[3].any()
    assert res.score[0] == pytest.approx(1 - 0.99 ** 66) and res.lane[0] == LANE_RED
    assert_same(res, s.interpreter.screen(batch))
    assert s.fired_rules(res, 1) == list(range(70))


@pytest.fixture(scope="module")
def small_pack(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    path = write_pack(d, [
        {"id": "A", "weight": 0.5, "condition": "declared_value > 100"},
        {"id": "B", "weight": 0.4, "condition": "freight > 10"},
        {"id": "FLOOR", "weight": 0.05, "lane_floor": "red", "condition": "origin_country == 'AF'"},
        {"id": "NOV", "weight": 0.3, "valid_from": "2026-11-01", "valid_until": "2026-11-30",
         "condition": "currency == 'USD'"},
        {"id": "WATCH", "weight": 0.35, "condition": "watchlisted(consignee_id)"},
        {"id": "GONE", "weight": 0.35, "condition": "missing(net_weight_kg) or value_per_kg < 1"},
    ], yellow=0.3, red=0.7)
    return load_pack(path)


@pytest.fixture(scope="module")
def small(small_pack, scratch_cache):
    return PackScreener(small_pack, scratch_cache)


def test_noisy_or_score_lanes_and_floor(small):
    batch = make_batch([
        {"declared_value": 200, "net_weight_kg": 1, "currency": "EUR"},                   # A: 0.5
        {"declared_value": 200, "freight": 20, "net_weight_kg": 1, "currency": "EUR"},    # A+B: 1 - .5*.6 = .7
        {"origin_country": "AF", "net_weight_kg": 1, "declared_value": 5, "currency": "EUR"},   # floor
        {"net_weight_kg": 1, "declared_value": 5, "currency": "EUR"},                     # nothing
    ])
    res = small.screen(batch)
    assert res.score[0] == 0.5 and res.lane[0] == LANE_YELLOW
    assert res.score[1] == pytest.approx(0.7) and res.lane[1] == LANE_RED
    assert res.score[2] == pytest.approx(0.05) and res.lane[2] == LANE_RED
    assert res.score[3] == 0.0 and res.lane[3] == LANE_GREEN and not res.hits[3].any()
    assert_same(res, small.interpreter.screen(batch))
    shares = noisy_or_contributions([0.5, 0.4])
    assert sum(shares) == pytest.approx(0.7) and shares[0] > shares[1]
    assert noisy_or_contributions([1.0, 0.3]) == [1.0, 0.0]


def test_rules_fire_only_within_their_validity_dates(small):
    times = ["2026-10-31T23:59:59.999Z", "2026-11-01T00:00:00Z", "2026-11-30T23:59:59.999Z", "2026-12-01T00:00:00Z"]
    batch = make_batch([{"currency": "USD", "event_time": t, "net_weight_kg": 1, "declared_value": 5} for t in times])
    res = small.screen(batch)
    nov = small.rule_ids.index("NOV")
    assert [bool(res.hits[i, 0] >> nov & 1) for i in range(4)] == [False, True, True, False]
    assert_same(res, small.interpreter.screen(batch))


def test_watchlist_entries_have_validity_dates(small):
    # C1 is listed for 2026-01-01..03-31 and 2026-06-01..12-31; C2 without dates.
    cases = [("C1", "2026-02-01T00:00:00Z", True), ("C1", "2026-04-15T00:00:00Z", False),
             ("C1", "2026-12-31T12:00:00Z", True), ("C1", "2027-01-01T00:00:00Z", False),
             ("C2", "1999-01-01T00:00:00Z", True), ("C3", "2026-02-01T00:00:00Z", False)]
    batch = make_batch([{"consignee_id": c, "event_time": t, "net_weight_kg": 1} for c, t, _ in cases])
    res = small.screen(batch)
    w = small.rule_ids.index("WATCH")
    assert [bool(res.hits[i, 0] >> w & 1) for i in range(len(cases))] == [want for *_, want in cases]
    assert_same(res, small.interpreter.screen(batch))


def test_missing_values_never_fire_comparisons_but_missing_does(small):
    batch = make_batch([{"declared_value": 500}, {"declared_value": None, "net_weight_kg": 2}])
    res = small.screen(batch)
    a, gone = small.rule_ids.index("A"), small.rule_ids.index("GONE")
    assert res.hits[0, 0] >> a & 1 and res.hits[0, 0] >> gone & 1      # net weight missing
    assert not res.hits[1, 0] & ((1 << a) | (1 << gone))                # NaN value: no comparison holds
    assert_same(res, small.interpreter.screen(batch))


def test_random_selection_is_reproducible_and_at_the_rate(tmp_path, scratch_cache):
    path = write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "declared_value > 100"}],
                      yellow=0.3, red=0.5, rate=0.2, seed=99)
    s = PackScreener(load_pack(path), scratch_cache)
    parcels = [{"parcel_id": f"P-{k}", "declared_value": 1} for k in range(5000)]
    res = s.screen(make_batch(parcels))
    assert 0.17 < res.random.mean() < 0.23
    assert np.all(res.lane[res.random] == LANE_RED) and np.all(res.lane[~res.random] == LANE_GREEN)
    want = [seeded_uniform_reference(int(h), 99) < 0.2 for h in make_batch(parcels).parcel_hash]
    assert res.random.tolist() == want
    shuffled = parcels[::-1]                    # another batch, another order: same parcels, same picks
    res2 = s.screen(make_batch(shuffled))
    assert res2.random[::-1].tolist() == res.random.tolist()
    reasons = s.explain(make_batch(parcels), res, int(np.flatnonzero(res.random)[0]))
    assert reasons[-1].rule_id == "random" and reasons[-1].values["rate"] == 0.2


def test_explanations_carry_the_triggering_values(default_screener):
    parcel = {"parcel_id": "X", "currency": "USD", "declared_value": 10.0, "net_weight_kg": 0.35,
              "gross_weight_kg": 0.4, "items": [{"hs_code": "8517130000", "description": "phone",
                                                  "item_origin_country": None, "origin_country": "JP",
                                                  "quantity": 1, "unit_price": 10.0, "line_value": 10.0}],
              "freight": 0.0, "paid_amount": 10.0, "tax_withheld": 0.0, "origin_country": "JP"}
    batch = make_batch([parcel])
    res = default_screener.screen(batch)
    reasons = {r.rule_id: r for r in default_screener.explain(batch, res, 0)}
    r1 = reasons["R1_UNDERVALUED_PER_KG"]
    assert r1.values["value_per_kg"] == pytest.approx(28.5714, rel=1e-4)
    assert r1.values["min_item(band_min(hs_code, item_origin_country))"] == 40.0
    assert r1.values["because"] == ["value_per_kg=28.5714 < min_item(band_min(hs_code, item_origin_country))=40.0"]
    assert r1.contribution == pytest.approx(res.score[0]) and r1.description
    orjson.dumps([r.as_dict() for r in reasons.values()])     # wire-safe


def test_item_explanations_name_the_item(default_screener):
    batch = make_batch([{"items": [{"description": "shoes"}, {"description": "Fake Nike shoes"}]}])
    res = default_screener.screen(batch)
    r5 = next(r for r in default_screener.explain(batch, res, 0) if r.rule_id == "R5_PROHIBITED_DESCRIPTION")
    assert r5.values["because"][0].startswith("item 1: description='Fake Nike shoes' contains a term of")
    assert r5.values["lane_floor"] == "red" and res.lane[0] == LANE_RED


def test_default_pack_examples_pass_and_a_wrong_example_fails(default_screener, tmp_path, scratch_cache):
    results = run_examples(default_screener.pack, default_screener)
    assert results and all(r.ok for r in results), [(r.rule_id, r.failures) for r in results if not r.ok]
    path = write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "declared_value > 1000"}], red=0.5)
    path.write_text(path.read_text() + "\n[[rules.examples]]\nhit = true\nlane = \"red\"\nparcel = {}\n")
    pack = load_pack(path)
    bad = run_examples(pack, PackScreener(pack, scratch_cache))
    assert not bad[0].ok and "expected a hit, got no hit" in bad[0].failures[0]
    assert "expected lane red, got green" in bad[0].failures[1]


def test_compiled_kernel_is_cached_on_disk_across_processes(tmp_path):
    code = ("import json, sys, time; from screener.rules.screener import PackScreener; "
            "from screener.rules import load_pack; t = time.perf_counter(); "
            f"s = PackScreener(load_pack({str(DEFAULT_PACK)!r}), sys.argv[1]); "
            "print(json.dumps({'s': time.perf_counter() - t, 'hits': s.kernel.stats.cache_hits, "
            "'misses': s.kernel.stats.cache_misses}))")
    runs = [json.loads(subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, capture_output=True,
                                      text=True, cwd=ROOT).stdout) for _ in range(2)]
    assert sum(runs[0]["hits"].values()) == 0              # cold: compiled
    assert sum(runs[1]["hits"].values()) == 1              # second process: machine code from the cache
    assert runs[1]["s"] < runs[0]["s"]
    assert list(tmp_path.glob("rules_kernel_*.py")) and list(tmp_path.glob("__pycache__/*.nbc"))
