"""Watchlists and term tables cannot be evaded by case, spacing, invisible or compatibility characters.

Both sides of every table lookup are in lookup form (`screener.pipeline.normalise.normalise`), so
the decisions here go through the real path: a pack, the compiled kernel, the lookup matrices.
The Aho-Corasick matchers are compared with the plain reference matcher on hostile strings.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.pipeline.batch import Vocabularies
from screener.pipeline.normalise import normalise
from screener.rules import ir, load_pack
from screener.rules.interpreter import naive_matches
from screener.rules.predicates import matcher
from screener.rules.screener import PackScreener

from .helpers import make_batch, write_pack

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066",
             "\u00ad", "\x00"]
SPACES = [" ", "\t", "\u00a0", "\u3000", "\n"]


def fullwidth(s: str) -> str:
    """Full-width forms of ASCII letters and digits (NFKC maps them back)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


@st.composite
def disguised(draw, text: str):
    """`text` with random case, full-width letters, invisible characters inside and spaces around it."""
    out = []
    for c in text:
        c = draw(st.sampled_from([c, c.lower(), c.upper(), fullwidth(c)]))
        out.append(c + "".join(draw(st.lists(st.sampled_from(INVISIBLE), max_size=2))))
    pad = st.lists(st.sampled_from(SPACES + INVISIBLE), max_size=3).map("".join)
    return draw(pad) + "".join(out) + draw(pad)


WATCHED = ["C-WATCH-0001", "C2"]
TERMS = ["cocaine", "fake nike"]


@pytest.fixture(scope="module")
def screener(tmp_path_factory, scratch_cache):
    rules = [{"id": "W", "weight": 0.9, "condition": "watchlisted(consignee_id)"},
             {"id": "T", "weight": 0.8, "condition": "any_item(contains_any(description, table('terms', 'term')))"},
             {"id": "H", "weight": 0.7, "condition": "any_item(startswith(hs_code, ['9301', '3004']))"}]
    path = write_pack(tmp_path_factory.mktemp("norm"), rules, yellow=0.3, red=0.7)
    (path.parent / "reference" / "watchlist.csv").write_text(
        "field,value,reason,valid_from,valid_until\nconsignee_id,C-WATCH-0001,r,,\nconsignee_id,\u00a0c2 ,r,,\n")
    (path.parent / "reference" / "terms.csv").write_text("term,category\ncocaine,n\nFAKE\u200b NIKE,c\n")
    return PackScreener(load_pack(path), scratch_cache)


def hits(screener: PackScreener, parcels: list[dict]) -> list[set[str]]:
    result = screener.screen(make_batch(parcels, Vocabularies()), random=False)
    return [{screener.rule_ids[r] for r in screener.fired_rules(result, i)} for i in range(len(parcels))]


def test_the_issue_examples_are_caught(screener):
    parcels = [{"consignee_id": c} for c in ["C-WATCH-0001", "c-watch-0001\u200b", " C-WATCH-0001",
                                              "c-watch-0001", "\uff23-WATCH-0001", "C-WATCH-0002"]]
    parcels.append({"items": [{"description": "co\u200bcaine"}]})
    parcels.append({"items": [{"description": "Fake Nike shoes", "hs_code": "\uff19\uff13\uff10\uff11000000"}]})
    got = hits(screener, parcels)
    assert got[:6] == [{"W"}, {"W"}, {"W"}, {"W"}, {"W"}, set()]
    assert got[6] == {"T"} and got[7] == {"T", "H"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_disguised_values_still_hit_through_the_kernel(screener, data):
    consignee = data.draw(disguised(data.draw(st.sampled_from(WATCHED))))
    term = data.draw(st.sampled_from(TERMS))
    description = data.draw(st.sampled_from(["", "buy ", "2 x "])) + data.draw(disguised(term)) + " shoes"
    prefix = data.draw(disguised("9301")) + "00"
    got = hits(screener, [{"consignee_id": consignee}, {"items": [{"description": description}]},
                          {"items": [{"hs_code": prefix}]}])
    assert got == [{"W"}, {"T"}, {"H"}], (consignee, description, prefix)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_kernel_equals_interpreter_on_disguised_values(screener, data):
    parcels = [{"consignee_id": data.draw(disguised(data.draw(st.sampled_from(WATCHED + ["C-WATCH-0003", "C"])))),
                "items": [{"description": data.draw(disguised(data.draw(st.sampled_from(TERMS + ["nike", "cocain"])))),
                           "hs_code": data.draw(disguised(data.draw(st.sampled_from(["930100", "93", "300490"]))))}]}
               for _ in range(5)]
    batch = make_batch(parcels, Vocabularies())
    got, want = screener.screen(batch), screener.interpreter.screen(batch)
    assert np.array_equal(got.hits, want.hits) and np.array_equal(got.lane, want.lane)


# --- the automaton against the plain reference matcher ---------------------------------------------

ALPHABET = st.sampled_from(list("abcAB 9301-\u00e9\u0301\u00df") + INVISIBLE[:3]
                           + ["\uff41", "\u3000", "fi", "\ufb01", "\U0001f600", "\U0001d400"])
TEXT = st.lists(ALPHABET, max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["in", "prefix", "keyword", "only_terms"]),
       terms=st.lists(TEXT, min_size=1, max_size=6), texts=st.lists(TEXT, min_size=1, max_size=8))
def test_automaton_matchers_equal_the_reference_matcher(kind, terms, texts):
    pred = ir.StrPred(kind, tuple(ir.Entry(t, k, k + 10) for k, t in enumerate(terms)))
    m = matcher(pred)
    for s in texts:
        assert sorted(m.matches(s), key=repr) == sorted(naive_matches(pred, s), key=repr), (kind, terms, s)
        assert m.matches_normalised(normalise(s)) == m.matches(s)
    forms = [normalise(s) for s in texts]
    assert m.matching(forms) == [i for i, s in enumerate(forms) if naive_matches(pred, s)]


def test_keyword_semantics_are_whole_words_after_normalisation():
    m = matcher(ir.StrPred("keyword", (ir.Entry("fake nike"), ir.Entry("parts"), ir.Entry("nike shoes"))))
    assert {e.term for e in m.matches("FAKE-NIKE SHOES")} == {"fake nike", "nike shoes"}   # overlapping phrases
    assert m.matches("counterparts") == [] and m.matches("nike fake") == []
    assert [e.term for e in m.matches("spare\u200b parts")] == ["parts"]
