"""`screener rules check | test | explain | compile` through click, as an analyst runs them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from screener.cli import main

from .helpers import write_pack

DEFAULT_PACK = str(Path(__file__).resolve().parents[3] / "rules" / "default.toml")


def run(*args: str):
    return CliRunner().invoke(main, ["rules", *args], catch_exceptions=False)


def test_check_default_pack():
    r = run("check", DEFAULT_PACK)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("ok: pack default")


def test_check_lists_every_problem_and_exits_1(tmp_path):
    path = write_pack(tmp_path, [{"id": "A", "weight": 2, "condition": "open('/etc/passwd') == 1"},
                                 {"id": "B", "weight": 0.5, "condition": "declared_value.__class__ > 1"}])
    r = run("check", str(path))
    assert r.exit_code == 1
    assert "4 problem(s)" in r.output   # weight, open(), the dunder, the attribute access
    assert "rule A condition 1:1" in r.output and "function 'open' is not allowed" in r.output
    assert "weight must be between" in r.output and "'__class__'" in r.output


def test_test_default_pack_passes():
    r = run("test", DEFAULT_PACK)
    assert r.exit_code == 0, r.output
    assert "FAIL" not in r.output and "examples passed" in r.output


def test_test_exits_1_on_a_wrong_example(tmp_path, scratch_cache):
    path = write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "declared_value > 1000"}], red=0.5)
    path.write_text(path.read_text() + "\n[[rules.examples]]\nhit = true\nparcel = { declared_value = 5.0 }\n")
    r = run("test", str(path), "--cache-dir", str(scratch_cache))
    assert r.exit_code == 1
    assert "FAIL A[0]" in r.output and "expected a hit, got no hit" in r.output


def test_explain_shows_each_rule_with_values():
    parcel = {"parcel_id": "P1", "event_time": "2026-11-11T10:00:00Z", "declaration_type": "CN_9610",
              "seller_id": "S-1", "consignee_id": "C-WATCH-0001", "origin_country": "JP", "currency": "USD",
              "gross_weight_kg": 0.2, "net_weight_kg": 0.35, "declared_value": 10.0,
              "items": [{"hs_code": "8517130000", "description": "smartphone", "quantity": 1, "line_value": 10.0,
                         "unit_price": 10.0}]}
    r = run("explain", DEFAULT_PACK, "--parcel", json.dumps(parcel))
    assert r.exit_code == 0, r.output
    assert "parcel P1: lane red" in r.output
    assert "R1_UNDERVALUED_PER_KG" in r.output and "value_per_kg=28.5714 < min_item(" in r.output
    assert "R9_GROSS_BELOW_NET" in r.output and "gross_weight_kg=0.2 < net_weight_kg=0.35" in r.output
    assert "R8_WATCHLIST" in r.output and "consignee_id='C-WATCH-0001' in watchlist[consignee_id]" in r.output
    # Rules that did not fire say which part failed.
    assert "not (abs(paid_amount - (declared_value + max(freight, 0) + max(tax_withheld, 0)))=" in r.output
    r = run("explain", DEFAULT_PACK, "--parcel", json.dumps({"parcels": [parcel]}), "--json")
    doc = json.loads(r.output)
    fired = {row["rule_id"] for row in doc["rules"] if row["fired"]}
    assert {"R1_UNDERVALUED_PER_KG", "R9_GROSS_BELOW_NET", "R8_WATCHLIST"} <= fired
    assert abs(sum(x["contribution"] for x in doc["reasons"]) - doc["score"]) < 1e-5


def test_explain_refuses_invalid_parcels():
    r = CliRunner().invoke(main, ["rules", "explain", DEFAULT_PACK, "--parcel", '{"parcel_id": "x"}'])
    assert r.exit_code != 0 and "invalid parcel" in r.output


def test_compile_reports_rules_and_shapes(scratch_cache):
    r = run("compile", DEFAULT_PACK, "--cache-dir", str(scratch_cache))
    assert r.exit_code == 0, r.output
    assert "with 14 rules (12 distinct shapes) ready in" in r.output


def test_compile_into_an_unwritable_cache_is_one_error_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    # A pack of its own: a kernel this process already loaded would not touch the cache directory.
    pack = write_pack(tmp_path, [{"id": "A", "weight": 0.5, "condition": "declared_value > 987654.25"}], red=0.5)
    r = CliRunner().invoke(main, ["rules", "compile", str(pack), "--cache-dir", str(blocker / "cache")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.startswith("Error: cannot compile the kernel:")
