"""String predicates and their per-vocabulary lookup matrices (evaluated once per distinct string)."""

from __future__ import annotations

import numpy as np

from screener.pipeline.batch import Vocabularies
from screener.rules import ir
from screener.rules.interpreter import naive_matches
from screener.rules.lookups import LookupPlan, LookupState, band_value, pair_matrices
from screener.rules.predicates import matcher, merge_intervals

E = ir.Entry


def pred(kind, *terms):
    return ir.StrPred(kind, tuple(E(t) for t in terms))


def test_keyword_matching_is_whole_words_any_case():
    p = pred("keyword", "fake nike", "cocaine", "parts")
    m = matcher(p)
    for text, want in [("FAKE nike shoes", True), ("fake-nike", True), ("nike fake", False),
                       ("cocaine!", True), ("counterparts", False), ("spare parts", True), ("", False)]:
        assert bool(m.matches(text)) == want, text
        assert bool(naive_matches(p, text)) == want, text


def test_only_terms_and_prefix_and_membership():
    only = pred("only_terms", "gift", "spare parts")
    assert matcher(only).matches("Gift") and matcher(only).matches("parts spare gift")
    assert not matcher(only).matches("gift box") and not matcher(only).matches("")
    pre = pred("prefix", "93", "9301", "")
    assert len(matcher(pre).matches("930100")) == 3 and len(matcher(pre).matches("12")) == 1
    mem = pred("in", "CN", "HK")
    assert matcher(mem).matches("CN") and matcher(mem).matches(" cn") and not matcher(mem).matches("CNN")


def test_interval_merging():
    assert merge_intervals([(5, 9), (1, 3), (2, 4), (9, 10), (20, 20)]) == [(1, 4), (5, 10)]


def test_band_priority_longest_prefix_then_specific_origin():
    t = ir.BandTable((("85", "*", 5.0, 500.0), ("8517", "*", 40.0, 4000.0), ("8517", "CN", 20.0, 3000.0)))
    assert band_value(t, "min", "851713", "US") == 40.0
    assert band_value(t, "min", "851713", "CN") == 20.0
    assert band_value(t, "max", "850440", "CN") == 500.0
    assert band_value(t, "min", "851713", None) == 40.0
    assert np.isnan(band_value(t, "min", "6109", "CN"))


def test_pair_matrix_wildcards():
    t = ir.PairTable((("*", "XA"), ("AF", "*"), ("CN", "TR")))
    flat, meta = pair_matrices([t])
    ka, kb = t.keys(0), t.keys(1)      # ("AF", "CN"), ("TR", "XA")
    m = flat[meta[0, 0]:meta[0, 0] + (len(ka) + 1) * meta[0, 1]].reshape(len(ka) + 1, meta[0, 1])
    idx_a = {"other": 0, **{k: i + 1 for i, k in enumerate(ka)}}
    idx_b = {"other": 0, **{k: i + 1 for i, k in enumerate(kb)}}
    for a, b, want in [("other", "XA", 1), ("AF", "other", 1), ("CN", "TR", 1), ("CN", "other", 0),
                       ("other", "TR", 0), ("other", "other", 0)]:
        assert m[idx_a[a], idx_b[b]] == want, (a, b)


def test_lookups_evaluate_each_new_string_once_and_grow():
    plan = LookupPlan()
    kw = pred("keyword", "cocaine")
    vp = plan.vocab("item_description")
    col = vp.bool_col(kw)
    ln = vp.float_col(ir.StrFn("length"))
    vocabs = Vocabularies()
    state = LookupState(plan)
    voc = vocabs["item_description"]
    voc.intern_many(["cocaine bag", "shoes"])
    B, F = state.update(vocabs)
    assert state.evaluated == 3                      # "", and the two new strings
    assert B[voc.strings.index("cocaine bag"), col] == 1 and B[voc.strings.index("shoes"), col] == 0
    assert F[voc.strings.index("shoes"), ln] == 5.0
    state.update(vocabs)
    assert state.evaluated == 3                      # nothing new, nothing evaluated
    voc.intern_many([f"pure cocaine {k}" for k in range(200)])   # beyond the initial capacity
    B, F = state.update(vocabs)
    assert state.evaluated == 203 and B.shape[0] >= len(voc)
    assert B[voc.strings.index("pure cocaine 199"), col] == 1 and B[voc.strings.index("cocaine bag"), col] == 1
    other = Vocabularies()                           # a different worker vocabulary: start over
    other["item_description"].intern("shoes")
    B, _ = state.update(other)
    assert B[1, col] == 0 and state.evaluated == 205


def test_dated_lookups_keep_every_interval():
    p = ir.StrPred("in", (E("C1", 0, 10), E("C1", 20, 30), E("C1", 25, 40), E("C2", 5, 6)))
    plan = LookupPlan()
    c = plan.vocab("consignee_id").timed_col(p)
    vocabs = Vocabularies()
    vocabs["consignee_id"].intern_many(["C1", "C2", "C3"])
    TF, TU = LookupState(plan).update(vocabs)
    assert TF.shape[2] == 2
    assert list(zip(TF[1, c], TU[1, c])) == [(0, 10), (20, 40)]
    assert TF[2, c, 0] == 5 and TU[2, c, 0] == 6 and TF[2, c, 1] > TU[2, c, 1]   # unused slot never holds
    assert TF[3, c, 0] > TU[3, c, 0]


def test_shared_country_vocabulary_is_one_matrix():
    plan = LookupPlan()
    a = plan.vocab("origin_country")
    b = plan.vocab("departure_country")
    c = plan.vocab("item_origin_country")
    assert a is b is c and a.name == "country"
