"""The block checks against their plain references, on real segment documents and hostile spans."""

from __future__ import annotations

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.kernels.block_check import (
    parcel_objects,
    parcel_objects_reference,
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


def test_the_parcels_of_real_documents_are_found_whole_and_in_order():
    one, two = document(PARCELS), document(PARCELS[:1])
    data = one + two
    bounds = np.array([0, len(one), len(data)])
    spans = object_spans(one, PARCELS) + object_spans(two, PARCELS[:1], len(one))
    for doc, start, end in (parcel_objects(np.frombuffer(data, np.uint8), bounds),
                            parcel_objects_reference(data, bounds)):
        assert doc.tolist() == [0, 0, 0, 1]
        assert list(zip(start.tolist(), end.tolist())) == spans    # not the items, nor "{hi}" inside a string


# Pieces of hostile documents: brackets, quotes and backslashes alone, and strings that hold an escaped quote,
# an escaped backslash or a brace (what a walk that mistakes where a string ends gets wrong).
PIECES = [b"{", b"}", b"[", b"]", b'"', b"\\", b"a", b":", b",", b'{"p":[', b"\xc3\xa9", b'"x\\"}"', b'"\\\\"',
          b'"{"']


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.lists(st.integers(0, 60), max_size=3))
def test_parcel_objects_equal_their_reference_on_hostile_documents(pieces, cuts):
    data = b'{"parcels":[' + b"".join(pieces)
    bounds = np.array(sorted({0, len(data), *(min(c, len(data)) for c in cuts)}), dtype=np.int64)
    got = parcel_objects(np.frombuffer(data, np.uint8), bounds)
    want = parcel_objects_reference(data, bounds)
    assert [a.tolist() for a in got] == [a.tolist() for a in want]


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
