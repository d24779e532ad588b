"""The block checks against their plain references, on real segment documents and hostile spans."""

from __future__ import annotations

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.kernels.block_check import (
    spans_are_parcel_objects,
    spans_are_parcel_objects_reference,
    spans_are_plain_strings,
    spans_are_plain_strings_reference,
)

PARCELS = [{"parcel_id": "P1", "note": "say \"{hi}\", ok", "items": [{"q": 1}, {"q": 2}]},
           {"parcel_id": "P2", "name": "Zoë 李", "items": [{"q": 3}]}, {"parcel_id": "P3", "x": [[], {}]}]


def document(parcels: list[dict]) -> bytes:
    return orjson.dumps({"schema_version": 1, "manifest_id": "M1", "parcels": parcels})


def object_spans(doc: bytes, parcels: list[dict], base: int = 0) -> list[tuple[int, int]]:
    """Where each parcel object is in the document (orjson writes each the same inside and alone)."""
    out, at = [], 0
    for p in parcels:
        text = orjson.dumps(p)
        at = doc.index(text, at)
        out.append((base + at, base + at + len(text)))
        at += len(text)
    return out


def test_the_parcels_of_real_documents_pass_and_cut_ones_do_not():
    one, two = document(PARCELS), document(PARCELS[:1])
    data = one + two
    bounds = np.array([0, len(one), len(data)])
    spans = object_spans(one, PARCELS) + object_spans(two, PARCELS[:1], len(one))
    message = np.array([0, 0, 0, 1])
    span = np.array(spans).T
    assert spans_are_parcel_objects(np.frombuffer(data, np.uint8), bounds, message, span)
    inner = data.index(b'{"q":2}')
    for bad in ((0, inner), (1, spans[1][0] + 1), (2, spans[2][1] - 1)):   # an item, a shifted start, a cut end
        s = span.copy()
        s[0 if bad[0] < 2 else 1, bad[0] if bad[0] < 2 else 2] = bad[1]
        assert not spans_are_parcel_objects(np.frombuffer(data, np.uint8), bounds, message, s)
        assert not spans_are_parcel_objects_reference(data, bounds, message, s)
    quoted = data.index(b'{hi}')                       # a brace inside a string is not an object
    s = span.copy()
    s[:, 0] = (quoted, quoted + 4)
    assert not spans_are_parcel_objects(np.frombuffer(data, np.uint8), bounds, message, s)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-2, 40), st.integers(-2, 40)), max_size=6), st.lists(st.integers(0, 3), max_size=6))
def test_parcel_spans_check_equals_its_reference_on_hostile_spans(pairs, docs):
    one, two = document(PARCELS), document(PARCELS[1:])
    data = one + two
    bounds = np.array([0, len(one), len(data)])
    real = object_spans(one, PARCELS) + object_spans(two, PARCELS[1:], len(one))
    # Spans near real ones (shifted by small amounts) or real ones, in documents 0/1, in drawn order.
    rows = [(min(d, 1), real[(i + d) % len(real)][0] + a // 10 - 1, real[(i + d) % len(real)][1] + b // 10 - 1)
            for i, ((a, b), d) in enumerate(zip(pairs, docs))]
    message = np.array([r[0] for r in rows], dtype=np.int64)
    span = np.array([[r[1] for r in rows], [r[2] for r in rows]], dtype=np.int64).reshape(2, -1)
    buf = np.frombuffer(data, np.uint8)
    assert spans_are_parcel_objects(buf, bounds, message, span) == spans_are_parcel_objects_reference(
        data, bounds, message, span)


TEXT = "P1 zoë 李\"\\\x01ok"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 25), st.integers(-3, 12)), max_size=8))
def test_string_spans_check_equals_its_reference_on_hostile_spans(spans):
    data = TEXT.encode()
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    lengths = np.array([n for _, n in spans], dtype=np.int64)
    got = spans_are_plain_strings(np.frombuffer(data, np.uint8), starts, lengths)
    assert got == spans_are_plain_strings_reference(data, starts, lengths)


def test_plain_strings_refuse_quotes_backslashes_controls_and_cut_characters():
    data = TEXT.encode()
    buf = np.frombuffer(data, np.uint8)
    ok = [(0, 2), (3, 4), (8, 3), (0, 0), (5, -1)]          # "P1", "zoë", "李", empty, absent
    assert spans_are_plain_strings(buf, np.array([a for a, _ in ok]), np.array([n for _, n in ok]))
    for a, n in ((11, 1), (12, 1), (13, 1), (5, 1), (8, 1), (9, 2), (14, 5)):   # ", \, \x01, half ë, half 李, past
        assert not spans_are_plain_strings(buf, np.array([a]), np.array([n])), (a, n)
