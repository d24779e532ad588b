"""Checks that a column block's spans can only make well-formed output from the documents they index.

Stage two copies bytes at a block's spans into its output: string contents between quotes (parcel ids,
codes) and whole parcel objects (flagged records). A damaged or hostile block whose spans all lie inside
the documents could still cut a string across a quote or an object in half, and the output would not be
JSON. `spans_are_plain_strings` holds every string span to what the fast scanner itself accepts (no quote,
backslash or control character, UTF-8 character boundaries at both ends); `spans_are_parcel_objects`
walks each segment document once and holds every parcel span to one whole element of its `parcels`
array, in order. The `_reference` functions are the same checks in plain Python, for the tests.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _plain(buf, starts, lengths):
    size = buf.shape[0]
    for j in range(starts.shape[0]):
        n = lengths[j]
        if n < 0:
            continue
        a = starts[j]
        if a < 0 or a + n > size:
            return False
        if n > 0 and (buf[a] & 0xC0) == 0x80:        # begins inside a UTF-8 character
            return False
        if a + n < size and (buf[a + n] & 0xC0) == 0x80:
            return False
        for t in range(a, a + n):
            c = buf[t]
            if c == 34 or c == 92 or c < 32:
                return False
    return True


def spans_are_plain_strings(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether every span with a length >= 0 is string content that needs no escaping, cut at characters."""
    return bool(_plain(buf, np.ascontiguousarray(starts, dtype=np.int64).ravel(),
                       np.ascontiguousarray(lengths, dtype=np.int64).ravel()))


def spans_are_plain_strings_reference(data: bytes, starts, lengths) -> bool:
    """`spans_are_plain_strings` in plain Python."""
    for a, n in zip(np.asarray(starts).ravel().tolist(), np.asarray(lengths).ravel().tolist()):
        if n < 0:
            continue
        if a < 0 or a + n > len(data):
            return False
        if (n > 0 and data[a] & 0xC0 == 0x80) or (a + n < len(data) and data[a + n] & 0xC0 == 0x80):
            return False
        if any(c in (34, 92) or c < 32 for c in data[a:a + n]):
            return False
    return True


@nb.njit(cache=True)
def _objects(buf, bounds, message, start, end):
    n = message.shape[0]
    row = 0
    for s in range(bounds.shape[0] - 1):
        in_string = False
        escaped = False
        depth = 0
        inside = -1          # the row whose object is open
        for t in range(bounds[s], bounds[s + 1]):
            c = buf[t]
            if row < n and inside < 0 and message[row] == s and t == start[row]:
                if in_string or depth != 2 or c != 123:
                    return False
                inside = row
            if in_string:
                if escaped:
                    escaped = False
                elif c == 92:
                    escaped = True
                elif c == 34:
                    in_string = False
                continue
            if c == 34:
                in_string = True
            elif c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if inside >= 0 and depth == 2:         # the open object closed here: exactly at its span's end
                    if c != 125 or t + 1 != end[inside]:
                        return False
                    inside = -1
                    row += 1
        if inside >= 0 or (row < n and message[row] == s):
            return False     # an object left open, or a span this document never reached
    return row == n


def spans_are_parcel_objects(buf: np.ndarray, bounds: np.ndarray, message: np.ndarray, parcel_span: np.ndarray) -> bool:
    """Whether row r's span is a whole element of the `parcels` array of document message[r], rows in order."""
    return bool(_objects(buf, np.ascontiguousarray(bounds, dtype=np.int64), np.ascontiguousarray(message, np.int64),
                         np.ascontiguousarray(parcel_span[0], np.int64), np.ascontiguousarray(parcel_span[1], np.int64)))


def spans_are_parcel_objects_reference(data: bytes, bounds, message, parcel_span) -> bool:
    """`spans_are_parcel_objects` in plain Python: each document's `parcels` elements, found by a walk."""
    elements: list[tuple[int, int, int]] = []      # (document, start, end) of each object at depth 2
    for s in range(len(bounds) - 1):
        depth, in_string, escaped, opened = 0, False, False, None
        for t in range(int(bounds[s]), int(bounds[s + 1])):
            c = data[t]
            if in_string:
                escaped, in_string = (False, True) if escaped else (c == 92, c != 34)
                continue
            if c == 34:
                in_string = True
            elif c in (123, 91):
                if depth == 2 and c == 123:
                    opened = t
                depth += 1
            elif c in (125, 93):
                depth -= 1
                if depth == 2 and opened is not None:
                    elements.append((s, opened, t + 1))
                    opened = None
    rows = list(zip(np.asarray(message).tolist(), np.asarray(parcel_span[0]).tolist(),
                    np.asarray(parcel_span[1]).tolist()))
    # Every row is one such element and rows take them in order (a document's elements may go unclaimed
    # only when the block's rows skip none of them: the row count per document is checked elsewhere).
    it = iter(elements)
    return all(any(row == element for element in it) for row in rows)
