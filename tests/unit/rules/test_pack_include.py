"""`[pack] include`: a pack made of other packs' rules (rules/default-stateful.toml is default + stateful)."""

from __future__ import annotations

from pathlib import Path

from screener.rules import read_pack

from .helpers import write_reference

HEAD = '[pack]\nid = "{id}"\nversion = "1"\n{include}\n[lanes]\nyellow = 0.3\nred = {red}\n'
RULE = '[[rules]]\nid = "{rid}"\ndescription = "d"\nweight = 0.95\ncondition = "{cond}"\n'


def pack(directory: Path, name: str, rules: list[tuple[str, str]], include: list[str] = (), red: float = 0.7,
         pack_id: str = "p") -> Path:
    write_reference(directory / "reference")
    inc = f"include = {list(include)!r}".replace("'", '"') if include else ""
    text = HEAD.format(id=pack_id, include=inc, red=red) + "".join(RULE.format(rid=r, cond=c) for r, c in rules)
    (directory / name).write_text(text)
    return directory / name


def test_included_rules_come_first_and_the_including_packs_lanes_apply(tmp_path):
    pack(tmp_path, "a.toml", [("A1", "value_usd > 10")], red=0.9)
    top = pack(tmp_path, "top.toml", [("T1", "value_usd > 20")], include=["a.toml"], red=0.6)
    got, problems = read_pack(top)
    assert problems == []
    assert [r.id for r in got.rules] == ["A1", "T1"] and got.red == 0.6


def test_a_problem_in_an_included_pack_names_that_file_and_its_line(tmp_path):
    pack(tmp_path, "a.toml", [("A1", "value_usd >")])
    top = pack(tmp_path, "top.toml", [("T1", "value_usd > 20")], include=["a.toml"])
    got, problems = read_pack(top)
    assert got is None and len(problems) == 1
    assert problems[0].where.startswith("a.toml: (pack line ") and problems[0].rule_id == "A1"


def test_packs_including_each_other_are_refused_not_recursed(tmp_path):
    pack(tmp_path, "a.toml", [("A1", "value_usd > 1")], include=["b.toml"])
    b = pack(tmp_path, "b.toml", [("B1", "value_usd > 2")], include=["a.toml"])
    got, problems = read_pack(b)
    assert got is None and any("include each other" in p.message for p in problems)


def test_the_same_rule_in_two_included_packs_is_a_duplicate(tmp_path):
    pack(tmp_path, "a.toml", [("R1", "value_usd > 1")])
    pack(tmp_path, "b.toml", [("R1", "value_usd > 2")])
    got, problems = read_pack(pack(tmp_path, "top.toml", [], include=["a.toml", "b.toml"]))
    assert got is None and any("duplicate rule id" in p.message for p in problems)


def test_the_hash_changes_when_an_included_pack_changes(tmp_path):
    pack(tmp_path, "a.toml", [("A1", "value_usd > 10")])
    top = pack(tmp_path, "top.toml", [("T1", "value_usd > 20")], include=["a.toml"])
    before = read_pack(top)[0].hash
    pack(tmp_path, "a.toml", [("A1", "value_usd > 11")])
    assert read_pack(top)[0].hash != before


def test_a_reference_directory_other_than_the_including_packs_is_refused(tmp_path):
    pack(tmp_path / "other", "a.toml", [("A1", "value_usd > 10")])
    top = pack(tmp_path, "top.toml", [("T1", "value_usd > 20")], include=["other/a.toml"])
    got, problems = read_pack(top)
    assert got is None and any("reference directory" in p.message for p in problems)


def test_the_shipped_default_stateful_pack_is_default_then_stateful():
    both = read_pack("rules/default-stateful.toml")[0]
    default, stateful = read_pack("rules/default.toml")[0], read_pack("rules/stateful.toml")[0]
    assert [r.id for r in both.rules] == [r.id for r in default.rules + stateful.rules]
    assert (both.yellow, both.red, both.random_rate) == (default.yellow, default.red, default.random_rate)
