"""A Numba scanner from manifest bytes straight to column spans and numbers: the hot path's decoder.

It reads the wire format of docs/wire-format.md in one pass per message and writes, per parcel and per
item, the byte span of every string field, the value of every number field and the event time, with
the checks of the reference path (`screener/pipeline/columns.py`) done inline. It accepts a message
only when it can prove the reference path would accept every parcel of it unchanged; anything else
(an escape in a string, an exponent it cannot convert exactly, a missing field, a bad format, ...)
marks the message for the reference path, which then decides it and dead-letters what is bad. So
the scanner never has to reproduce an error message, and its property tests check one thing: on
every message it accepts, its columns equal the reference's.

Numbers are converted exactly: a decimal with at most 19 significant digits, a mantissa below 2**53
and a power of ten within 10**22 is one correctly rounded multiplication or division (Clinger's fast
path), the same double orjson produces; anything else goes to the reference path.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from screener.pipeline.batch import ITEM_NUMBER_FIELDS, ITEM_STRING_FIELDS, PARCEL_NUMBER_FIELDS, PARCEL_STRING_FIELDS

# --- field registry -------------------------------------------------------------------------------
# Parcel string columns: PARCEL_STRING_FIELDS, then parcel_id (not interned, but spanned the same way).
PARCEL_ID = len(PARCEL_STRING_FIELDS)
N_PSTR = PARCEL_ID + 1
N_PNUM = len(PARCEL_NUMBER_FIELDS)
N_ISTR = len(ITEM_STRING_FIELDS)
N_INUM = len(ITEM_NUMBER_FIELDS)

# Key kinds of parcel-level objects (the top level of a bare parcel shares them).
K_UNKNOWN, K_PSTR, K_PNUM, K_EVENT, K_ITEMS, K_SCHEMA, K_MANIFEST_ID, K_PARCELS, K_MASTER_BILL = range(9)
# Key kinds of item objects.
KI_UNKNOWN, KI_STR, KI_NUM = range(3)

_REQUIRED_PSTR = ("declaration_type", "seller_id", "consignee_id", "origin_country", "currency")
_REQUIRED_PNUM = ("gross_weight_kg", "declared_value")
_POSITIVE = ("gross_weight_kg", "quantity")
_REQUIRED_ISTR = ("hs_code", "description")
_REQUIRED_INUM = ("quantity", "line_value")
# String formats checked inline: 0 any (length only), 1 country [A-Z]{2}, 2 currency [A-Z]{3}, 3 HS code [0-9]{6,10}
_FMT_ANY, _FMT_COUNTRY, _FMT_CURRENCY, _FMT_HS = range(4)
_PSTR_FORMAT = {"seller_country": _FMT_COUNTRY, "origin_country": _FMT_COUNTRY, "departure_country": _FMT_COUNTRY,
                "currency": _FMT_CURRENCY}
_ISTR_FORMAT = {"origin_country": _FMT_COUNTRY, "hs_code": _FMT_HS}
MAX_STRING_CHARS = 1024
MAX_ID_CHARS = 128
MIN_PARCEL_BYTES = 100  # parcel_id, event_time, 5 required strings, 2 numbers and items cannot take less
MIN_ITEM_BYTES = 60     # {"hs_code":"123456","description":"x","quantity":1,"line_value":0} is 64 bytes
MAX_DEPTH = 64          # deeper unknown values go to the reference path (orjson's own limit is 1024)

# Why a message left the fast path (for tests and metrics; the reference path says what is wrong).
FAST_OK = 0


# Keys are found by a perfect hash of (length, first, middle, last byte) into 64 slots, then compared byte
# by byte; _key_table checks that the hash is perfect for its keys.
_KEY_SLOTS = 64


def _key_hash(length: int, first: int, middle: int, last: int) -> int:
    return (length * 2 + first * 10 + last + middle * 7) % _KEY_SLOTS


def _key_table(entries: list[tuple[str, int, int]]) -> tuple[np.ndarray, ...]:
    """Keys as bytes + offsets, their kind and index, and the slot -> key table the kernel probes."""
    names = [e[0].encode() for e in entries]
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum([len(n) for n in names], out=offsets[1:])
    data = np.frombuffer(b"".join(names), dtype=np.uint8).copy()
    kinds = np.array([e[1] for e in entries], dtype=np.int64)
    index = np.array([e[2] for e in entries], dtype=np.int64)
    slots = np.full(_KEY_SLOTS, -1, dtype=np.int64)
    for k, n in enumerate(names):
        s = _key_hash(len(n), n[0], n[len(n) // 2], n[-1])
        assert slots[s] < 0, f"key hash collision: {n!r}"
        slots[s] = k
    return data, offsets, kinds, index, slots


# The kernels read the tables (and _POW10) as module globals, which Numba freezes into the machine code. Taken
# out of a tuple argument inside the loops, each use of an array cost an atomic incref/decref pair (perf: 80%
# of the scan in NRT_incref/NRT_decref); as globals the scan runs 1.75x faster. The rest of that traffic was
# the row arrays handed to the inlined helpers: they get views without reference counts (`_borrowed`).
_PK_DATA, _PK_OFFSETS, _PK_KINDS, _PK_INDEX, _PK_SLOTS = _key_table(
    [(f, K_PSTR, i) for i, f in enumerate(PARCEL_STRING_FIELDS)] + [("parcel_id", K_PSTR, PARCEL_ID)]
    + [(f, K_PNUM, i) for i, f in enumerate(PARCEL_NUMBER_FIELDS)]
    + [("event_time", K_EVENT, 0), ("items", K_ITEMS, 0), ("schema_version", K_SCHEMA, 0),
       ("manifest_id", K_MANIFEST_ID, 0), ("parcels", K_PARCELS, 0), ("master_bill_no", K_MASTER_BILL, 0)])
_IK_DATA, _IK_OFFSETS, _IK_KINDS, _IK_INDEX, _IK_SLOTS = _key_table(
    [(f, KI_STR, i) for i, f in enumerate(ITEM_STRING_FIELDS)] + [(f, KI_NUM, i) for i, f in enumerate(ITEM_NUMBER_FIELDS)])


def _flags(fields: tuple[str, ...], chosen) -> np.ndarray:
    return np.array([f in chosen for f in fields], dtype=np.bool_)


_PSTR_REQUIRED = np.append(_flags(PARCEL_STRING_FIELDS, _REQUIRED_PSTR), True)   # parcel_id required
_PSTR_FMT = np.array([_PSTR_FORMAT.get(f, _FMT_ANY) for f in PARCEL_STRING_FIELDS] + [_FMT_ANY], dtype=np.int64)
_PSTR_MAXLEN = np.array([MAX_STRING_CHARS] * len(PARCEL_STRING_FIELDS) + [MAX_ID_CHARS], dtype=np.int64)
_PNUM_REQUIRED = _flags(PARCEL_NUMBER_FIELDS, _REQUIRED_PNUM)
_PNUM_POSITIVE = _flags(PARCEL_NUMBER_FIELDS, _POSITIVE)
_ISTR_REQUIRED = _flags(ITEM_STRING_FIELDS, _REQUIRED_ISTR)
_ISTR_FMT = np.array([_ISTR_FORMAT.get(f, _FMT_ANY) for f in ITEM_STRING_FIELDS], dtype=np.int64)
_INUM_REQUIRED = _flags(ITEM_NUMBER_FIELDS, _REQUIRED_INUM)
_INUM_POSITIVE = _flags(ITEM_NUMBER_FIELDS, _POSITIVE)
CARRIER_CODE = PARCEL_STRING_FIELDS.index("carrier_code")
ITEMS_KEY = len(PARCEL_STRING_FIELDS) + 1 + len(PARCEL_NUMBER_FIELDS) + 1   # position of "items" in the parcel key table

_POW10 = np.array([10.0 ** k for k in range(23)], dtype=np.float64)
_NOT_SEEN = -2   # span length of a field the object did not name
# Kinds of deferred numbers (see _defer): a parcel's, an item's, or one to ignore (a manifest's own fields).
DEFER_PARCEL, DEFER_ITEM, DEFER_IGNORED = 0, 1, -1
_NULL = -1       # span length of a field given as null


# --- small scanners -------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def _ws(buf, i, end):
    while i < end:
        c = buf[i]
        if c != 32 and c != 10 and c != 13 and c != 9:
            return i
        i += 1
    return i


@nb.njit(cache=True)
def _string(buf, i, end):
    """End index after the closing quote of a plain string at buf[i] == '"'; -1 if it needs the reference
    path (escape, control character, unterminated)."""
    i += 1
    while i < end:
        c = buf[i]
        if c == 34:
            return i + 1
        if c == 92 or c < 32:
            return -1
        i += 1
    return -1


@nb.njit(cache=True)
def _too_long(buf, start, stop, limit):
    """Whether buf[start:stop] (UTF-8) has more than `limit` characters; counted only when the bytes do."""
    if stop - start <= limit:
        return False
    chars = 0
    for t in range(start, stop):
        if (buf[t] & 0xC0) != 0x80:   # not a continuation byte: one more character
            chars += 1
    return chars > limit


@nb.njit(cache=True)
def _number(buf, i, end):
    """(end, value, is_integer) of a JSON number at i; end = -1 when it cannot be converted exactly here."""
    neg = False
    if i < end and buf[i] == 45:
        neg = True
        i += 1
    if i >= end or buf[i] < 48 or buf[i] > 57:
        return -1, 0.0, False
    mant = np.uint64(0)
    digits = 0
    exp10 = 0
    is_int = True
    if buf[i] == 48:
        i += 1
        if i < end and 48 <= buf[i] <= 57:
            return -1, 0.0, False          # leading zero: invalid JSON
    else:
        while i < end and 48 <= buf[i] <= 57:
            if digits < 19:
                mant = mant * np.uint64(10) + np.uint64(buf[i] - 48)
                if mant != 0:
                    digits += 1
            else:
                return -1, 0.0, False
            i += 1
    if i < end and buf[i] == 46:
        is_int = False
        i += 1
        if i >= end or buf[i] < 48 or buf[i] > 57:
            return -1, 0.0, False
        while i < end and 48 <= buf[i] <= 57:
            if digits < 19:
                mant = mant * np.uint64(10) + np.uint64(buf[i] - 48)
                if mant != 0:
                    digits += 1
                exp10 -= 1
            else:
                return -1, 0.0, False
            i += 1
    if i < end and (buf[i] == 101 or buf[i] == 69):
        is_int = False
        i += 1
        eneg = False
        if i < end and (buf[i] == 43 or buf[i] == 45):
            eneg = buf[i] == 45
            i += 1
        if i >= end or buf[i] < 48 or buf[i] > 57:
            return -1, 0.0, False
        e = 0
        while i < end and 48 <= buf[i] <= 57:
            e = e * 10 + (buf[i] - 48)
            if e > 400:
                return -1, 0.0, False
            i += 1
        exp10 += -e if eneg else e
    if mant >= np.uint64(1 << 53):
        return -1, 0.0, False
    if mant == 0:
        value = 0.0
    elif exp10 < -22 or exp10 > 22:
        return -1, 0.0, False
    elif exp10 < 0:
        value = float(mant) / _POW10[-exp10]
    else:
        value = float(mant) * _POW10[exp10]
    if neg and not (is_int and mant == 0):   # orjson reads -0 as the integer 0, -0.0 as the float -0.0
        value = -value
    return i, value, is_int


@nb.njit(cache=True, inline="always")
def _null(buf, i, end):
    if i + 4 <= end and buf[i] == 110 and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108:
        return i + 4
    return -1


@nb.njit(cache=True)
def _literal(buf, i, end):
    """End of `true`, `false` or `null` at i, or -1."""
    c = buf[i]
    if c == 116:
        return i + 4 if i + 4 <= end and buf[i + 1] == 114 and buf[i + 2] == 117 and buf[i + 3] == 101 else -1
    if c == 102:
        return i + 5 if i + 5 <= end and buf[i + 1] == 97 and buf[i + 2] == 108 and buf[i + 3] == 115 \
            and buf[i + 4] == 101 else -1
    if c == 110:
        return _null(buf, i, end)
    return -1


@nb.njit(cache=True)
def _number_end(buf, i, end):
    """End of a JSON number at i by its grammar alone (any size or precision), or -1."""
    j = i
    if j < end and buf[j] == 45:
        j += 1
    if j >= end or not 48 <= buf[j] <= 57:
        return -1
    if buf[j] == 48:
        j += 1
    else:
        while j < end and 48 <= buf[j] <= 57:
            j += 1
    if j < end and buf[j] == 46:
        j += 1
        if j >= end or not 48 <= buf[j] <= 57:
            return -1
        while j < end and 48 <= buf[j] <= 57:
            j += 1
    if j < end and (buf[j] == 101 or buf[j] == 69):
        j += 1
        if j < end and (buf[j] == 43 or buf[j] == 45):
            j += 1
        if j >= end or not 48 <= buf[j] <= 57:
            return -1
        while j < end and 48 <= buf[j] <= 57:
            j += 1
    return j


@nb.njit(cache=True)
def _defer(buf, i, end, kind, f, row, deferred, counts):
    """Record a number the fast conversion cannot do exactly (17+ digits, big exponents) for Python's
    correctly rounded float() after the scan; its end index, or -1 (bad grammar, or no room left)."""
    j = _number_end(buf, i, end)
    d = counts[2]
    if j < 0 or d >= deferred.shape[0]:
        return -1
    deferred[d, 0], deferred[d, 1], deferred[d, 2], deferred[d, 3], deferred[d, 4] = kind, f, row, i, j
    counts[2] = d + 1
    return j


@nb.njit(cache=True)
def _scalar(buf, i, end):
    """End of a string, number or literal at i (validated), or -1."""
    c = buf[i]
    if c == 34:
        j = _string(buf, i, end)
        return j
    if c == 45 or 48 <= c <= 57:
        j, _, _ = _number(buf, i, end)
        if j >= 0:
            return j
        # A valid number this scanner cannot convert exactly still has to be skipped: check its grammar.
        return _number_end(buf, i, end)
    return _literal(buf, i, end)


@nb.njit(cache=True, inline="always")
def _member_value(buf, i, end):
    """Index of the value of an object member `"key": value` at i, or -1."""
    i = _ws(buf, i, end)
    if i >= end or buf[i] != 34:
        return -1
    i = _string(buf, i, end)
    if i < 0:
        return -1
    i = _ws(buf, i, end)
    if i >= end or buf[i] != 58:
        return -1
    return _ws(buf, i + 1, end)


@nb.njit(cache=True)
def _skip(buf, i, end, depth):
    """End index of any JSON value at i (for keys nobody reads), validated; -1 if malformed, escaped or
    nested deeper than MAX_DEPTH (counting `depth` levels already entered). Iterative: Numba's cache
    does not reload recursive functions safely."""
    stack = np.empty(MAX_DEPTH, dtype=np.uint8)   # 1 object, 2 array
    top = 0
    i = _ws(buf, i, end)
    while True:
        # Here a value is expected at i.
        if i >= end:
            return -1
        c = buf[i]
        if c == 123 or c == 91:
            if depth + top >= MAX_DEPTH:
                return -1
            stack[top] = 1 if c == 123 else 2
            top += 1
            i = _ws(buf, i + 1, end)
            if i < end and buf[i] == (125 if c == 123 else 93):
                i += 1
                top -= 1
            elif c == 123:
                i = _member_value(buf, i, end)
                if i < 0:
                    return -1
                continue
            else:
                continue
        else:
            i = _scalar(buf, i, end)
            if i < 0:
                return -1
        # A value ended at i: close containers or move to the next element.
        while True:
            if top == 0:
                return i
            i = _ws(buf, i, end)
            if i >= end:
                return -1
            close = 125 if stack[top - 1] == 1 else 93
            if buf[i] == close:
                i += 1
                top -= 1
                continue
            if buf[i] != 44:
                return -1
            i = _ws(buf, i + 1, end)
            if stack[top - 1] == 1:
                i = _member_value(buf, i, end)
                if i < 0:
                    return -1
            break


@nb.njit(cache=True, inline="always")
def _key(buf, start, stop, data, offsets, slots):
    """Index of the key buf[start:stop] in a key table (its data, offsets and slots), or -1."""
    n = stop - start
    if n <= 0:
        return -1
    k = slots[(n * 2 + buf[start] * 10 + buf[stop - 1] + buf[start + n // 2] * 7) % 64]
    if k < 0:
        return -1
    a = offsets[k]
    if offsets[k + 1] - a != n:
        return -1
    for t in range(n):
        if buf[start + t] != data[a + t]:
            return -1
    return k


@nb.njit(cache=True)
def _format_ok(buf, start, length, fmt):
    """Whether a string span is in format `fmt` (upper-case letters / digits of the right count)."""
    if fmt == 0:
        return True
    if fmt == 1 or fmt == 2:
        if length != (2 if fmt == 1 else 3):
            return False
        for t in range(length):
            c = buf[start + t]
            if c < 65 or c > 90:
                return False
        return True
    if length < 6 or length > 10:
        return False
    for t in range(length):
        c = buf[start + t]
        if c < 48 or c > 57:
            return False
    return True


@nb.njit(cache=True)
def _digits(buf, i, n):
    v = 0
    for t in range(n):
        c = buf[i + t]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@nb.njit(cache=True)
def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y = y - 1 if m <= 2 else y
    era = y // 400
    yoe = y - era * 400
    mp = m + 9 if m <= 2 else m - 3
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@nb.njit(cache=True)
def _iso_ms(buf, s, n):
    """Epoch ms of `YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|+HH:MM|-HH:MM]` (no zone = UTC), years 1970-9999;
    (False, 0) for anything else, which the reference path then judges."""
    if n < 19 or buf[s + 4] != 45 or buf[s + 7] != 45 or buf[s + 10] != 84 or buf[s + 13] != 58 \
            or buf[s + 16] != 58:
        return False, 0
    y = _digits(buf, s, 4)
    mo = _digits(buf, s + 5, 2)
    d = _digits(buf, s + 8, 2)
    h = _digits(buf, s + 11, 2)
    mi = _digits(buf, s + 14, 2)
    se = _digits(buf, s + 17, 2)
    if y < 1970 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59 or se < 0 or se > 59:
        return False, 0
    leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
    dim = 31
    if mo == 2:
        dim = 29 if leap else 28
    elif mo == 4 or mo == 6 or mo == 9 or mo == 11:
        dim = 30
    if d > dim:
        return False, 0
    i = s + 19
    end = s + n
    ms = 0
    if i < end and buf[i] == 46:
        i += 1
        k = 0
        while i < end and 48 <= buf[i] <= 57:
            if k < 3:
                ms = ms * 10 + (buf[i] - 48)
            k += 1
            i += 1
        if k == 0 or k > 9:
            return False, 0
        for _ in range(3 - min(k, 3)):
            ms *= 10
    offset_min = 0
    if i < end:
        c = buf[i]
        if c == 90 and i + 1 == end:
            i += 1
        elif (c == 43 or c == 45) and i + 6 == end and buf[i + 3] == 58:
            oh = _digits(buf, i + 1, 2)
            om = _digits(buf, i + 4, 2)
            if oh < 0 or oh > 23 or om < 0 or om > 59:
                return False, 0
            offset_min = oh * 60 + om
            if c == 45:
                offset_min = -offset_min
            i += 6
        else:
            return False, 0
    days = _days_from_civil(y, mo, d)
    t = ((days * 24 + h) * 60 + mi) * 60 + se
    t = (t - offset_min * 60) * 1000 + ms
    if t < 0:
        return False, 0
    return True, t


# --- the scanner ----------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def _field(buf, i, end, row, kind, f, pstart, plen, pnum, event_ms, iparent, istart, ilen, inum, counts, deferred):
    """Read the value at i of parcel field (kind, f) into row `row`; the end index, or -1."""
    c = buf[i]
    if kind == K_PSTR:
        return _string_into(buf, i, end, pstart, plen, f, row, _PSTR_MAXLEN[f], _PSTR_FMT[f])
    if kind == K_PNUM:
        return _number_into(buf, i, end, pnum, f, row, _PNUM_POSITIVE[f], DEFER_PARCEL, deferred, counts)
    if kind == K_EVENT:
        if c == 34:
            j = _string(buf, i, end)
            if j < 0:
                return -1
            ok, t = _iso_ms(buf, i + 1, j - i - 2)
            if not ok:
                return -1
            event_ms[row] = t
            return j
        j, v, is_int = _number(buf, i, end)
        if j < 0 or not is_int or v < 0.0 or v >= 9007199254740992.0:
            return -1
        event_ms[row] = np.int64(v)
        return j
    # K_ITEMS: a non-empty array of item objects.
    if c != 91:
        return -1
    i = _ws(buf, i + 1, end)
    if i < end and buf[i] == 93:
        return -1
    while True:
        i = _ws(buf, i, end)
        i = _item_object(buf, i, end, row, iparent, istart, ilen, inum, counts, deferred)
        if i < 0:
            return -1
        i = _ws(buf, i, end)
        if i >= end:
            return -1
        if buf[i] == 44:
            i += 1
            continue
        if buf[i] == 93:
            return i + 1
        return -1


@nb.njit(cache=True, inline="always")
def _reset_row(row, plen, pnum, pseen, event_ms):
    for f in range(N_PSTR):
        plen[f, row] = _NOT_SEEN
    for f in range(N_PNUM):
        pnum[f, row] = np.nan
    pseen[row] = 0
    event_ms[row] = -1


@nb.njit(cache=True)
def _complete(row, plen, pnum, pseen, event_ms):
    """Whether a parsed parcel has everything the reference path requires (event time, items, required fields)."""
    if event_ms[row] < 0 or not (pseen[row] & (np.int64(1) << ITEMS_KEY)):
        return False
    for f in range(N_PSTR):
        if _PSTR_REQUIRED[f] and plen[f, row] <= 0:
            return False
    for f in range(N_PNUM):
        if _PNUM_REQUIRED[f] and np.isnan(pnum[f, row]):
            return False
    return True


@nb.njit(cache=True, inline="always")
def _next_key(buf, i, end, data, offsets, slots):
    """(index after the colon, key index or -1) of the key at i, or (-1, -1)."""
    i = _ws(buf, i, end)
    if i >= end or buf[i] != 34:
        return -1, -1
    ks = i + 1
    i = _string(buf, i, end)
    if i < 0:
        return -1, -1
    k = _key(buf, ks, i - 1, data, offsets, slots)
    i = _ws(buf, i, end)
    if i >= end or buf[i] != 58:
        return -1, -1
    i = _ws(buf, i + 1, end)
    if i >= end:
        return -1, -1
    return i, k


@nb.njit(cache=True, inline="always")
def _after_value(buf, i, end):
    """After a member's value: (index of the next key, False), (index after '}', True) or (-1, True)."""
    i = _ws(buf, i, end)
    if i >= end:
        return -1, True
    if buf[i] == 44:
        return i + 1, False
    if buf[i] == 125:
        return i + 1, True
    return -1, True


@nb.njit(cache=True)
def _parcel_object(buf, i, end, row, pstart, plen, pnum, pseen, event_ms, iparent, istart, ilen, inum,
                   counts, deferred):
    """Parse one parcel object of a manifest at i into row `row`; the end index, or -1 for the reference path."""
    if i >= end or buf[i] != 123:
        return -1
    _reset_row(row, plen, pnum, pseen, event_ms)
    i = _ws(buf, i + 1, end)
    if i < end and buf[i] == 125:
        return -1                          # {}: required fields missing
    while True:
        i, k = _next_key(buf, i, end, _PK_DATA, _PK_OFFSETS, _PK_SLOTS)
        if i < 0:
            return -1
        kind = _PK_KINDS[k] if k >= 0 else K_UNKNOWN
        if kind >= K_SCHEMA:
            kind = K_UNKNOWN                   # manifest-level names mean nothing inside a parcel
        if kind != K_UNKNOWN:
            bit = np.int64(1) << k
            if pseen[row] & bit:
                return -1                      # a repeated key: orjson keeps the last; leave it to the reference
            pseen[row] |= bit
            i = _field(buf, i, end, row, kind, _PK_INDEX[k], pstart, plen, pnum, event_ms, iparent, istart, ilen,
                       inum, counts, deferred)
        else:
            i = _skip(buf, i, end, 2)
        if i < 0:
            return -1
        i, closed = _after_value(buf, i, end)
        if i < 0:
            return -1
        if closed:
            break
    return i if _complete(row, plen, pnum, pseen, event_ms) else -1


@nb.njit(cache=True)
def _top_object(buf, i, end, spare, pstart, plen, pnum, pseen, event_ms, pobj, iparent, istart, ilen, inum,
                counts, deferred, meta):
    """Parse a message's top-level object: a manifest (its parcels go to new rows) or a bare parcel (into the
    spare row). Manifest keys go to `meta`: [schema (-1 absent, 1 ok, 0 other), manifest_id start, length,
    parcels position (-1: not a manifest), master_bill_no start, length]. The end index, or -1."""
    if i >= end or buf[i] != 123:
        return -1
    _reset_row(spare, plen, pnum, pseen, event_ms)
    i = _ws(buf, i + 1, end)
    if i < end and buf[i] == 125:
        return -1
    while True:
        i, k = _next_key(buf, i, end, _PK_DATA, _PK_OFFSETS, _PK_SLOTS)
        if i < 0:
            return -1
        kind = _PK_KINDS[k] if k >= 0 else K_UNKNOWN
        if kind != K_UNKNOWN:
            bit = np.int64(1) << k
            if pseen[spare] & bit:
                return -1
            pseen[spare] |= bit
        c = buf[i]
        if kind == K_SCHEMA:
            j, v, is_int = _number(buf, i, end)
            meta[0] = 1 if (j >= 0 and is_int and v == 1.0) else 0
            i = j if j >= 0 else _skip(buf, i, end, 1)
        elif kind == K_MANIFEST_ID or kind == K_MASTER_BILL:
            at = 1 if kind == K_MANIFEST_ID else 4
            if c == 34:
                j = _string(buf, i, end)
                if j >= 0:
                    meta[at], meta[at + 1] = i + 1, j - i - 2
                i = j
            else:
                i = _skip(buf, i, end, 1)
        elif kind == K_PARCELS:
            if c != 91:
                return -1
            meta[3] = i
            i = _ws(buf, i + 1, end)
            if i < end and buf[i] == 93:
                i += 1
            else:
                while True:
                    i = _ws(buf, i, end)
                    r = counts[0]
                    if r >= spare:
                        return -1              # out of rows: this message goes to the reference path
                    counts[0] += 1
                    pobj[0, r] = i
                    i = _parcel_object(buf, i, end, r, pstart, plen, pnum, pseen, event_ms, iparent, istart, ilen,
                                       inum, counts, deferred)
                    if i < 0:
                        return -1
                    pobj[1, r] = i
                    i = _ws(buf, i, end)
                    if i >= end:
                        return -1
                    if buf[i] == 44:
                        i += 1
                        continue
                    if buf[i] == 93:
                        i += 1
                        break
                    return -1
        elif kind != K_UNKNOWN:
            i = _field(buf, i, end, spare, kind, _PK_INDEX[k], pstart, plen, pnum, event_ms, iparent, istart, ilen,
                       inum, counts, deferred)
        else:
            i = _skip(buf, i, end, 1)
        if i < 0:
            return -1
        i, closed = _after_value(buf, i, end)
        if i < 0:
            return -1
        if closed:
            return i


@nb.njit(cache=True, inline="always")
def _string_into(buf, i, end, starts, lengths, f, row, max_chars, fmt):
    """Read a string field (or null) at i into starts/lengths[f, row], checking length and format; end or -1."""
    c = buf[i]
    if c == 110:
        lengths[f, row] = _NULL
        return _null(buf, i, end)
    if c != 34:
        return -1
    j = _string(buf, i, end)
    if j < 0:
        return -1
    starts[f, row], lengths[f, row] = i + 1, j - i - 2
    if _too_long(buf, i + 1, j - 1, max_chars) or not (j - i - 2 == 0 or _format_ok(buf, i + 1, j - i - 2, fmt)):
        return -1
    return j


@nb.njit(cache=True, inline="always")
def _number_into(buf, i, end, values, f, row, positive, defer_kind, deferred, counts):
    """Read a number field (or null) at i into values[f, row], checking its range; end or -1. A number the
    fast conversion cannot do exactly is deferred to Python (see _defer) and checked there."""
    if buf[i] == 110:
        return _null(buf, i, end)
    j, v, _ = _number(buf, i, end)
    if j < 0:
        values[f, row] = 0.0     # present; the value comes from Python after the scan
        return _defer(buf, i, end, defer_kind, f, row, deferred, counts)
    if (positive and not v > 0.0) or v < 0.0:
        return -1
    values[f, row] = v
    return j


@nb.njit(cache=True, inline="always")
def _item_object(buf, i, end, parent, iparent, istart, ilen, inum, counts, deferred):
    if i >= end or buf[i] != 123:
        return -1
    row = counts[1]
    if row >= iparent.shape[0]:
        return -1                              # out of rows: this message goes to the reference path
    counts[1] += 1
    iparent[row] = parent
    for f in range(N_ISTR):
        ilen[f, row] = _NOT_SEEN
    for f in range(N_INUM):
        inum[f, row] = np.nan
    seen = 0
    i = _ws(buf, i + 1, end)
    if i < end and buf[i] == 125:
        i += 1
    else:
        while True:
            i = _ws(buf, i, end)
            if i >= end or buf[i] != 34:
                return -1
            ks = i + 1
            i = _string(buf, i, end)
            if i < 0:
                return -1
            k = _key(buf, ks, i - 1, _IK_DATA, _IK_OFFSETS, _IK_SLOTS)
            i = _ws(buf, i, end)
            if i >= end or buf[i] != 58:
                return -1
            i = _ws(buf, i + 1, end)
            if i >= end:
                return -1
            kind = _IK_KINDS[k] if k >= 0 else KI_UNKNOWN
            if kind != KI_UNKNOWN:
                bit = 1 << k
                if seen & bit:
                    return -1
                seen |= bit
            if kind == KI_STR:
                f = _IK_INDEX[k]
                i = _string_into(buf, i, end, istart, ilen, f, row, MAX_STRING_CHARS, _ISTR_FMT[f])
            elif kind == KI_NUM:
                f = _IK_INDEX[k]
                i = _number_into(buf, i, end, inum, f, row, _INUM_POSITIVE[f], DEFER_ITEM, deferred, counts)
            else:
                i = _skip(buf, i, end, 1)
            if i < 0:
                return -1
            i = _ws(buf, i, end)
            if i >= end:
                return -1
            if buf[i] == 44:
                i += 1
                continue
            if buf[i] == 125:
                i += 1
                break
            return -1
    for f in range(N_ISTR):
        if _ISTR_REQUIRED[f] and ilen[f, row] <= 0:
            return -1
    for f in range(N_INUM):
        if _INUM_REQUIRED[f] and np.isnan(inum[f, row]):
            return -1
    return i


@intrinsic
def _borrowed(typingctx, array):
    """The same array without its reference count (no meminfo), for a caller that keeps the array alive.

    Every array handed to an inlined helper is a new reference, an atomic increment and decrement; the scanner
    makes thousands per manifest (perf: most of its time in NRT_incref/NRT_decref). A view without a meminfo
    makes them a test of a null pointer. Only `_scan` uses it, on arrays it holds until it returns."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, value=args[0])
        out = context.make_array(signature.return_type)(context, builder)
        context.populate_array(out, data=a.data, shape=a.shape, strides=a.strides, itemsize=a.itemsize,
                               meminfo=None)
        return out._getvalue()

    return array(array), codegen


@nb.njit(cache=True)
def _held(*arrays):
    """How many arrays it was given: a use of them after their borrowed views' last use, so none is freed sooner."""
    return len(arrays)


@nb.njit(cache=True)
def _scan(buf, msg_bounds, cap_parcels, cap_items):
    n_msgs = msg_bounds.shape[0] - 1
    # Rows are written before they are read (a span is read only when its length is >= 0), so no zeroing.
    # One spare row at the end holds a message's top-level object while it is read.
    pstart = np.empty((N_PSTR, cap_parcels + 1), dtype=np.int64)
    plen = np.empty((N_PSTR, cap_parcels + 1), dtype=np.int64)
    pnum = np.empty((N_PNUM, cap_parcels + 1), dtype=np.float64)
    pseen = np.empty(cap_parcels + 1, dtype=np.int64)
    event_ms = np.empty(cap_parcels + 1, dtype=np.int64)
    pmsg = np.empty(cap_parcels + 1, dtype=np.int32)
    pobj = np.empty((2, cap_parcels + 1), dtype=np.int64)      # the parcel object's byte span
    iparent = np.empty(cap_items + 1, dtype=np.int64)
    istart = np.empty((N_ISTR, cap_items + 1), dtype=np.int64)
    ilen = np.empty((N_ISTR, cap_items + 1), dtype=np.int64)
    inum = np.empty((N_INUM, cap_items + 1), dtype=np.float64)
    ok = np.zeros(n_msgs, dtype=np.bool_)
    bare = np.zeros(n_msgs, dtype=np.bool_)
    mid = np.full((n_msgs, 2), -1, dtype=np.int64)        # manifest_id span (bare without one: -1)
    mfields = np.full((n_msgs, 4), -1, dtype=np.int64)    # carrier_code, master_bill_no spans of a manifest
    counts = np.zeros(3, dtype=np.int64)               # parcels, items, deferred numbers
    deferred = np.empty((cap_parcels + cap_items + 1, 5), dtype=np.int64)   # kind, field, row, start, end
    meta = np.zeros(7, dtype=np.int64)
    spare = cap_parcels
    # The parser gets views without reference counts; the arrays are held to the end (`_held`), `buf` by
    # the caller.
    b, b_pstart, b_plen, b_pnum, b_pseen = _borrowed(buf), _borrowed(pstart), _borrowed(plen), _borrowed(pnum), \
        _borrowed(pseen)
    b_event_ms, b_pobj, b_iparent, b_istart, b_ilen = _borrowed(event_ms), _borrowed(pobj), _borrowed(iparent), \
        _borrowed(istart), _borrowed(ilen)
    b_inum, b_counts, b_deferred, b_meta = _borrowed(inum), _borrowed(counts), _borrowed(deferred), _borrowed(meta)
    for m in range(n_msgs):
        start, end = msg_bounds[m], msg_bounds[m + 1]
        p0, i0, d0 = counts[0], counts[1], counts[2]
        meta[:] = -1
        first = _ws(b, start, end)
        i = _top_object(b, first, end, spare, b_pstart, b_plen, b_pnum, b_pseen, b_event_ms, b_pobj,
                        b_iparent, b_istart, b_ilen, b_inum, b_counts, b_deferred, b_meta)
        good = i >= 0 and _ws(b, i, end) == end
        if good and meta[3] >= 0:
            # A manifest: schema_version 1, a non-empty manifest_id; parcels inherit carrier_code.
            good = meta[0] == 1 and meta[2] > 0
            for t in range(i0, counts[1]):
                if iparent[t] == spare:
                    good = False               # `items` beside `parcels`: leave it to the reference path
            if good:
                mid[m, 0], mid[m, 1] = meta[1], meta[2]
                mfields[m, 2], mfields[m, 3] = meta[4], meta[5]
                for t in range(d0, counts[2]):
                    if deferred[t, 0] == DEFER_PARCEL and deferred[t, 2] == spare:
                        deferred[t, 0] = DEFER_IGNORED    # a number of the manifest itself, not a parcel's
                if plen[CARRIER_CODE, spare] >= 0:
                    mfields[m, 0], mfields[m, 1] = pstart[CARRIER_CODE, spare], plen[CARRIER_CODE, spare]
                    for r in range(p0, counts[0]):
                        if plen[CARRIER_CODE, r] < 0:     # absent or null: the manifest's
                            pstart[CARRIER_CODE, r] = pstart[CARRIER_CODE, spare]
                            plen[CARRIER_CODE, r] = plen[CARRIER_CODE, spare]
        elif good:
            # A bare parcel: schema_version optional but 1 when given; it becomes row p0.
            good = meta[0] != 0 and counts[0] == p0 and _complete(spare, plen, pnum, pseen, event_ms)
            if good:
                bare[m] = True
                r = counts[0]
                counts[0] += 1
                for f in range(N_PSTR):
                    pstart[f, r] = pstart[f, spare]
                    plen[f, r] = plen[f, spare]
                for f in range(N_PNUM):
                    pnum[f, r] = pnum[f, spare]
                event_ms[r] = event_ms[spare]
                pobj[0, r], pobj[1, r] = first, i
                for t in range(i0, counts[1]):
                    iparent[t] = r
                for t in range(d0, counts[2]):
                    if deferred[t, 0] == DEFER_PARCEL:
                        deferred[t, 2] = r
                if meta[2] > 0:
                    mid[m, 0], mid[m, 1] = meta[1], meta[2]
        if not good:
            counts[0], counts[1], counts[2] = p0, i0, d0   # roll back: the reference path decides this message
            continue
        ok[m] = True
        for r in range(p0, counts[0]):
            pmsg[r] = m
    _held(pstart, plen, pnum, pseen, event_ms, pobj, iparent, istart, ilen, inum, counts, deferred, meta)
    n, k = counts[0], counts[1]
    return ScanResult(ok, bare, mid, mfields, pmsg[:n], pobj[:, :n], pstart[:, :n], plen[:, :n], pnum[:, :n],
                      event_ms[:n], iparent[:k], istart[:, :k], ilen[:, :k], inum[:, :k], deferred[:counts[2]])


class ScanResult(NamedTuple):
    """What the scanner read: per message, per parcel (rows) and per item; spans index the scanned buffer."""

    ok: np.ndarray          # bool [messages]: decided by the fast path (else: the reference path)
    bare: np.ndarray        # bool [messages]: a bare parcel, not a manifest
    manifest_id: np.ndarray  # int64 [messages, 2]: span of manifest_id (length -1: none given)
    manifest_fields: np.ndarray  # int64 [messages, 4]: spans of a manifest's carrier_code, master_bill_no
    message: np.ndarray     # int32 [parcels]: message of each parcel row
    parcel_span: np.ndarray  # int64 [2, parcels]: the parcel object's bytes
    str_start: np.ndarray   # int64 [N_PSTR, parcels]: PARCEL_STRING_FIELDS then parcel_id
    str_len: np.ndarray     # int64 [N_PSTR, parcels]: byte length; -1 null, -2 absent
    numbers: np.ndarray     # float64 [N_PNUM, parcels]: NaN when absent or null
    event_ms: np.ndarray    # int64 [parcels]
    item_parent: np.ndarray  # int64 [items]: parcel row of each item (non-decreasing)
    item_str_start: np.ndarray  # int64 [N_ISTR, items]
    item_str_len: np.ndarray    # int64 [N_ISTR, items]
    item_numbers: np.ndarray    # float64 [N_INUM, items]
    deferred: np.ndarray    # int64 [k, 5]: numbers left to Python (kind, field, row, start, end); see resolve_deferred


def resolve_deferred(buf: np.ndarray, s: ScanResult) -> np.ndarray:
    """Convert the deferred numbers in place with Python's correctly rounded float() (orjson's value too);
    returns the scan-local messages whose numbers turned out invalid (not finite, or out of range)."""
    bad = []
    data = memoryview(buf)
    for kind, f, row, start, end in s.deferred.tolist():
        if kind == DEFER_IGNORED:
            continue
        value = float(bytes(data[start:end]))
        positive = (_PNUM_POSITIVE if kind == DEFER_PARCEL else _INUM_POSITIVE)[f]
        if not np.isfinite(value) or (positive and not value > 0.0) or value < 0.0:
            bad.append(int(s.message[row if kind == DEFER_PARCEL else s.item_parent[row]]))
            continue
        (s.numbers if kind == DEFER_PARCEL else s.item_numbers)[f, row] = value
    return np.unique(np.asarray(bad, dtype=np.int64))


def scan(buf: np.ndarray, msg_bounds: np.ndarray) -> ScanResult:
    """Scan messages buf[msg_bounds[m]:msg_bounds[m+1]] into spans and numbers."""
    # Rows for what valid input can hold: a valid parcel takes over 100 bytes, a valid item over 60. Hostile
    # input that runs out of rows is not lost: the scanner leaves its message to the reference path.
    n = len(buf)
    return _scan(buf, msg_bounds, n // MIN_PARCEL_BYTES + len(msg_bounds) + 16, n // MIN_ITEM_BYTES + 16)
