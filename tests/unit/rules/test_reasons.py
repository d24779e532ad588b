"""Reasons worded for inspectors (screener/rules/reasons.py), and the wire-format doc's reasons = what is emitted."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from screener.pipeline.batch import LANE_NAMES
from screener.pipeline.screening import load_screener
from screener.rules.parcels import batch_from_parcels
from screener.rules.reasons import batch_facts, key_facts, line, list_name, number, percent, summary
from screener.schemas import validator

from .helpers import make_batch

DOC = Path(__file__).resolve().parents[3] / "docs" / "wire-format.md"

# The two parcels the doc's examples show (docs/wire-format.md, decisions and flagged).
BASE = {"event_time": "2026-11-11T00:21:00.000Z", "declaration_type": "CN_9610", "seller_id": "S-00006",
        "consignee_id": "C-0000017", "origin_country": "JP", "currency": "CNY"}
UNDERVALUED = {**BASE, "parcel_id": "P001-0000042-0013", "gross_weight_kg": 0.62, "net_weight_kg": 0.57,
               "declared_value": 4.5, "freight": 2.0, "paid_amount": 6.91, "tax_withheld": 0.41,
               "items": [{"hs_code": "8517130000", "description": "smartphone 128GB", "quantity": 1, "unit": "pcs",
                          "unit_price": 4.5, "line_value": 4.5, "origin_country": "JP"}]}
PROHIBITED = {**BASE, "parcel_id": "P001-0000042-0014", "gross_weight_kg": 0.295, "net_weight_kg": 0.214,
              "declared_value": 31.18, "freight": 2.92, "paid_amount": 36.94, "tax_withheld": 2.84,
              "items": [{"hs_code": "9302000000", "description": "spare grip panel", "quantity": 1, "unit": "pcs",
                         "unit_price": 31.18, "line_value": 31.18, "origin_country": "JP"}]}


@pytest.fixture(scope="module")
def screener():
    return load_screener("rules/default.toml")


def doc_example(section: str) -> dict:
    """The first ```json block after a heading of the wire-format doc."""
    text = DOC.read_text()
    start = text.index(section)
    block = re.search(r"```json\n(.*?)```", text[start:], re.S)
    return json.loads(block.group(1))


def reason_validator():
    """Validates one reason against the `reason` definition of the decision schema."""
    import jsonschema
    from referencing import Registry, Resource

    from screener.schemas import NAMES, load

    registry = Registry().with_resources((load(n)["$id"], Resource.from_contents(load(n))) for n in NAMES)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$ref": load("decision")["$id"] + "#/$defs/reason"}
    return jsonschema.Draft202012Validator(schema, registry=registry).validate


def explained(screener, parcels):
    batch = batch_from_parcels(parcels)
    result = screener.screen(batch)
    return batch, result, screener.explain_many(batch, result, np.arange(batch.n))


def test_wire_format_examples_validate_against_the_schemas():
    validator("decision")(doc_example("## Out: `decisions`"))
    validator("flagged")(doc_example("## Out: `flagged`"))


def test_wire_format_examples_show_what_the_program_emits(screener):
    _, result, reasons = explained(screener, [UNDERVALUED, PROHIBITED])
    decision = doc_example("## Out: `decisions`")["decisions"][1]
    assert decision["parcel_id"] == UNDERVALUED["parcel_id"]
    assert orjson.loads(orjson.dumps([r.as_dict() for r in reasons[0]])) == decision["reasons"]
    assert (LANE_NAMES[int(result.lane[0])], round(float(result.score[0]), 6)) == (decision["lane"], decision["score"])
    flagged = doc_example("## Out: `flagged`")
    assert orjson.loads(orjson.dumps([r.as_dict() for r in reasons[1]])) == flagged["reasons"]
    batch = batch_from_parcels([UNDERVALUED, PROHIBITED])
    assert batch_facts(batch, [1, 0]) == [key_facts(PROHIBITED), key_facts(UNDERVALUED)]
    assert summary(LANE_NAMES[int(result.lane[1])], float(result.score[1]), reasons[1],
                   batch_facts(batch, [1])[0]) == flagged["summary"]


def test_reasons_name_units_currency_terms_and_thresholds(screener):
    parcel = {**UNDERVALUED, "consignee_id": "C-WATCH-0001", "paid_amount": 300.0,
              "items": [UNDERVALUED["items"][0], {**PROHIBITED["items"][0], "description": "Fake Nike shoes"}]}
    _, result, reasons = explained(screener, [parcel])
    by_rule = {r.rule_id: r for r in reasons[0]}
    r1 = by_rule["R1_UNDERVALUED_PER_KG"].text
    assert "value per kg USD 1.11/kg is below USD" in r1 and "/kg (lowest reference band minimum of the items)" in r1
    r4 = by_rule["R4_PROHIBITED_HS"]
    assert r4.values["matched"] == ["9302"] and r4.values["item"] == 1
    assert 'item 2 of 2: HS code "9302000000" starts with "9302"' in r4.text and "(lane at least red)" in r4.text
    r5 = by_rule["R5_PROHIBITED_DESCRIPTION"]
    assert r5.values["matched"] == ["fake nike"] and 'contains "fake nike" (prohibited_terms)' in r5.text
    r8 = by_rule["R8_WATCHLIST"]
    assert r8.values["matched"] == ["C-WATCH-0001"] and "is on the consignee_id watchlist" in r8.text
    r13 = by_rule["R13_PAID_AMOUNT_MISMATCH"].text
    assert ("difference between paid amount and declared_value + max(freight, 0) + max(tax_withheld, 0) "
            "CNY 293.09 is above CNY 15.00 (0.05 × paid amount)") in r13     # |300 - 6.91| against 5% of 300
    assert all(isinstance(v, float) for k, v in by_rule["R1_UNDERVALUED_PER_KG"].values.items() if k != "because")
    text = summary(LANE_NAMES[int(result.lane[0])], float(result.score[0]), reasons[0])
    assert text.startswith("RED (score ") and text.count(" | ") == len(reasons[0]) - 1
    shares = [percent(r.contribution) for r in reasons[0]]
    assert all(re.fullmatch(r"\+(\d+|<1)%", s) for s in shares) and f"R1_UNDERVALUED_PER_KG {shares[0]}: " in text


def test_summary_and_line_read_wire_dicts_as_tail_gets_them(screener):
    _, result, reasons = explained(screener, [PROHIBITED])
    wire = orjson.loads(orjson.dumps([r.as_dict() for r in reasons[0]]))
    assert summary("red", 0.9, wire) == summary("red", 0.9, reasons[0])
    assert line(wire[0]).startswith("R4_PROHIBITED_HS +90%: An item's HS code is on the prohibited list: ")
    assert line({"rule_id": "random", "contribution": 0.0, "text": "picked"}) == "random: picked"
    assert summary("yellow", 0.31, []) == "YELLOW (score 0.31)"
    many = {**PROHIBITED, "departure_country": "HK", "items": PROHIBITED["items"] * 4}
    text = summary("red", 0.9, wire, key_facts(many))
    assert text.startswith("RED (score 0.90; origin JP via HK, CNY 31.18 declared, 0.214 kg, "
                           "4 items (HS 9302000000, 9302000000, 9302000000, ...)): R4_PROHIBITED_HS +90%: ")
    assert batch_facts(batch_from_parcels([many]), [0]) == [key_facts(many)]
    no_net = {**PROHIBITED, "net_weight_kg": 0.0}       # the weight shown is the rules' weight_kg
    assert [key_facts(no_net)] == batch_facts(batch_from_parcels([no_net]), [0]) and ", 0.295 kg, " in key_facts(no_net)
    assert key_facts({"items": "not a list", "declared_value": True}) == ""


def test_hostile_values_stay_valid_json_and_read_as_missing_or_infinite(screener):
    parcels = [{"parcel_id": "inf", "currency": "USD", "declared_value": math.inf, "net_weight_kg": 1.0,
                "gross_weight_kg": 1.0, "paid_amount": math.nan,
                "items": [{"hs_code": "8517130000", "description": "", "origin_country": "JP"}]},
               {"parcel_id": "no-currency", "currency": "", "declared_value": 5.0, "net_weight_kg": 0.0,
                "gross_weight_kg": 0.0, "paid_amount": 1.0, "items": []}]
    batch = make_batch(parcels)
    result = screener.screen(batch)
    reasons = screener.explain_many(batch, result, np.arange(batch.n))
    check = reason_validator()
    for rs in reasons:
        for r in rs:
            check(orjson.loads(orjson.dumps(r.as_dict())))
    above = {r.rule_id: r for r in reasons[0]}["R9_VALUE_PER_KG_ABOVE_BAND"]
    assert above.values["value_per_kg"] == "inf" and "value per kg infinite is above USD 8,000.00/kg" in above.text
    mismatch = {r.rule_id: r for r in reasons[1]}["R13_ITEMS_VS_DECLARED"]
    assert mismatch.values["abs(items_value - declared_value)"] == 5.0
    assert "? 5.00 is above ? 1.10" in mismatch.text      # the currency is unknown


@pytest.mark.parametrize(("value", "unit", "currency", "want"), [
    (1.10526, "USD/kg", "CNY", "USD 1.11/kg"),
    (1234.5, "CUR", "CNY", "CNY 1,234.50"),
    (1234.5, "CUR", "", "? 1,234.50"),
    (0.004, "USD", "", "USD 0.004"),
    (0.2146, "kg", "", "0.215 kg"),
    (3.0, "words", "", "3 words"),
    (1234567.0, None, "", "1,234,567"),
    (0.05, None, "", "0.05"),
    (math.nan, "USD", "", "missing"),
    (None, "kg", "", "missing"),
    (math.inf, "USD/kg", "", "infinite"),
    (-math.inf, None, "", "minus infinite"),
    (0.14, "USD per unit", "CNY", "USD 0.14 per CNY"),
])
def test_numbers_are_rounded_with_their_units(value, unit, currency, want):
    assert number(value, unit, currency) == want


def test_percentages_and_list_names():
    assert [percent(c) for c in (0.341532, 0.6, 0.004, 0.0)] == ["+34%", "+60%", "+<1%", "+0%"]
    assert list_name('table("restricted_hs", "hs_prefix", kind="prohibited")') == "restricted_hs where kind=prohibited"
    assert list_name('table("risky_routes", "origin_country", "departure_country")') == "risky_routes"
    assert list_name("table('restricted_hs', 'hs_prefix', kind='licensed')") == "restricted_hs where kind=licensed"
    assert list_name("watchlist[seller_id]") == "the seller_id watchlist"
    assert list_name("['gift', 'sample']") == "['gift', 'sample']"


def test_rules_explain_prints_the_worded_reasons():
    from click.testing import CliRunner

    from screener.cli import main

    r = CliRunner().invoke(main, ["rules", "explain", "rules/default.toml", "--parcel", json.dumps(PROHIBITED)])
    assert r.exit_code == 0, r.output
    assert ('R4_PROHIBITED_HS                   FIRED  +90%: An item\'s HS code is on the prohibited list: item 1 of 1: '
            'HS code "9302000000" starts with "9302"') in r.output


def test_matched_terms_are_those_valid_on_the_parcels_date(tmp_path, scratch_cache):
    from screener.rules import load_pack
    from screener.rules.screener import PackScreener

    from .helpers import write_pack

    path = write_pack(tmp_path, [{"id": "T", "weight": 0.5, "description": "prohibited goods",
                                  "condition": "any_item(contains_any(description, table('terms', 'term')))"}], red=0.5)
    screener = PackScreener(load_pack(path), scratch_cache)
    parcels = [{"event_time": t, "currency": "USD", "items": [{"description": "shoes"},
                                                              {"description": "Fake-Nike pistol cocaine"}]}
               for t in ("2026-11-11T00:00:00Z", "2027-03-01T00:00:00Z", "2026-07-15T00:00:00Z")]
    batch = make_batch(parcels)
    result = screener.screen(batch)
    reasons = screener.explain_many(batch, result, np.arange(batch.n))
    assert [r[0].values["matched"] for r in reasons] == [["cocaine", "fake nike"], ["cocaine", "fake nike", "pistol"],
                                                         ["cocaine"]]
    assert [r[0].values["item"] for r in reasons] == [1, 1, 1]
    assert reasons[1][0].text == ('prohibited goods: item 2 of 2: description "Fake-Nike pistol cocaine" contains '
                                  '"cocaine" / "fake nike" / "pistol" (terms)')
