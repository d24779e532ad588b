"""Defective pack files and reference tables: each defect is one problem naming the file, line and column.

Every case here was a silent wrong answer or a traceback before (issue 11 item 7): an
unterminated quote swallowed the next row, a BOM hid in the first column name, extra columns,
Latin-1 bytes and deep examples crashed `rules check`, inverted validity dates were accepted,
and rule problems cited the rule's first line rather than the offending one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from screener.cli import main
from screener.rules import read_pack

from .helpers import write_pack

WATCHLIST_RULE = {"id": "W", "weight": 0.8, "condition": "watchlisted(seller_id) or watchlisted(consignee_id)"}
TERMS_RULE = {"id": "T", "weight": 0.8, "condition": "any_item(contains_any(description, table('words', 'term')))"}


def pack_with_table(tmp_path: Path, name: str, content: bytes, rules=(WATCHLIST_RULE,)) -> Path:
    path = write_pack(tmp_path, list(rules), red=0.5)
    (tmp_path / "reference" / name).write_bytes(content)
    return path


def only_problem(path: Path):
    pack, problems = read_pack(path)
    assert pack is None
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def where(problem) -> str:
    return problem.where.split("reference/")[-1]


WATCH_HEADER = b"field,value,reason,valid_from,valid_until\n"


def test_unterminated_quote_is_refused_instead_of_swallowing_the_next_row(tmp_path):
    body = WATCH_HEADER + (b'consignee_id,"C2,typo,,\n'
                           b"seller_id,S-WATCH-01,counterfeit,,\n")
    p = only_problem(pack_with_table(tmp_path, "watchlist.csv", body))
    assert where(p) == "watchlist.csv line 2 column 14"
    assert "unterminated quote" in p.message


def test_unterminated_quote_at_the_end_of_the_file(tmp_path):
    p = only_problem(pack_with_table(tmp_path, "watchlist.csv", WATCH_HEADER + b'seller_id,"S1,r,,'))
    assert where(p) == "watchlist.csv line 2 column 11" and "unterminated quote" in p.message


@pytest.mark.parametrize("row, col, fragment", [
    (b"seller_id,S1,counterfeit,2026-01-01,2026-12-31,extra\n", 48, "6 fields where the header has 5 (extra"),
    (b"seller_id,S1,counterfeit\n", 25, "3 fields where the header has 5 (missing"),
])
def test_rows_with_extra_or_missing_fields(tmp_path, row, col, fragment):
    p = only_problem(pack_with_table(tmp_path, "watchlist.csv", WATCH_HEADER + b"consignee_id,C2,r,,\n" + row))
    assert where(p) == f"watchlist.csv line 3 column {col}"
    assert fragment in p.message


def test_latin1_byte_is_refused_with_its_position(tmp_path):
    body = WATCH_HEADER + "seller_id,S1,contrefa\u00e7on,,\n".encode("latin-1")
    p = only_problem(pack_with_table(tmp_path, "watchlist.csv", body))
    assert where(p) == "watchlist.csv line 2 column 22"
    assert "0xe7 is not UTF-8" in p.message


def test_utf8_bom_is_refused_rather_than_hidden_in_a_column_name(tmp_path):
    p = only_problem(pack_with_table(tmp_path, "watchlist.csv", b"\xef\xbb\xbf" + WATCH_HEADER + b"seller_id,S1,r,,\n"))
    assert where(p) == "watchlist.csv line 1 column 1" and "byte-order mark" in p.message


def test_inverted_validity_dates_are_refused(tmp_path):
    body = WATCH_HEADER + b"seller_id,S1,r,,\nconsignee_id,C9,r,2027-01-01,2026-01-01\n"
    p = only_problem(pack_with_table(tmp_path, "watchlist.csv", body))
    assert where(p) == "watchlist.csv line 3 column 19"
    assert "valid_from 2027-01-01 is after valid_until 2026-01-01" in p.message


def test_bad_date_and_bad_number_name_their_cell(tmp_path):
    p = only_problem(pack_with_table(tmp_path, "watchlist.csv", WATCH_HEADER + b"seller_id,S1,r,2026-13-01,\n"))
    assert where(p) == "watchlist.csv line 2 column 16" and "not a date" in p.message
    rule = {"id": "V", "weight": 0.8, "condition": "value_usd > 1"}
    p = only_problem(pack_with_table(tmp_path, "fx.csv", b"currency,usd_per_unit\nUSD,1.0\nCNY,0,14\n", [rule]))
    assert where(p) == "fx.csv line 3 column 7" and "3 fields where the header has 2" in p.message
    p = only_problem(pack_with_table(tmp_path, "fx.csv", b"currency,usd_per_unit\nUSD,1.0\nCNY,0.l4\n", [rule]))
    assert where(p) == "fx.csv line 3 column 5" and "usd_per_unit must be a number, got '0.l4'" in p.message


def test_a_broken_table_is_reported_once_however_many_rules_read_it(tmp_path):
    rules = [WATCHLIST_RULE, {"id": "W2", "weight": 0.5, "condition": "watchlisted(seller_id)"}]
    p = only_problem(pack_with_table(tmp_path, "watchlist.csv", WATCH_HEADER + b"seller_id,S1,r\n", rules))
    assert p.rule_id is None and "watchlist.csv line 2" in p.where


def test_duplicate_or_empty_column_names(tmp_path):
    p = only_problem(pack_with_table(tmp_path, "words.csv", b"term,term\ngift,x\n", [TERMS_RULE]))
    assert where(p) == "words.csv line 1 column 6" and "appears twice" in p.message
    p = only_problem(pack_with_table(tmp_path, "words.csv", b"term,\ngift,x\n", [TERMS_RULE]))
    assert where(p) == "words.csv line 1 column 6" and "no name" in p.message


def test_a_good_table_with_quotes_blank_lines_and_crlf_still_reads(tmp_path):
    body = WATCH_HEADER.replace(b"\n", b"\r\n") + b'seller_id,"S1","a reason, with a comma",,\r\n\r\nseller_id,S2,r,,\r\n'
    path = pack_with_table(tmp_path, "watchlist.csv", body, [{"id": "W", "weight": 0.8,
                                                              "condition": "watchlisted(seller_id)"}])
    pack, problems = read_pack(path)
    assert problems == []
    terms = {e.term for e in pack.rules[0].ir.pred.entries}
    assert {"S1", "S2"} <= terms


# --- the pack file itself --------------------------------------------------------------------------

def test_toml_syntax_error_names_line_and_column(tmp_path):
    path = write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "declared_value > 1"}], red=0.5)
    path.write_text(path.read_text().replace("weight = 0.5", "weight = = 0.5"))
    p = only_problem(path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "weight = = 0.5" in text)
    assert p.where == f"{path} line {line} column 10" and "not valid TOML" in p.message


def test_pack_file_bom_and_latin1(tmp_path):
    path = write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "declared_value > 1"}], red=0.5)
    text = path.read_bytes()
    path.write_bytes(b"\xef\xbb\xbf" + text)
    assert "byte-order mark" in only_problem(path).message
    path.write_bytes(text.replace(b'version = "1"', b'version = "caf\xe9"'))
    p = only_problem(path)
    assert p.where == f"{path} line 3 column 15" and "0xe9 is not UTF-8" in p.message


def test_deeply_nested_toml_and_examples_are_problems_not_crashes(tmp_path):
    path = write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "declared_value > 1"}], red=0.5)
    base = path.read_text()
    path.write_text(base + "deep = " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in only_problem(path).message
    path.write_text(base + '\n[[rules.examples]]\nhit = true\nparcel = """' + '{"a":' * 50_000 + "1" + "}" * 50_000 + '"""\n')
    p = only_problem(path)
    header = path.read_text().splitlines().index("[[rules.examples]]") + 1
    assert "nested deeper than" in p.message and p.where == f"(pack line {header})"
    path.write_text(base + "\n[[rules.examples]]\nhit = true\nparcel = { items = " + "[" * 40 + "]" * 40 + " }\n")
    assert "nested deeper than" in only_problem(path).message
    path.write_text(base + "\n[[rules.examples]]\nhit = true\nparcel = { items = [1, 2] }\n")
    assert "items must be an array of tables" in only_problem(path).message


def test_rule_problems_cite_the_offending_line(tmp_path):
    path = tmp_path / "pack.toml"
    write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "declared_value > 1"}], red=0.5)
    path.write_text(path.read_text().replace(
        "condition = '''declared_value > 1'''",
        'lane_floor = "purple"\ncondition = """\ndeclared_value > 1\n  and gross_weigth_kg < 1\n"""'))
    lines = path.read_text().splitlines()
    _, problems = read_pack(path)
    text = {str(p) for p in problems}
    typo_line = next(n for n, t in enumerate(lines, 1) if "gross_weigth_kg" in t)
    floor_line = next(n for n, t in enumerate(lines, 1) if "purple" in t)
    assert any(f"rule A condition 2:7 (pack line {typo_line})" in t and "gross_weigth_kg" in t for t in text), text
    assert any(f"(pack line {floor_line})" in t and "lane_floor" in t for t in text), text


# --- the command line: one clear line per problem, exit 1, no traceback -------------------------------

@pytest.mark.parametrize("command", ["check", "test", "explain", "compile"])
def test_rules_commands_refuse_a_broken_table_without_a_traceback(tmp_path, command):
    path = pack_with_table(tmp_path, "watchlist.csv", WATCH_HEADER + b"seller_id,S1,r,,,\n")
    args = ["rules", command, str(path)] + (["--parcel", "{}"] if command == "explain" else [])
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "Traceback" not in r.output
    assert "watchlist.csv line 2 column 18: 6 fields where the header has 5" in r.output
