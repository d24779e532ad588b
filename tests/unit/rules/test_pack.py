"""Loading packs: a pack with any problem is refused whole, with every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from screener.pipeline.screening import load_screener
from screener.rules import PackError, load_pack, load_pack_screener, read_pack

from .helpers import write_pack

DEFAULT_PACK = Path(__file__).resolve().parents[3] / "rules" / "default.toml"


def messages(problems) -> str:
    return "\n".join(str(p) for p in problems)


def has_line(problems, *fragments: str) -> bool:
    """Some problem's text contains all the fragments."""
    return any(all(f in str(p) for f in fragments) for p in problems)


def test_default_pack_is_clean_and_covers_the_required_rule_types():
    pack, problems = read_pack(DEFAULT_PACK)
    assert problems == []
    ids = " ".join(r.id for r in pack.rules)
    for rtype in ("R1_", "R4_", "R5_", "R6_", "R8_", "R9_", "R10_", "R13_"):
        assert rtype in ids
    assert pack.random_rate > 0                          # R14
    assert any(r.valid_until < 2**63 - 1 for r in pack.rules)   # R16
    assert all(r.examples for r in pack.rules)


def test_hostile_pack_is_refused_with_every_problem(tmp_path):
    path = write_pack(tmp_path, [
        {"id": "A", "weight": 0.5, "condition": "__import__('os').system('true') == 0"},
        {"id": "A", "weight": 1.5, "condition": "declared_value > 1", "colour": "red"},
        {"id": "C", "weight": 0.5, "condition": "origin_country in table('missing_table', 'x')"},
        {"id": "D", "weight": 0.5, "condition": "declared_value.__class__ > 1", "lane_floor": "purple"},
        {"id": "E", "weight": 0.5, "condition": "True", "valid_from": "2027-01-01", "valid_until": "2026-01-01"},
    ], extra='colour = "x"\n')
    pack, problems = read_pack(path)
    assert pack is None
    text = messages(problems)
    assert has_line(problems, "rule A condition 1:1 (pack line 18)", "dunder name '__import__'")
    assert has_line(problems, "rule A", "duplicate rule id")
    assert has_line(problems, "rule A", "weight must be between 0.0 and 1.0, got 1.5")
    assert has_line(problems, "rule A", "unknown key 'colour' in a rule")
    assert "unknown key 'colour' in [random]" in text
    assert has_line(problems, "rule C condition 1:19", "missing reference file")
    assert has_line(problems, "rule D condition", "'__class__'")
    assert has_line(problems, "rule D", "lane_floor must be one of")
    assert has_line(problems, "rule E", "valid_from is after valid_until")
    with pytest.raises(PackError) as err:
        load_pack_screener(path)
    assert len(err.value.problems) == len(problems)
    assert "refused" in str(err.value)


def test_unreachable_thresholds_are_refused(tmp_path):
    path = write_pack(tmp_path, [{"id": "A", "weight": 0.2, "condition": "declared_value > 1"},
                                 {"id": "B", "weight": 0.25, "condition": "freight > 1"}], yellow=0.3, red=0.5)
    _, problems = read_pack(path)
    text = messages(problems)
    assert "red threshold 0.5 is unreachable" in text and "at most 0.400000" in text
    assert "yellow" not in text


def test_bad_toml_and_missing_sections(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[pack\nid=1")
    _, problems = read_pack(p)
    assert "not valid TOML" in problems[0].message and problems[0].where == f"{p} line 1 column 6"
    p.write_text('[[rules]]\nid = "A"\nweight = 0.5\ncondition = "True"\n')
    _, problems = read_pack(p)
    text = messages(problems)
    assert "[pack] section" in text and "[lanes] section" in text


def test_random_seed_required_with_a_rate(tmp_path):
    path = write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "True"}], rate=0.1)
    text = path.read_text().replace("seed = 7\n", "")
    path.write_text(text)
    _, problems = read_pack(path)
    assert "seed is required" in messages(problems)


def test_pack_hash_follows_reference_tables(tmp_path):
    path = write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "origin_country in table('words', 'term')"}], red=0.5)
    h1 = load_pack(path).hash
    assert load_pack(path).hash == h1
    (tmp_path / "reference" / "words.csv").write_text("term\ngift\nother\n")
    assert load_pack(path).hash != h1
    (tmp_path / "reference" / "fx.csv").write_text("currency,usd_per_unit\nUSD,2.0\n")   # unused table
    h3 = load_pack(path).hash
    path.write_text(path.read_text().replace('version = "1"', 'version = "2"'))
    assert load_pack(path).hash != h3


def test_spine_loads_packs_through_the_screening_seam():
    screener = load_screener(str(DEFAULT_PACK))
    pack = load_pack(DEFAULT_PACK)
    assert (screener.ruleset_id, screener.version, screener.hash) == (pack.id, pack.version, pack.hash)
    assert screener.rule_ids == [r.id for r in pack.active_rules]
