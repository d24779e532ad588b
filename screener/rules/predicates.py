"""String predicates of the rule language, as fast matchers built once per predicate.

These run once per distinct vocabulary string (lookups.py), never per parcel. The reference
interpreter deliberately does not use them: it has its own naive definitions, so the property
tests check these matchers too.
"""

from __future__ import annotations

import re
from functools import lru_cache

from screener.rules.ir import Entry, StrFn, StrPred

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens of a text (letters, digits, underscore runs)."""
    return _WORD.findall(text.lower())


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


class Matcher:
    """Answers one StrPred for a string: the entries it matches (validity is applied by callers)."""

    def __init__(self, pred: StrPred) -> None:
        self.kind = pred.kind
        self.entries = pred.entries
        if pred.kind == "in":
            self.by_term: dict[str, list[Entry]] = {}
            for e in pred.entries:
                self.by_term.setdefault(e.term, []).append(e)
        elif pred.kind == "prefix":
            self.by_prefix: dict[str, list[Entry]] = {}
            for e in pred.entries:
                self.by_prefix.setdefault(e.term, []).append(e)
            self.lengths = sorted({len(e.term) for e in pred.entries})
        elif pred.kind == "keyword":
            # Phrases match on word boundaries: " fake nike " inside " buy fake nike shoes ".
            self.phrases = [(" " + " ".join(words(e.term)) + " ", e) for e in pred.entries if words(e.term)]
        elif pred.kind == "only_terms":
            self.vocabulary = {w for e in pred.entries for w in words(e.term)}
        else:  # pragma: no cover - the parser only builds the kinds above
            raise ValueError(f"unknown predicate kind {pred.kind}")

    def matches(self, s: str) -> list[Entry]:
        """Entries of the predicate that the string matches (empty list: no match)."""
        if self.kind == "in":
            return self.by_term.get(s, [])
        if self.kind == "prefix":
            found: list[Entry] = []
            for n in self.lengths:
                if n <= len(s):
                    found.extend(self.by_prefix.get(s[:n], ()))
            return found
        if self.kind == "keyword":
            padded = " " + " ".join(words(s)) + " "
            return [e for phrase, e in self.phrases if phrase in padded]
        tokens = words(s)
        if tokens and all(t in self.vocabulary for t in tokens):
            return list(self.entries)
        return []

    def intervals(self, s: str) -> list[tuple[int, int]]:
        """Merged validity intervals during which the predicate holds for this string."""
        return merge_intervals([(e.valid_from, e.valid_until) for e in self.matches(s)])


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
