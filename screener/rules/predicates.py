"""String predicates of the rule language, as fast matchers built once per predicate.

These run once per distinct vocabulary string (lookups.py), never per parcel. Both sides of every
comparison are in lookup form (`screener.pipeline.normalise.normalise`: NFKC, invisible characters
removed, whitespace collapsed, case-folded), so `C-WATCH-0001` with a zero-width space, a leading
space, in lower case or in full-width letters is still the watchlisted `C-WATCH-0001`, and
`co\u200bcaine` contains `cocaine`. Term and prefix tables are matched with an Aho-Corasick
automaton (pyahocorasick): one pass over the string, whatever the size of the table. The
reference interpreter deliberately does not use these matchers: it has its own naive
definitions, so the property tests check these matchers too.
"""

from __future__ import annotations

import re
from functools import lru_cache

import ahocorasick

from screener.pipeline.normalise import normalise
from screener.rules.ir import Entry, StrFn, StrPred

_WORD = re.compile(r"\w+")
# Prefix keys start with a character that normalise() always removes (a control), so a key can
# only match at the very start of the string: a substring automaton answers "starts with".
_ANCHOR = "\x00"


def words(text: str) -> list[str]:
    """Lower-cased word tokens of a text (letters, digits, underscore runs)."""
    return _WORD.findall(text.lower())


def phrase_key(text: str) -> str:
    """A term or text as space-separated words padded with spaces, so phrases match on word boundaries."""
    return " " + " ".join(words(text)) + " "


def merge_intervals(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping union of [from, until) intervals."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if lo >= hi:
            continue
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


class _Automaton:
    """Every occurrence of any key in a text, with the key's group index (pyahocorasick underneath)."""

    def __init__(self, keys: dict[str, int]) -> None:
        self.automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS) if keys else None
        for key, group in keys.items():
            self.automaton.add_word(key, group)
        if self.automaton is not None:
            self.automaton.make_automaton()

    def groups(self, text: str) -> list[int]:
        """Sorted distinct groups of the keys occurring in the text."""
        if self.automaton is None:
            return []
        return sorted({group for _, group in self.automaton.iter(text)})


def _phrase(term: str) -> str | None:
    """The automaton key of a keyword term (None for a term without words: it can never match)."""
    tokens = words(normalise(term))
    return " " + " ".join(tokens) + " " if tokens else None


def _grouped(entries, key) -> tuple[dict[str, int], list[list[Entry]]]:
    """Entries grouped by their (normalised) key: key -> group index, and each group's entries."""
    index: dict[str, int] = {}
    groups: list[list[Entry]] = []
    for e in entries:
        k = key(e.term)
        if k is None:
            continue
        if k not in index:
            index[k] = len(groups)
            groups.append([])
        groups[index[k]].append(e)
    return index, groups


class Matcher:
    """Answers one StrPred for a string: the entries it matches (validity is applied by callers)."""

    def __init__(self, pred: StrPred) -> None:
        self.kind = pred.kind
        self.entries = pred.entries
        if pred.kind == "in":
            self.by_term, self.groups = _grouped(pred.entries, normalise)
        elif pred.kind == "prefix":
            keys, self.groups = _grouped(pred.entries, lambda t: _ANCHOR + normalise(t))
            self.automaton = _Automaton(keys)
        elif pred.kind == "keyword":
            # Phrases match on word boundaries: " fake nike " inside " buy fake nike shoes ".
            keys, self.groups = _grouped(pred.entries, _phrase)
            self.automaton = _Automaton(keys)
        elif pred.kind == "only_terms":
            self.vocabulary = {w for e in pred.entries for w in words(normalise(e.term))}
        else:  # pragma: no cover - the parser only builds the kinds above
            raise ValueError(f"unknown predicate kind {pred.kind}")

    def matches(self, s: str) -> list[Entry]:
        """Entries of the predicate that the string matches (empty list: no match)."""
        return self.matches_normalised(normalise(s))

    def matches_normalised(self, s: str) -> list[Entry]:
        """`matches` for a string already in lookup form (callers that normalise once per string)."""
        if self.kind == "in":
            group = self.by_term.get(s)
            return [] if group is None else self.groups[group]
        if self.kind == "prefix":
            return [e for g in self.automaton.groups(_ANCHOR + s) for e in self.groups[g]]
        if self.kind == "keyword":
            return [e for g in self.automaton.groups(phrase_key(s)) for e in self.groups[g]]
        tokens = words(s)
        if tokens and all(t in self.vocabulary for t in tokens):
            return list(self.entries)
        return []

    def matching(self, strings: list[str]) -> list[int]:
        """Positions of the strings (in lookup form) that match anything: a vocabulary's new strings at once."""
        if self.kind == "in":     # most strings match nothing: one dict probe each, no list built
            terms = self.by_term
            return [i for i, s in enumerate(strings) if s in terms]
        return [i for i, s in enumerate(strings) if self.matches_normalised(s)]

    def intervals(self, s: str) -> list[tuple[int, int]]:
        """Merged validity intervals during which the predicate holds for this string."""
        return self.intervals_normalised(normalise(s))

    def intervals_normalised(self, s: str) -> list[tuple[int, int]]:
        """`intervals` for a string already in lookup form."""
        return merge_intervals([(e.valid_from, e.valid_until) for e in self.matches_normalised(s)])


@lru_cache(maxsize=512)
def matcher(pred: StrPred) -> Matcher:
    """The (cached) matcher of a predicate."""
    return Matcher(pred)


def string_number(fn: StrFn, s: str) -> float:
    """The number a StrFn gives for one string (NaN when a lookup has no entry)."""
    if fn.kind == "length":
        return float(len(s))
    if fn.kind == "word_count":
        return float(len(words(s)))
    for key, value in fn.mapping:
        if key == s:
            return float(value)
    return float("nan")
