"""Validation and column building, against a plain per-parcel reference and hostile input."""

import copy
import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.generator import PARCEL_DEFECTS, GeneratorConfig, ManifestGenerator, break_parcel
from screener.pipeline.batch import ITEM_NUMBER_FIELDS, PARCEL_NUMBER_FIELDS, PARCEL_STRING_FIELDS
from screener.pipeline.columns import BatchBuilder
from screener.pipeline.decode import DecodedMessage, RawMessage, decode


def manifest(n=20, seed=5):
    return ManifestGenerator(GeneratorConfig(manifests=1, parcels_per_manifest=n, seed=seed)).manifest(0)


def decoded(m):
    return decode(RawMessage(orjson.dumps(m)), 1 << 22)


def test_columns_match_the_parcels_field_by_field():
    m = manifest()
    batch, rejected = BatchBuilder().build([decoded(m)])
    assert rejected == []
    for i, p in enumerate(m["parcels"]):
        assert batch.parcel_ids[i] == p["parcel_id"]
        for f in PARCEL_STRING_FIELDS:
            assert batch.string_value(f, i) == p.get(f, m.get(f, "")), f
        for f in PARCEL_NUMBER_FIELDS:
            assert batch.numbers[f][i] == p[f], f
        items = range(batch.item_offsets[i], batch.item_offsets[i + 1])
        assert len(items) == len(p["items"])
        for j, it in zip(items, p["items"]):
            assert batch.item_string_value("hs_code", j) == it["hs_code"]
            for f in ITEM_NUMBER_FIELDS:
                assert batch.item_numbers[f][j] == it[f]


@pytest.mark.parametrize("defect", sorted(PARCEL_DEFECTS))
def test_each_defect_sets_aside_only_that_parcel_with_field_and_reason(defect):
    m = manifest()
    reason = break_parcel(m["parcels"][3], defect)
    batch, rejected = BatchBuilder().build([decoded(m)])
    assert batch.n == 19
    assert m["parcels"][3]["parcel_id"] not in batch.parcel_ids
    [rej] = rejected
    assert (rej.parcel_index, rej.rejection.reason) == (3, reason)
    assert rej.rejection.field and rej.rejection.message


def test_item_field_errors_name_the_item():
    m = manifest()
    m["parcels"][2]["items"].append({"hs_code": "12", "description": "x", "quantity": 1, "line_value": 1})
    _, [rej] = BatchBuilder().build([decoded(m)])
    assert rej.rejection.field == f"items[{len(m['parcels'][2]['items']) - 1}].hs_code"


def test_event_time_forms():
    m = manifest(4)
    m["parcels"][0]["event_time"] = "2026-11-11T08:00:00+08:00"
    m["parcels"][1]["event_time"] = 1794355200000
    m["parcels"][2]["event_time"] = "2026-11-11T00:00:00"
    m["parcels"][3]["event_time"] = "yesterday"
    batch, [rej] = BatchBuilder().build([decoded(m)])
    assert batch.event_time_ms.tolist() == [1794355200000] * 3
    assert rej.rejection.reason == "bad_event_time"


def test_duplicate_parcel_id_in_a_manifest_keeps_the_first():
    m = manifest(5)
    m["parcels"].append(copy.deepcopy(m["parcels"][1]))
    batch, [rej] = BatchBuilder().build([decoded(m)])
    assert batch.n == 5 and rej.parcel_index == 5 and rej.rejection.reason == "duplicate_parcel_id"


def test_item_origin_defaults_to_the_parcel_origin():
    m = manifest(3)
    for it in m["parcels"][0]["items"]:
        it.pop("origin_country")
    m["parcels"][0]["origin_country"] = "NZ"
    batch, _ = BatchBuilder().build([decoded(m)])
    j = batch.item_offsets[0]
    assert batch.item_string_value("origin_country", j) == "NZ"


def test_bool_is_not_a_number_and_text_is_not_a_number():
    m = manifest(3)
    m["parcels"][0]["freight"] = True
    m["parcels"][1]["declared_value"] = "10"
    _, rejected = BatchBuilder().build([decoded(m)])
    assert [(r.parcel_index, r.rejection.reason, r.rejection.field) for r in rejected] == \
        [(0, "wrong_type", "freight"), (1, "wrong_type", "declared_value")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_hostile_parcels_never_raise_and_every_parcel_is_accounted_for(data):
    m = manifest(6, seed=data.draw(st.integers(0, 5)))
    for p in m["parcels"]:
        if data.draw(st.booleans()):
            target = p if data.draw(st.booleans()) else p["items"][0]
            key = data.draw(st.sampled_from(sorted(target)))
            if data.draw(st.booleans()):
                target.pop(key)
            else:
                target[key] = data.draw(json_values)
    m["parcels"].append(data.draw(json_values))
    msg = decoded(m)
    if not isinstance(msg, DecodedMessage):
        return
    batch, rejected = BatchBuilder().build([msg])
    assert batch.n + len(rejected) == len(m["parcels"])
    assert len(batch.item_offsets) == batch.n + 1
    for f, col in batch.numbers.items():
        assert len(col) == batch.n
        if f in ("gross_weight_kg", "declared_value"):
            assert np.all(np.isfinite(col)) and np.all(col >= 0)
    assert all(math.isfinite(x) for x in batch.item_numbers["quantity"])


@pytest.mark.parametrize("value", ["nowZ", "todayZ", "NaTZ", "2026-13-40T00:00:00Z", ""])
def test_words_numpy_would_parse_are_not_event_times(value):
    m = manifest(3)
    m["parcels"][1]["event_time"] = value
    batch, [rej] = BatchBuilder().build([decoded(m)])
    assert rej.parcel_index == 1 and rej.rejection.reason == "bad_event_time"
    assert batch.n == 2 and (batch.event_time_ms > 1_700_000_000_000).all()
