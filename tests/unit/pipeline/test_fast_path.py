"""The Numba fast path and the reference path are one function: same columns, dead letters and decisions.

Like numbagg pairs a kernel with its reference, every property here runs hostile manifests (generator
traffic with fields deleted, retyped, escaped, re-spelled, duplicated; event times and numbers at the
edges; bare parcels; junk) through both paths and compares. A message the scanner takes must give the
reference's columns exactly; every other message is decided by the reference path itself.
"""

from __future__ import annotations

import re

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.pipeline.batch import ITEM_NUMBER_FIELDS, ITEM_STRING_FIELDS, PARCEL_NUMBER_FIELDS, PARCEL_STRING_FIELDS
from screener.pipeline.columns import BatchBuilder
from screener.pipeline.decode import DecodedMessage, RawMessage, decode
from screener.pipeline.fast_columns import FastDecoder
from screener.pipeline.processor import BatchProcessor
from screener.pipeline.screening import load_screener

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def screener():
    return load_screener("rules/default.toml")


def manifests(n: int, per: int, seed: int) -> list[dict]:
    return list(ManifestGenerator(GeneratorConfig(manifests=n, parcels_per_manifest=per, seed=seed)).manifests())


BASE = manifests(3, 6, seed=11)

TRICKY_STRINGS = ["", " ", "é", "中文地址", "a\u200bb", "C-WATCH-0001", "x" * 1025, "x" * 129, "cn", "CNY", "CN",
                  "123456", "12345", "12345678901", "\x00", "tab\there", 'quote"inside', "back\\slash", "\ud7ff"]
TRICKY_NUMBERS = [0, -0.0, 0.0, -1, 1e-7, 1e22, 1e23, 123456789012345678, 2**53, 2**53 + 1, 1.5e300, 0.1, 3.14159,
                  True, None, "12", [], {}]
TRICKY_TIMES = ["2026-11-11T00:00:00Z", "2026-11-11T00:00:00.5Z", "2026-11-11T08:00:00+08:00", "2026-11-11T00:00:00",
                "2026-11-11T00:00:00.123456789Z", "2026-11-11T00:00:00.1234567891Z", "2026-02-29T00:00:00Z",
                "2024-02-29T23:59:59.999-05:30", "10000-01-01T00:00:00Z", "2026-11-11T08:00:00+08:00Z", "nowZ",
                "2026-11-11", "2026-11-11 00:00:00", "20261111T000000Z", "1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z",
                "2026-11-11T24:00:00Z", "2026-11-11t00:00:00z", 0, 1_700_000_000_000, -1, 2**53, 1.7e12, None, True]

PARCEL_FIELDS = ("parcel_id", "event_time", "items") + PARCEL_STRING_FIELDS + PARCEL_NUMBER_FIELDS
ITEM_FIELDS = ITEM_STRING_FIELDS + ITEM_NUMBER_FIELDS


@st.composite
def hostile_manifest(draw) -> bytes:
    """A generator manifest with a few hostile edits, serialised (sometimes re-spelled as text)."""
    m = orjson.loads(orjson.dumps(draw(st.sampled_from(BASE))))
    parcels = m["parcels"][:draw(st.integers(0, len(m["parcels"])))]
    m["parcels"] = parcels
    for _ in range(draw(st.integers(0, 4))):
        if not parcels:
            break
        p = draw(st.sampled_from(parcels))
        edit = draw(st.sampled_from(["delete", "string", "number", "time", "item", "items", "unknown", "dup_id",
                                     "manifest"]))
        if edit == "delete":
            p.pop(draw(st.sampled_from(PARCEL_FIELDS)), None)
        elif edit == "string":
            p[draw(st.sampled_from(("parcel_id",) + PARCEL_STRING_FIELDS))] = draw(st.sampled_from(TRICKY_STRINGS)
                                                                                  | st.text(max_size=8))
        elif edit == "number":
            p[draw(st.sampled_from(PARCEL_NUMBER_FIELDS))] = draw(
                st.sampled_from(TRICKY_NUMBERS) | st.floats(allow_nan=False, allow_infinity=False)
                | st.integers(-10, 2**63 - 1))
        elif edit == "time":
            p["event_time"] = draw(st.sampled_from(TRICKY_TIMES) | st.integers(-5, 2**60))
        elif edit == "item":
            items = [it for it in p.get("items") or [] if isinstance(it, dict)] if isinstance(p.get("items"), list) else []
            item = draw(st.sampled_from(items)) if items else {}
            field = draw(st.sampled_from(ITEM_FIELDS))
            if draw(st.booleans()):
                item.pop(field, None)
            else:
                item[field] = draw(st.sampled_from(TRICKY_STRINGS + TRICKY_NUMBERS))
        elif edit == "items":
            p["items"] = draw(st.sampled_from([[], None, [1], "x", [{}]]))
        elif edit == "unknown":
            p[draw(st.sampled_from(["note", "tags", "parcels", "schema_version"]))] = draw(
                st.sampled_from([{"a": [1, {"b": None}]}, [[[]]], "n", 1.5, None, True]))
        elif edit == "dup_id" and len(parcels) > 1:
            parcels[-1]["parcel_id"] = parcels[0].get("parcel_id")
        elif edit == "manifest":
            key = draw(st.sampled_from(["schema_version", "manifest_id", "carrier_code", "master_bill_no"]))
            m[key] = draw(st.sampled_from([1, 2, 1.0, "1", "", None, "SF-EXPRESS", True]))
    if draw(st.integers(0, 9)) == 0 and parcels:
        doc = dict(parcels[0])                       # a bare parcel
        if draw(st.booleans()):
            doc["manifest_id"] = draw(st.sampled_from(["M-BARE", "", 7]))
    else:
        doc = m
    text = orjson.dumps(doc)
    spelling = draw(st.sampled_from(["plain", "spaces", "escape", "exponent", "dupkey", "trailing", "unicode"]))
    if spelling == "spaces":
        text = text.replace(b",", b" ,\n\t").replace(b":", b" : ")
    elif spelling == "escape":
        text = text.replace(b"JP", b"\\u004aP", 1)
    elif spelling == "exponent":
        text = re.sub(rb'"declared_value":([0-9.]+)', rb'"declared_value":\g<1>e0', text, count=1)
    elif spelling == "dupkey":
        text = text.replace(b'"currency":', b'"currency":"USD","currency":', 1)
    elif spelling == "trailing":
        text += draw(st.sampled_from([b" ", b"\n", b"x", b",", b"}"]))
    elif spelling == "unicode":
        text = text.replace(b"name-", "名前-".encode(), 1)
    return text


def _decoded_reference(value: bytes):
    dec = decode(RawMessage(value, "manifests", 0, 0), 1 << 20)
    assert isinstance(dec, DecodedMessage)
    return BatchBuilder().build([dec])


def _strings(batch, name, item=False):
    vocab = batch.vocab[("item_" if item else "") + name]
    codes = (batch.item_strings if item else batch.strings)[name]
    return [vocab.strings[c] for c in codes.tolist()]


def assert_same_columns(fast, ref):
    """Column by column: strings by value (codes are per vocabulary), numbers bit for bit."""
    assert list(fast.parcel_ids) == list(ref.parcel_ids)
    assert fast.parcel_hash.tolist() == ref.parcel_hash.tolist()
    assert fast.event_time_ms.tolist() == ref.event_time_ms.tolist()
    assert fast.item_offsets.tolist() == ref.item_offsets.tolist()
    for f in PARCEL_STRING_FIELDS:
        assert _strings(fast, f) == _strings(ref, f), f
    for f in ITEM_STRING_FIELDS:
        assert _strings(fast, f, True) == _strings(ref, f, True), f
    for name, a, b in [(f, fast.numbers[f], ref.numbers[f]) for f in PARCEL_NUMBER_FIELDS] + \
                      [(f, fast.item_numbers[f], ref.item_numbers[f]) for f in ITEM_NUMBER_FIELDS]:
        assert a.tobytes() == b.tobytes() or np.array_equal(a, b, equal_nan=True) and \
            (np.signbit(a) == np.signbit(b)).all(), name


@SETTINGS
@given(hostile_manifest())
def test_a_message_the_scanner_takes_has_the_reference_columns(value):
    fast = FastDecoder(BatchBuilder().vocab, 1 << 20).build([value])
    if not len(fast.taken):
        return
    ref, rejected = _decoded_reference(value)
    assert rejected == [], "the scanner took a message the reference path finds bad parcels in"
    assert_same_columns(fast.batch, ref)
    dec = decode(RawMessage(value, "manifests", 0, 0), 1 << 20)
    assert fast.manifest_ids == [dec.manifest_id]
    assert fast.manifest_fields(0) == dec.meta


def _canonical(value: bytes, drop=("decided_at", "dead_lettered_at")) -> bytes:
    # The clock fields are the only ones allowed to differ; a flagged record's `parcel` is the parcel as
    # received, byte for byte on the fast path and re-encoded on the reference path, so compare values.
    record = {k: v for k, v in orjson.loads(value).items() if k not in drop}
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def _records(processor, values):
    out = processor.process([RawMessage(v, "manifests", 0, i) for i, v in enumerate(values)]).records
    return sorted((kind, key or b"", _canonical(value)) for kind, key, value in out)


@SETTINGS
@given(st.lists(hostile_manifest(), min_size=1, max_size=4))
def test_fast_and_reference_paths_produce_the_same_records(screener, values):
    fast = _records(BatchProcessor(screener, fast=True), values)
    reference = _records(BatchProcessor(screener, fast=False), values)
    assert fast == reference


@SETTINGS
@given(st.lists(hostile_manifest(), min_size=2, max_size=5), st.randoms())
def test_a_decision_does_not_depend_on_the_batch_around_it(screener, values, rnd):
    together = _records(BatchProcessor(screener), values)
    shuffled = list(values)
    rnd.shuffle(shuffled)
    alone = []
    for v in shuffled:
        alone += _records(BatchProcessor(screener), [v])
    # Messages are renumbered by position (source offsets), so compare what does not name the offset.
    strip = [(k, key, re.sub(rb'"offset":\d+', b"", v)) for k, key, v in together]
    assert sorted(strip) == sorted((k, key, re.sub(rb'"offset":\d+', b"", v)) for k, key, v in alone)


def test_generator_traffic_takes_the_fast_path_whole():
    values = [orjson.dumps(m) for m in manifests(4, 50, seed=5)]
    fast = FastDecoder(BatchBuilder().vocab, 1 << 20).build(values)
    assert fast.taken.tolist() == [0, 1, 2, 3] and fast.left == [] and fast.batch.n == 200


def test_parcels_inherit_the_manifests_carrier_code_on_both_paths(screener):
    m = {"schema_version": 1, "manifest_id": "M1", "carrier_code": "SF", "master_bill_no": "B-1",
         "parcels": [dict(BASE[0]["parcels"][0], carrier_code=None), BASE[0]["parcels"][1]]}
    m["parcels"][1] = {k: v for k, v in m["parcels"][1].items() if k != "carrier_code"}
    value = orjson.dumps(m)
    fast = FastDecoder(BatchBuilder().vocab, 1 << 20).build([value])
    ref, _ = _decoded_reference(value)
    assert _strings(fast.batch, "carrier_code") == _strings(ref, "carrier_code") == ["SF", "SF"]
    assert fast.manifest_fields(0) == {"carrier_code": "SF", "master_bill_no": "B-1"}


@pytest.mark.parametrize("value", [
    b'{"schema_version":1,"manifest_id":"M","parcels":[{"parcel_id":"A\\u0041"}]}',
    b'{"schema_version":1,"manifest_id":"M","parcels":[]} x',
    b'{"schema_version":1,"manifest_id":"M","parcels":[{"a":' + b"[" * 100 + b"]" * 100 + b"}]}",
    # More objects than valid input could hold in these bytes: the scanner runs out of rows, safely.
    b'{"schema_version":1,"manifest_id":"M","parcels":[' + b",".join([b"{}"] * 20_000) + b"]}",
    orjson.dumps(dict(BASE[0]["parcels"][0], items=[{}] * 20_000)),
])
def test_messages_the_scanner_cannot_prove_valid_go_to_the_reference_path(value):
    fast = FastDecoder(BatchBuilder().vocab, 1 << 20).build([value])
    assert fast.left == [0] and not len(fast.taken)


@SETTINGS
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False), st.floats(min_value=1e-300, max_value=1e300))
def test_numbers_of_any_precision_are_taken_with_orjsons_exact_value(value, price):
    m = orjson.loads(orjson.dumps(BASE[0]))
    m["parcels"][0]["declared_value"] = value
    m["parcels"][0]["items"][0]["unit_price"] = price
    raw = orjson.dumps(m)
    fast = FastDecoder(BatchBuilder().vocab, 1 << 20).build([raw])
    assert fast.taken.tolist() == [0]
    assert fast.batch.numbers["declared_value"][0] == orjson.loads(raw)["parcels"][0]["declared_value"]
    assert fast.batch.item_numbers["unit_price"][0] == orjson.loads(raw)["parcels"][0]["items"][0]["unit_price"]


def test_a_number_too_large_for_a_double_goes_to_the_reference_path():
    raw = orjson.dumps(BASE[0]).replace(b'"freight":', b'"freight":1e400,"x":', 1)
    assert FastDecoder(BatchBuilder().vocab, 1 << 20).build([raw]).left == [0]
