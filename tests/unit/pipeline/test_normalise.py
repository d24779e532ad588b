"""normalise(): confusables and invisible characters cannot split one identifier or term into two."""

from hypothesis import given
from hypothesis import strategies as st

from screener.pipeline.normalise import normalise, normalise_many

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069",
             "\ufeff", "\u00ad", "\x00"]


def test_watchlist_id_variants_are_one_identifier():
    want = normalise("C-WATCH-0001")
    for variant in (" C-WATCH-0001", "c-watch-0001", "C\u200b-WATCH-0001", "\u202eC-WATCH-0001",
                    "Ｃ－ＷＡＴＣＨ－０００１", "C-WATCH-0001\x00", "C-WATCH-0001\t"):
        assert normalise(variant) == want, variant


def test_terms_survive_invisible_characters_and_whitespace_runs():
    assert normalise("co\u200bcaine") == "cocaine"
    assert normalise("Lithium \n\t  BATTERY") == "lithium battery"


@given(st.text(max_size=40), st.lists(st.sampled_from(INVISIBLE), max_size=4), st.data())
def test_inserting_invisible_characters_changes_nothing(text, marks, data):
    s = list(text)
    for m in marks:
        s.insert(data.draw(st.integers(0, len(s))), m)
    assert normalise("".join(s)) == normalise(text)


@given(st.text(max_size=60))
def test_idempotent_and_never_raises(text):
    once = normalise(text)
    assert normalise(once) == once


@given(st.lists(st.one_of(st.text(max_size=20), st.sampled_from(["C-1", " C-1", "C-1 ", "C  1", "C-1\t", "ＡＢ"])),
                max_size=8))
def test_normalise_many_is_normalise_of_each(texts):
    assert normalise_many(texts) == [normalise(t) for t in texts]
