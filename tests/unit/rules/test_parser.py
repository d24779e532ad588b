"""The condition language: what is accepted, what is refused, and how refusals are reported."""

from __future__ import annotations

import pytest

from screener.rules import ir
from screener.rules.errors import Problem
from screener.rules.parser import parse_condition
from screener.rules.tables import Tables

from .helpers import write_reference


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return Tables(write_reference(tmp_path_factory.mktemp("ref")))


def check(text: str, tables) -> tuple[ir.Node | None, list[Problem]]:
    problems: list[Problem] = []
    return parse_condition("R", text, tables, problems), problems


@pytest.mark.parametrize("text, fragment", [
    ("declared_value.__class__ > 1", "dunder name '__class__'"),
    ("declared_value.real > 1", "attribute access"),
    ("__import__('os') == 1", "dunder name '__import__'"),
    ("import os", "syntax error"),
    ("eval('1') > 0", "function 'eval' is not allowed"),
    ("open('x') > 0", "function 'open' is not allowed"),
    ("(lambda: 1)() > 0", "only plain function names"),
    ("lambda: True", "lambda is not allowed"),
    ("any_item([x > 1 for x in [1]])", "comprehensions are not allowed"),
    ("sum_items(quantity for q in [1]) > 1", "comprehensions are not allowed"),
    ("declared_value[0] > 1", "indexing"),
    ("(x := 1) > 0", "assignment"),
    ("declared_value ** 2 > 1", "operator ** is not allowed"),
    ("declared_value if True else 1 > 0", "conditional expressions"),
    ("f'{declared_value}' == 'x'", "f-strings"),
    ("declared_valu > 1", "did you mean 'declared_value'"),
    ("hs_code == '9301'", "item field 'hs_code' used outside an item quantifier"),
    ("any_item(any_item(quantity > 1))", "cannot be nested"),
    ("declared_value", "must be true or false"),
    ("declared_value and True", "expected a boolean"),
    ("origin_country < 'CN'", "strings cannot be compared with <"),
    ("origin_country == 5", "cannot compare"),
    ("declared_value == 'x'", "expected a string field"),
    ("startswith(declared_value, '1')", "expected a string field"),
    ("startswith(origin_country, 1)", "expected a list"),
    ("origin_country in []", "empty list"),
    ("origin_country in table('nope', 'x')", "missing reference file"),
    ("origin_country in table('words', 'nope')", "has no column 'nope'"),
    ("origin_country in table('../fx', 'currency')", "bad table name"),
    ("min(declared_value) > 1", "min takes at least 2 argument"),
    ("abs(1, 2) > 0", "abs takes 1 argument"),
    ("startswith(origin_country, ['C'], x=1)", "takes no keyword arguments"),
    ("table('words', 'term') == 1", "table(...) is only allowed"),
    ("1e999 > declared_value", "out of range"),
    ("declared_value is None", "`is` is not allowed"),
    ("only_terms(consignee_id, table('terms', 'term'))", "validity dates"),
    ("watchlisted(currency)", "no entries for field 'currency'"),
    ("(origin_country, departure_country) in table('terms', 'term', 'category')", "validity dates"),
    ("", "condition is empty"),
])
def test_refused_with_reason(text, fragment, tables):
    node, problems = check(text, tables)
    assert node is None
    assert problems, text
    assert any(fragment in p.message for p in problems), [str(p) for p in problems]
    assert all(p.rule_id == "R" for p in problems)


def test_every_problem_of_a_condition_is_reported_with_its_position(tables):
    text = "declared_valeu > 1 and\n  origin_country.upper() == 'CN' and __x__ > 2"
    node, problems = check(text, tables)
    assert node is None
    where = {(p.line, p.col) for p in problems}
    messages = " | ".join(p.message for p in problems)
    assert (1, 1) in where and "declared_valeu" in messages
    assert (2, 3) in where and "attribute access" in messages
    assert (2, 38) in where and "dunder" in messages
    assert str(problems[0]).startswith("rule R condition 1:1: unknown field")


def test_syntax_error_position(tables):
    _, problems = check("declared_value >", tables)
    assert problems[0].line == 1 and "syntax error" in problems[0].message


def test_deep_nesting_is_refused_not_crashing(tables):
    node, problems = check("(" * 200 + "declared_value > 1" + ")" * 200, tables)
    assert node is None and problems
    node, problems = check("not " * 100 + "True", tables)
    assert node is None and "nested" in problems[0].message


def test_accepted_condition_types_into_ir(tables):
    node, problems = check(
        "value_per_kg < min_item(band_min(hs_code, item_origin_country)) and "
        "(origin_country, departure_country) in table('routes', 'origin_country', 'departure_country') or "
        "any_item(contains_any(description, table('terms', 'term'))) or seller_id != consignee_id "
        "or 1 < declared_value <= 2 or origin_country not in ['CN', 'HK']", tables)
    assert problems == [] and node is not None
    kinds = {type(n).__name__ for n in ir.walk(node)}
    assert {"Logic", "Compare", "Quant", "Band", "PairIn", "StrTest", "SameString", "Derived"} <= kinds
    chained = [n for n in ir.walk(node) if isinstance(n, ir.Logic) and n.label == "1 < declared_value <= 2"]
    assert chained and len(chained[0].args) == 2


def test_multiline_conditions_are_allowed(tables):
    node, problems = check("declared_value > 1\n  and freight > 2", tables)
    assert problems == [] and node.type == ir.BOOL


def test_dated_table_entries_carry_validity(tables):
    node, _ = check("any_item(contains_any(description, table('terms', 'term', category='counterfeit')))", tables)
    pred = next(n for n in ir.walk(node) if isinstance(n, ir.StrTest)).pred
    assert pred.timed and len(pred.entries) == 2
    assert all(e.term == "fake nike" for e in pred.entries)
