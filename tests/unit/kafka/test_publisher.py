"""Splitting publish input into documents: JSONL, pretty-printed, arrays, streams; bad input named by line."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.kafka.publisher import FeedError, describe, documents
from screener.kafka.replay import replay_message

json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3),
                           max_leaves=8)
objects = st.dictionaries(st.text(max_size=6), json_values, max_size=4)


def lines(text: str) -> list[bytes]:
    return text.encode().splitlines(keepends=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(objects, min_size=1, max_size=5), st.sampled_from([None, 1, 2, 4]))
def test_objects_come_back_in_order_whether_one_per_line_or_pretty_printed(docs, indent):
    text = "\n".join(json.dumps(d, indent=indent) for d in docs) + "\n"
    out = list(documents(lines(text)))
    assert [orjson.loads(d.data) for d in out] == docs
    assert {d.shape for d in out} <= {"line", "pretty"}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_hostile_bytes_are_documents_or_a_feed_error_never_anything_else(data):
    try:
        out = list(documents(data.splitlines(keepends=True)))
    except FeedError as exc:
        assert str(exc).startswith("line ")
    else:
        for d in out:
            orjson.loads(d.data)  # every document sent is JSON


def test_shapes_and_their_description():
    m = {"schema_version": 1, "manifest_id": "M1", "parcels": [{"parcel_id": "P1"}]}
    pretty = list(documents(lines(json.dumps(m, indent=2))))
    assert len(pretty) == 1 and pretty[0].shape == "pretty" and orjson.loads(pretty[0].data) == m
    assert describe(Counter(d.shape for d in pretty)) == "a pretty-printed JSON document"
    array = list(documents(lines(json.dumps([m, m], indent=1))))
    assert [d.shape for d in array] == ["array element"] * 2
    assert describe(Counter(d.shape for d in array)) == "a JSON array of 2 documents"
    jsonl = list(documents(lines(f"{json.dumps(m)}\n\n{json.dumps(m)}\n")))
    assert describe(Counter(d.shape for d in jsonl)) == "JSONL (2 lines)" and [d.line for d in jsonl] == [1, 3]


@pytest.mark.parametrize(("text", "error"), [
    ('{"a": 1}\nnot json\n', "line 2: not JSON"),
    ('{"a": 1}\n{"b": \n', "line 2: not JSON"),
    ('{\n  "a": 1,\n', "line 1: the JSON document starting here is cut off at the end of the input"),
    ('{\n  "a": 1,\n}\n', "line 1: the JSON document on lines 1-3 is not valid"),
    ('{\n  "a": [1,\n{"b": 2}\n', "line 1: the JSON document starting here never ends (line 3 starts another)"),
])
def test_bad_input_is_named_by_line(text, error):
    with pytest.raises(FeedError, match=re.escape(error)):
        list(documents(lines(text)))


def test_replay_message_restores_originals_and_wraps_a_parcel_in_a_manifest_of_one():
    whole = {"reason": "not_json", "parcel_index": None, "original": "garbage", "original_encoding": "utf-8"}
    assert replay_message(whole) == b"garbage"
    binary = dict(whole, original=base64.b64encode(b"\xff\x00").decode(), original_encoding="base64")
    assert replay_message(binary) == b"\xff\x00"
    parcel = {"reason": "missing_field", "parcel_index": 3, "manifest_id": "M9", "original": '{"parcel_id": "P1"}',
              "original_encoding": "utf-8"}
    assert orjson.loads(replay_message(parcel)) == {"schema_version": 1, "manifest_id": "M9",
                                                    "parcels": [{"parcel_id": "P1"}]}
    assert replay_message(dict(whole, original_truncated=True)) is None
