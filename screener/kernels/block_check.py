"""Checks that a column block's spans can only make well-formed output from the documents they index.

Stage two copies bytes at a block's spans into its output: string contents between quotes (parcel ids,
codes) and whole parcel objects (flagged records). A damaged or hostile block whose spans all lie inside
the documents could still cut a string across a quote or an object in half, and the output would not be
JSON. `spans_are_plain_strings` holds every string span to what the fast scanner itself accepts (no quote,
backslash or control character, UTF-8 character boundaries at both ends); `parcel_objects` walks each
segment document once and finds the whole elements of its `parcels` array, which the block's parcel spans
must be, one for one and in order (screener/state/route.py compares them). The `_reference` functions are
the same in plain Python, for the tests.
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
def _objects(buf, bounds):
    size = bounds[-1] - bounds[0]
    doc = np.empty(size // 2 + 1, np.int64)       # an object takes at least two bytes: room for every one
    start = np.empty(size // 2 + 1, np.int64)
    end = np.empty(size // 2 + 1, np.int64)
    k = 0
    for s in range(bounds.shape[0] - 1):
        depth = 0
        opened = -1          # where the object open at depth 2 began
        t, stop = bounds[s], bounds[s + 1]
        while t < stop:
            c = buf[t]
            if c == 34:      # a string: skip to its closing quote (most bytes are in strings)
                t += 1
                while t < stop:
                    c = buf[t]
                    if c == 34:
                        break
                    t += 2 if c == 92 else 1
            elif c == 123 or c == 91:
                if depth == 2 and c == 123:
                    opened = t
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 2 and opened >= 0:
                    if c == 125:
                        doc[k] = s
                        start[k] = opened
                        end[k] = t + 1
                        k += 1
                    opened = -1
            t += 1
    return doc[:k].copy(), start[:k].copy(), end[:k].copy()


def parcel_objects(buf: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(document, start, end) of every object opened two levels inside a document (in a segment: the elements of
    its `parcels` array), in order; document s is buf[bounds[s]:bounds[s + 1]]."""
    return _objects(buf, np.ascontiguousarray(bounds, dtype=np.int64))


def parcel_objects_reference(data: bytes, bounds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`parcel_objects` in plain Python: a walk of each document, byte by byte."""
    elements: list[tuple[int, int, int]] = []
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
                    if c == 125:
                        elements.append((s, opened, t + 1))
                    opened = None
    doc, start, end = (np.array(column, dtype=np.int64) for column in zip(*elements)) if elements else (
        np.zeros(0, np.int64) for _ in range(3))
    return doc, start, end
