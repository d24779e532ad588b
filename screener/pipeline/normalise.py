"""The one place identifiers and text are normalised before any lookup (watchlists, term tables, codes).

`normalise(s)` is what every lookup compares: Unicode NFKC (full-width and compatibility forms to
their plain letters), format and control characters removed (zero-width spaces and joiners, bidi
marks and overrides, soft hyphens, NUL), whitespace runs collapsed to one space and trimmed, then
case-folded. So `C-WATCH-0001`, ` c-watch-0001`, `C\u200b-WATCH-0001` and `Ｃ-WATCH-0001` are one
identifier, and `co\u200bcaine` contains the term `cocaine`. Raw values are kept for the output;
only lookups see the normalised form.
"""

from __future__ import annotations

import re
import unicodedata

# Categories removed outright: Cf (format: ZWSP, ZWJ, LRM/RLM, LRE..PDF, LRI..PDI, BOM, soft hyphen)
# and Cc (controls) except whitespace controls, which become spaces below.
_REMOVED = ("Cf", "Cc")
_WHITESPACE = re.compile(r"\s+")


def _drop_invisible(s: str) -> str:
    return "".join(ch for ch in s if ch.isspace() or unicodedata.category(ch) not in _REMOVED)


def normalise(s: str) -> str:
    """The lookup form of a string: NFKC, invisible characters removed, whitespace collapsed, case-folded."""
    if s.isascii() and s.isprintable() and "  " not in s and s == s.strip():
        return s.casefold()  # the usual case: plain ASCII, nothing to remove (normalise_many inlines this test)
    s = unicodedata.normalize("NFKC", s)
    s = _drop_invisible(s)
    s = _WHITESPACE.sub(" ", s).strip().casefold()
    # Removal and case folding can expose new compatibility forms (a ZWSP between a letter and a
    # combining mark, say); a last NFKC pass makes the function idempotent.
    return unicodedata.normalize("NFKC", s)


def normalise_many(strings) -> list[str]:
    """`normalise` of each string, the plain-ASCII case inline (a vocabulary's new strings, one call per batch)."""
    return [s.casefold() if s.isascii() and s.isprintable() and "  " not in s and s == s.strip() else normalise(s)
            for s in strings]
