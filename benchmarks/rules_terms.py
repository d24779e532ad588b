"""Term-table matching cost: a huge prohibited-terms table against new distinct descriptions.

Run `python -m benchmarks.rules_terms [--terms 1000000] [--descriptions 20000]`. It writes a pack
whose rule reads `contains_any(description, table("prohibited_terms", "term"))` over a table of
synthetic 1-3 word terms, loads it (CSV checks, IR), builds the predicate's Aho-Corasick matcher,
then times the per-string work the lookups do for each new distinct description (normalise, then
match), against the phrase-by-phrase scan the matcher replaced on a small sample. One core; the
figures are per string, so they do not depend on batching.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from screener.rules import ir, load_pack
from screener.rules.predicates import matcher, phrase_key, words

_SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "va", "zu", "xe", "ba", "qui", "fo", "gh"]
_COMMON = ["phone", "case", "cotton", "dress", "cream", "toy", "watch", "charger", "cable", "shoes", "bag"]


def synthetic_terms(n: int, rng: random.Random) -> list[str]:
    """n distinct made-up terms of 1-3 words (words of 2-4 syllables)."""
    out: set[str] = set()
    while len(out) < n:
        out.add(" ".join("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
                         for _ in range(rng.randint(1, 3))))
    return sorted(out)


def descriptions(n: int, terms: list[str], rng: random.Random) -> list[str]:
    """n distinct descriptions of 2-6 words; about 1 in 20 carries a term of the table."""
    out: set[str] = set()
    while len(out) < n:
        text = [rng.choice(_COMMON) for _ in range(rng.randint(2, 6))] + [str(len(out))]
        if rng.random() < 0.05:
            text.insert(rng.randint(0, len(text)), rng.choice(terms).upper())
        out.add(" ".join(text))
    return list(out)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def old_scan(phrases, text: str) -> list:
    """The matcher this replaced: every (prepared) phrase tested against the padded text."""
    padded = phrase_key(text)
    return [e for phrase, e in phrases if phrase in padded]


def run(n_terms: int, n_descriptions: int, old_sample: int = 20) -> dict:
    """The figures as a dict."""
    rng = random.Random(7)
    terms = synthetic_terms(n_terms, rng)
    texts = descriptions(n_descriptions, terms, rng)
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "reference"
        ref.mkdir()
        (ref / "prohibited_terms.csv").write_text("term,category\n" + "".join(f"{t},synthetic\n" for t in terms))
        (Path(tmp) / "pack.toml").write_text(
            '[pack]\nid = "terms"\nversion = "1"\n[lanes]\nyellow = 0.3\nred = 0.5\n[[rules]]\nid = "T"\nweight = 0.5\n'
            "condition = \"any_item(contains_any(description, table('prohibited_terms', 'term')))\"\n")
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        pack = load_pack(Path(tmp) / "pack.toml")
        load_s = time.perf_counter() - t0
    pred = next(n.pred for n in ir.walk(pack.rules[0].ir) if isinstance(n, ir.StrTest))
    t0 = time.perf_counter()
    m = matcher(pred)
    build_s = time.perf_counter() - t0
    rss1 = _rss_mb()
    t0 = time.perf_counter()
    hits = sum(1 for s in texts if m.matches(s))
    per_new = (time.perf_counter() - t0) / len(texts)
    sample = texts[:old_sample]
    phrases = [(phrase_key(e.term), e) for e in pred.entries if words(e.term)]
    t0 = time.perf_counter()
    old_hits = [bool(old_scan(phrases, s)) for s in sample]
    old_per = (time.perf_counter() - t0) / len(sample)
    assert old_hits == [bool(m.matches(s)) for s in sample]
    return {"terms": len(pred.entries), "descriptions": len(texts), "descriptions_hit": hits,
            "pack_load_s": round(load_s, 2), "automaton_build_s": round(build_s, 2),
            "rss_growth_mb_table_and_automaton": round(rss1 - rss0),
            "us_per_new_description": round(per_new * 1e6, 2),
            "old_scan_ms_per_new_description": round(old_per * 1e3, 2),
            "speedup": round(old_per / per_new)}


def main(argv: list[str] | None = None) -> None:
    """Print the figures as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--terms", type=int, default=1_000_000)
    ap.add_argument("--descriptions", type=int, default=20_000)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.terms, args.descriptions), indent=2))


if __name__ == "__main__":
    main()
