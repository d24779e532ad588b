"""Validates the parcels of a batch of decoded manifests and builds the batch's numpy columns.

Work is done field by field over the whole batch (type checks over a column, numpy for ranges,
format checks once per distinct interned string), so the cost per parcel is a few list
comprehensions, not a Python validation routine per parcel. Invalid parcels are split out with
the field and the reason; the rest become a ParcelBatch.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter

import numpy as np

from screener.kernels.hashing import hash_ids
from screener.pipeline.batch import (
    ITEM_NUMBER_FIELDS,
    ITEM_STRING_FIELDS,
    PARCEL_NUMBER_FIELDS,
    PARCEL_STRING_FIELDS,
    ParcelBatch,
    Vocabularies,
)
from screener.pipeline.decode import DecodedMessage, Rejection

_NoneType = type(None)
_STR = {str}
_STR_OR_NONE = {str, _NoneType}
_NUM = {int, float}
_NUM_OR_NONE = {int, float, _NoneType}

REQUIRED_PARCEL_STRINGS = ("declaration_type", "seller_id", "consignee_id", "origin_country", "currency")
REQUIRED_PARCEL_NUMBERS = ("gross_weight_kg", "declared_value")
POSITIVE_NUMBERS = ("gross_weight_kg", "quantity")
REQUIRED_ITEM_STRINGS = ("hs_code", "description")
REQUIRED_ITEM_NUMBERS = ("quantity", "line_value")
MAX_ID_LENGTH = 128
_PARCEL_FIELDS = ("parcel_id", "event_time", "items") + PARCEL_STRING_FIELDS + PARCEL_NUMBER_FIELDS
_ITEM_FIELDS = ITEM_STRING_FIELDS + ITEM_NUMBER_FIELDS
MAX_STRING_LENGTH = 1024  # longer strings are refused: vocabularies keep every distinct string

def _pattern(regex: str):
    return re.compile(regex).fullmatch


_FORMATS = {
    # name: (is_valid(string), what a valid string is)
    "country": (_pattern(r"[A-Z]{2}"), "an ISO 3166 alpha-2 country code such as CN"),
    "currency": (_pattern(r"[A-Z]{3}"), "an ISO 4217 currency code such as CNY"),
    "hs_code": (_pattern(r"[0-9]{6,10}"), "an HS code of 6 to 10 digits"),
    "length": (lambda s: len(s) <= MAX_STRING_LENGTH, f"at most {MAX_STRING_LENGTH} characters long"),
}
FIELD_FORMATS = {"seller_country": "country", "origin_country": "country", "departure_country": "country",
                 "currency": "currency", "item_origin_country": "country", "item_hs_code": "hs_code"}

# Reason codes for a single parcel set aside (message-level codes live in manifest.py).
PARCEL_REASONS = {
    "invalid_parcel_type": "the parcel is not a JSON object",
    "missing_field": "a required field is absent or null",
    "wrong_type": "a field has the wrong JSON type",
    "negative_value": "a numeric field is negative",
    "non_positive_value": "a numeric field must be above zero",
    "bad_format": "a string field is not in the required format",
    "bad_event_time": "event_time is not an ISO 8601 time or epoch milliseconds",
    "duplicate_parcel_id": "the parcel_id appears earlier in the same manifest",
    "no_items": "items must be a non-empty array of objects",
}


@dataclass(slots=True)
class ParcelRejection:
    """One parcel set aside: which message, which parcel, and why."""

    message_index: int
    parcel_index: int
    parcel: object
    rejection: Rejection


def _columns(records: list[dict], names: tuple[str, ...]) -> dict[str, list]:
    """Values of the named fields over all records (None where absent), as one list per field.

    Row by row (each record's dict is hot in cache while all its fields are read), then one
    C-level transpose: twice as fast as one pass over all records per field.
    """
    if not records:
        return {name: [] for name in names}
    try:
        # Records that carry every field (the usual case) are read by one C-level itemgetter.
        rows = list(map(itemgetter(*names), records))
    except KeyError:
        rows = [tuple(map(r.get, names)) for r in records]
    return {name: list(col) for name, col in zip(names, zip(*rows))}


class _Errors:
    """First error per parcel index (later errors on a parcel add nothing for the sender)."""

    def __init__(self) -> None:
        self.by_index: dict[int, Rejection] = {}

    def add(self, i: int, reason: str, field: str, message: str) -> None:
        if i not in self.by_index:
            self.by_index[i] = Rejection(reason, message, field)


class FormatChecker:
    """Remembers, per vocabulary, which codes hold a well-formed string (each string checked once)."""

    def __init__(self) -> None:
        self.valid: dict[str, np.ndarray] = {}

    def invalid_mask(self, vocab_name: str, vocabulary, fmt: str, codes: np.ndarray) -> np.ndarray:
        """Boolean mask of codes whose string is not in format `fmt` (code 0, missing, is valid here)."""
        key = f"{vocabulary.name}:{fmt}"
        known = self.valid.get(key, np.ones(1, dtype=bool))
        if len(known) < len(vocabulary):
            is_valid = _FORMATS[fmt][0]
            new = [bool(is_valid(s)) and len(s) <= MAX_STRING_LENGTH for s in vocabulary.strings[len(known):]]
            known = np.concatenate([known, np.asarray(new, dtype=bool)])
            self.valid[key] = known
        return ~known[codes]


def _check_types(values: list, allowed: set, required: bool, field: str, errors: _Errors,
                 index_of=None) -> bool:
    """Record wrong-type and missing errors; True when the whole column was already fine."""
    types = set(map(type, values))
    if types <= allowed:
        return True
    for i, v in enumerate(values):
        t = type(v)
        if t in allowed:
            continue
        j = index_of(i) if index_of else i
        name = field(i) if callable(field) else field
        if v is None:
            if required:
                errors.add(j, "missing_field", name, f"`{name}` is required")
        else:
            expected = "a number" if float in allowed else "a string"
            errors.add(j, "wrong_type", name, f"`{name}` must be {expected}, got {type(v).__name__} {v!r:.60}")
        values[i] = None
    return False


def _numbers(values: list, name, required: bool, positive: bool, errors: _Errors, index_of=None) -> np.ndarray:
    _check_types(values, _NUM_OR_NONE if not required else _NUM, required, name, errors, index_of)
    # bool is a subclass of int in Python but a distinct JSON type; orjson gives real bools, which
    # map(type) above already rejected.
    arr = np.array(values, dtype=np.float64)  # None -> NaN
    if positive:
        bad = np.flatnonzero(~np.isnan(arr) & ~((arr > 0) & np.isfinite(arr)))
        code, what = "non_positive_value", "above zero"
    else:
        bad = np.flatnonzero((arr < 0) | np.isinf(arr))
        code, what = "negative_value", "zero or more"
    for i in bad.tolist():
        j = index_of(i) if index_of else i
        label = name(i) if callable(name) else name
        errors.add(j, code, label, f"`{label}` must be {what}, got {arr[i]!r}")
    return arr


def _strings(values: list, name, required: bool, errors: _Errors, index_of=None) -> list:
    _check_types(values, _STR if required else _STR_OR_NONE, required, name, errors, index_of)
    if required and "" in values:
        for i, v in enumerate(values):
            if v == "":
                j = index_of(i) if index_of else i
                label = name(i) if callable(name) else name
                errors.add(j, "missing_field", label, f"`{label}` must not be empty")
    return values


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def event_time_ms(value: object) -> int | str:
    """Epoch milliseconds of one event time, or why it is not one.

    Each value is judged on its own (never by what else is in the batch): epoch milliseconds as a JSON
    integer in [0, 2**53), or an ISO 8601 string `datetime.fromisoformat` accepts (no zone = UTC),
    truncated to whole milliseconds with exact integer arithmetic.
    """
    t = type(value)
    if t is int:
        return value if 0 <= value < 2**53 else f"`event_time` {value} is outside [0, 2**53) epoch milliseconds"
    if t is str:
        try:
            d = dt.datetime.fromisoformat(value)
        except ValueError:
            return f"`event_time` {value!r:.60} is not ISO 8601"
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.UTC)
        try:
            return (d - _EPOCH) // _MS
        except OverflowError:
            return f"`event_time` {value!r:.60} is out of range"
    return f"`event_time` must be an ISO 8601 string or epoch milliseconds, got {value!r:.60}"


def _event_times(values: list, errors: _Errors) -> np.ndarray:
    out = np.zeros(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v is None:
            errors.add(i, "missing_field", "event_time", "`event_time` is required")
            continue
        ms = event_time_ms(v)
        if type(ms) is str:
            errors.add(i, "bad_event_time", "event_time", ms)
        else:
            out[i] = ms
    return out


class BatchBuilder:
    """Turns decoded manifests into a ParcelBatch plus rejected parcels; keeps the worker's vocabularies."""

    def __init__(self, vocab: Vocabularies | None = None) -> None:
        self.vocab = vocab if vocab is not None else Vocabularies()
        self.formats = FormatChecker()

    def _codes(self, vocab_name: str, values: list, errors: _Errors, label, index_of=None) -> np.ndarray:
        vocabulary = self.vocab[vocab_name]
        codes = vocabulary.intern_many(values)
        fmt = FIELD_FORMATS.get(vocab_name, "length")
        if fmt:
            bad = np.flatnonzero(self.formats.invalid_mask(vocab_name, vocabulary, fmt, codes))
            for i in bad.tolist():
                j = index_of(i) if index_of else i
                name = label(i) if callable(label) else label
                errors.add(j, "bad_format", name,
                           f"`{name}` must be {_FORMATS[fmt][1]}, got {vocabulary.strings[codes[i]]!r:.60}")
        return codes

    def build(self, messages: list[DecodedMessage]) -> tuple[ParcelBatch, list[ParcelRejection]]:
        """Validate every parcel of the messages; return the valid ones as columns and the rest."""
        parcels: list = list(chain.from_iterable(m.parcels for m in messages))
        counts = [len(m.parcels) for m in messages]
        msg_index = np.repeat(np.arange(len(messages), dtype=np.int32), counts)
        n = len(parcels)
        errors = _Errors()

        recs = parcels
        if not all(type(p) is dict for p in parcels):
            recs = []
            for i, p in enumerate(parcels):
                if type(p) is dict:
                    recs.append(p)
                else:
                    errors.add(i, "invalid_parcel_type", "", f"parcel must be a JSON object, got {type(p).__name__}")
                    recs.append({})

        cols = _columns(recs, _PARCEL_FIELDS)
        pids = _strings(cols["parcel_id"], "parcel_id", True, errors)
        if max(map(len, filter(None, pids)), default=0) > MAX_ID_LENGTH:
            for i, pid in enumerate(pids):
                if pid is not None and len(pid) > MAX_ID_LENGTH:
                    errors.add(i, "bad_format", "parcel_id", f"`parcel_id` is longer than {MAX_ID_LENGTH} characters")
        self._duplicates(pids, counts, errors)

        event_ms = _event_times(cols["event_time"], errors)
        _inherit(cols, messages, counts)
        strings = {}
        for f in PARCEL_STRING_FIELDS:
            vals = _strings(cols[f], f, f in REQUIRED_PARCEL_STRINGS, errors)
            strings[f] = self._codes(f, vals, errors, f)
        numbers = {f: _numbers(cols[f], f, f in REQUIRED_PARCEL_NUMBERS,
                               f in POSITIVE_NUMBERS, errors) for f in PARCEL_NUMBER_FIELDS}

        item_lists = cols["items"]
        n_items = np.zeros(n, dtype=np.int64)
        if set(map(type, item_lists)) == {list} and all(item_lists) and \
                set(map(type, chain.from_iterable(item_lists))) == {dict}:
            n_items[:] = list(map(len, item_lists))
        else:
            for i, lst in enumerate(item_lists):
                if type(lst) is list and lst and all(type(it) is dict for it in lst):
                    n_items[i] = len(lst)
                else:
                    errors.add(i, "no_items", "items", "`items` must be a non-empty array of objects")
                    item_lists[i] = []
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(n_items, out=offsets[1:])
        items = list(chain.from_iterable(item_lists))
        parent = np.repeat(np.arange(n, dtype=np.int64), n_items)
        parent_list = parent.tolist()
        index_of = parent_list.__getitem__

        item_cols = _columns(items, _ITEM_FIELDS)

        def label_for(f):
            return lambda j: f"items[{j - offsets[parent_list[j]]}].{f}"

        item_strings = {}
        for f in ITEM_STRING_FIELDS:
            vals = _strings(item_cols[f], label_for(f), f in REQUIRED_ITEM_STRINGS, errors, index_of)
            item_strings[f] = self._codes("item_" + f, vals, errors, label_for(f), index_of)
        # An item without its own origin takes its parcel's (the vocabulary is shared).
        missing_origin = item_strings["origin_country"] == 0
        if missing_origin.any():
            item_strings["origin_country"][missing_origin] = strings["origin_country"][parent[missing_origin]]
        item_numbers = {f: _numbers(item_cols[f], label_for(f), f in REQUIRED_ITEM_NUMBERS,
                                    f in POSITIVE_NUMBERS, errors, index_of) for f in ITEM_NUMBER_FIELDS}

        rejected: list[ParcelRejection] = []
        source_row = np.arange(n, dtype=np.int64)
        if errors.by_index:
            starts = np.concatenate([[0], np.cumsum(counts)]).tolist()
            for i, rej in sorted(errors.by_index.items()):
                m = int(msg_index[i])
                rejected.append(ParcelRejection(m, i - starts[m], parcels[i], rej))
            keep = np.ones(n, dtype=bool)
            keep[list(errors.by_index)] = False
            keep_items = keep[parent]
            pids = [p for p, k in zip(pids, keep.tolist()) if k]
            msg_index, event_ms, source_row = msg_index[keep], event_ms[keep], source_row[keep]
            strings = {f: a[keep] for f, a in strings.items()}
            numbers = {f: a[keep] for f, a in numbers.items()}
            item_strings = {f: a[keep_items] for f, a in item_strings.items()}
            item_numbers = {f: a[keep_items] for f, a in item_numbers.items()}
            offsets = np.zeros(len(pids) + 1, dtype=np.int64)
            np.cumsum(n_items[keep], out=offsets[1:])

        batch = ParcelBatch(
            parcel_ids=pids,
            message_index=msg_index,
            parcel_hash=hash_ids(pids),
            event_time_ms=event_ms,
            strings=strings,
            numbers=numbers,
            item_offsets=offsets,
            item_strings=item_strings,
            item_numbers=item_numbers,
            vocab=self.vocab,
            source_row=source_row,
        )
        return batch, rejected

    @staticmethod
    def _duplicates(pids: list, counts: list[int], errors: _Errors) -> None:
        start = 0
        for c in counts:
            chunk = pids[start:start + c]
            if len(set(chunk)) != c:
                seen: set = set()
                for k, pid in enumerate(chunk):
                    if pid is None:
                        continue
                    if pid in seen:
                        errors.add(start + k, "duplicate_parcel_id", "parcel_id",
                                   f"parcel_id {pid!r:.60} appears earlier in the same manifest")
                    seen.add(pid)
            start += c


def _inherit(cols: dict[str, list], messages: list[DecodedMessage], counts: list[int]) -> None:
    """Parcels without their own value (absent or null) of a manifest-level field take the manifest's."""
    start = 0
    for msg, c in zip(messages, counts):
        for name, value in msg.meta.items():
            if name in cols:
                col = cols[name]
                for k in range(start, start + c):
                    if col[k] is None:
                        col[k] = value
        start += c


def build_batch(messages: list[DecodedMessage], vocab: Vocabularies | None = None):
    """One-shot helper: validate and build columns with a fresh (or given) vocabulary."""
    return BatchBuilder(vocab).build(messages)
