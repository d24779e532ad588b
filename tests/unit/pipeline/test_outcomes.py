"""Inspection outcomes: decoding and validation (screener/pipeline/outcomes.py) against the schema and the doc."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.pipeline.columns import event_time_ms
from screener.pipeline.decode import RawMessage, Rejection
from screener.pipeline.outcomes import OUTCOME_REASONS, Outcome, decode_outcome, decode_outcomes, validate_outcome
from screener.schemas import load

DOC = Path(__file__).resolve().parents[3] / "docs" / "wire-format.md"
GOOD = {"parcel_id": "P-1", "inspected_at": "2026-11-11T08:00:00Z", "illicit": True}


def schema_ok(obj: object) -> bool:
    return jsonschema.Draft202012Validator(load("inspection")).is_valid(obj)


def labels(n: int = 500, seed: int = 1) -> list[dict]:
    gen = ManifestGenerator(GeneratorConfig(manifests=1, parcels_per_manifest=n, seed=seed))
    list(gen.manifests())
    return list(gen.outcomes(inspected_at=gen.config.start.isoformat()))


def test_the_generators_labels_are_valid_outcomes_as_they_are():
    for label in labels():
        assert schema_ok(label)
        o = decode_outcome(orjson.dumps(label))
        assert o == Outcome(label["parcel_id"], 1_794_355_200_000, label["illicit"], "red", label["revenue"],
                            label["finding_code"], "synthetic ground truth")


def test_the_doc_example_is_line_10_of_the_generators_labels():
    text = DOC.read_text()
    section = text[text.index("## In: `inspections`"):]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    assert example == labels()[9] and example["illicit"] is True
    assert schema_ok(example) and type(decode_outcome(orjson.dumps(example))) is Outcome
    # Every reason code this module gives is named in the section.
    body = section[:section.index("\n## ")]
    assert all(f"`{code}`" in body for code in OUTCOME_REASONS)


def test_optional_fields_absent_or_null_and_other_fields_ignored():
    o = validate_outcome({**GOOD, "lane": None, "revenue": None, "note": None, "extra": [1, 2]})
    assert o == Outcome("P-1", 1_794_384_000_000, True)
    o = validate_outcome({**GOOD, "schema_version": 1, "inspected_at": 5, "lane": "green", "revenue": 3,
                          "finding_code": "", "note": "n", "manifest_id": "M-1"})
    assert o == Outcome("P-1", 5, True, "green", 3.0, "", "n", "M-1") and type(o.revenue) is float


def test_parcel_ids_are_kept_exactly_not_normalised():
    assert validate_outcome({**GOOD, "parcel_id": " p-ABC\u200b "}).parcel_id == " p-ABC\u200b "


@pytest.mark.parametrize(("change", "reason", "field"), [
    ({"schema_version": 2}, "unknown_schema_version", "schema_version"),
    ({"schema_version": None}, "unknown_schema_version", "schema_version"),
    ({"schema_version": True}, "unknown_schema_version", "schema_version"),
    ({"parcel_id": None}, "missing_field", "parcel_id"),
    ({"parcel_id": ""}, "missing_field", "parcel_id"),
    ({"parcel_id": 7}, "wrong_type", "parcel_id"),
    ({"parcel_id": "x" * 129}, "bad_format", "parcel_id"),
    ({"inspected_at": None}, "missing_field", "inspected_at"),
    ({"inspected_at": "yesterday"}, "bad_event_time", "inspected_at"),
    ({"inspected_at": -1}, "bad_event_time", "inspected_at"),
    ({"inspected_at": 2**53}, "bad_event_time", "inspected_at"),
    ({"inspected_at": 1.5e12}, "bad_event_time", "inspected_at"),
    ({"inspected_at": True}, "bad_event_time", "inspected_at"),
    ({"illicit": None}, "missing_field", "illicit"),
    ({"illicit": "true"}, "wrong_type", "illicit"),
    ({"illicit": 1}, "wrong_type", "illicit"),
    ({"lane": "RED"}, "bad_format", "lane"),
    ({"lane": 2}, "wrong_type", "lane"),
    ({"revenue": -0.01}, "negative_value", "revenue"),
    ({"revenue": "12.5"}, "wrong_type", "revenue"),
    ({"revenue": False}, "wrong_type", "revenue"),
    ({"revenue": float("inf")}, "negative_value", "revenue"),
    ({"revenue": 10**400}, "negative_value", "revenue"),
    ({"finding_code": "F" * 65}, "bad_format", "finding_code"),
    ({"finding_code": 3}, "wrong_type", "finding_code"),
    ({"note": "n" * 1025}, "bad_format", "note"),
    ({"manifest_id": ["M"]}, "wrong_type", "manifest_id"),
])
def test_each_problem_has_its_reason_and_field(change, reason, field):
    r = validate_outcome({**GOOD, **change})
    assert type(r) is Rejection and (r.reason, r.field) == (reason, field), r
    assert reason in OUTCOME_REASONS and r.message


def test_inspected_at_messages_name_the_field():
    r = validate_outcome({**GOOD, "inspected_at": "2026-13-01"})
    assert r.message == "`inspected_at` '2026-13-01' is not ISO 8601"


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty_message"), (b"", "empty_message"), (b"x" * 100, "too_large"), (b"{", "not_json"),
    (b"[1]", "not_object"), (b'"P-1"', "not_object"), (b"NaN", "not_json"),
])
def test_message_level_reasons(value, reason):
    assert decode_outcome(value, max_bytes=64).reason == reason


def test_decode_outcomes_splits_a_batch_in_order():
    raws = [RawMessage(orjson.dumps({**GOOD, "parcel_id": f"P-{i}"}) if i % 3 else b"oops", offset=i)
            for i in range(9)]
    outcomes, rejected = decode_outcomes(raws)
    assert [o.parcel_id for o in outcomes] == ["P-1", "P-2", "P-4", "P-5", "P-7", "P-8"]
    assert [(raw.offset, r.reason) for raw, r in rejected] == [(0, "not_json"), (3, "not_json"), (6, "not_json")]


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 10),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5))
TIMES = ["2026-11-11", "2026-11-11T00:00:00Z", "2026-11-11T00:00:00.123+08:00", "20261111T000000"]
VALID = st.fixed_dictionaries({
    "parcel_id": st.text(min_size=1, max_size=128),
    "inspected_at": st.one_of(st.integers(0, 2**53 - 1), st.sampled_from(TIMES)),
    "illicit": st.booleans(),
}, optional={
    "schema_version": st.just(1),
    "lane": st.sampled_from(["green", "yellow", "red", None]),
    "revenue": st.one_of(st.none(), st.integers(0, 10**6), st.floats(0, 1e9)),
    "finding_code": st.one_of(st.none(), st.text(max_size=64)),
    "note": st.one_of(st.none(), st.text(max_size=20), st.just("n" * 1024)),
    "manifest_id": st.one_of(st.none(), st.text(max_size=128)),
    "other": JSON_SCALARS,
})
BAD_VALUES = {
    "schema_version": st.sampled_from([2, 0, None, "1", True]),
    "parcel_id": st.one_of(JSON_SCALARS, st.just(""), st.just("x" * 129)),
    "inspected_at": st.one_of(st.sampled_from([-1, 2**53, "", "nope", "2026-02-30", True, None]),
                              st.lists(st.integers(-5, 5), max_size=1)),
    "illicit": JSON_SCALARS,
    "lane": st.sampled_from(["Red", "", "blue", 1, True]),
    "revenue": st.one_of(st.floats(max_value=-1e-9, allow_infinity=False), st.text(max_size=3), st.booleans()),
    "finding_code": st.one_of(JSON_SCALARS, st.just("F" * 65)),
    "note": st.one_of(JSON_SCALARS, st.just("n" * 1025)),
    "manifest_id": st.one_of(JSON_SCALARS, st.just("M" * 129)),
}
MUTATIONS = st.lists(st.sampled_from(sorted(BAD_VALUES)).flatmap(
    lambda f: st.tuples(st.just(f), st.one_of(BAD_VALUES[f], st.just(KeyError)))), max_size=2)


def _mutated(obj: dict, changes: list) -> dict:
    obj = dict(obj)
    for name, value in changes:
        if value is KeyError:
            obj.pop(name, None)
        else:
            obj[name] = value
    return obj


HOSTILE_OBJECTS = st.builds(_mutated, VALID, MUTATIONS)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE_OBJECTS)
def test_the_code_accepts_exactly_what_the_schema_accepts(obj):
    # inspected_at strings are the one rule a JSON Schema cannot state (fromisoformat); the others agree.
    result = validate_outcome(obj)
    valid_time = type(event_time_ms(obj.get("inspected_at"))) is int
    if type(result) is Outcome:
        assert schema_ok(obj)
        assert (result.parcel_id, result.illicit) == (obj["parcel_id"], obj["illicit"])
    elif valid_time or type(obj.get("inspected_at")) is not str:
        assert not schema_ok(obj), (obj, result)
    assert type(result) is Outcome or result.reason in OUTCOME_REASONS


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=200), st.none(),
                          HOSTILE_OBJECTS.map(orjson.dumps),
                          HOSTILE_OBJECTS.map(lambda o: orjson.dumps(o)[: len(orjson.dumps(o)) // 2]),
                          st.recursive(JSON_SCALARS, lambda c: st.lists(c, max_size=3)
                                       | st.dictionaries(st.text(max_size=3), c, max_size=3)).map(orjson.dumps)),
                max_size=8))
def test_hostile_bytes_never_raise_and_every_message_is_an_outcome_or_a_rejection(values):
    raws = [RawMessage(v, offset=i) for i, v in enumerate(values)]
    outcomes, rejected = decode_outcomes(raws, max_bytes=150)
    assert len(outcomes) + len(rejected) == len(raws)
    assert all(type(o) is Outcome for o in outcomes)
    assert all(type(r) is Rejection and r.reason in OUTCOME_REASONS and r.reason != "unknown_parcel" and r.message
               for _, r in rejected)
    accepted = {raw.offset for raw in raws} - {raw.offset for raw, _ in rejected}
    assert [o.parcel_id for o in outcomes] == [orjson.loads(raws[i].value)["parcel_id"] for i in sorted(accepted)]
