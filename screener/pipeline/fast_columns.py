"""The fast path from message bytes to a ParcelBatch: one Numba scan, Numba interning, numpy slicing.

`FastDecoder.build` takes the raw values of a batch, scans every message the Numba scanner can prove
valid (screener/kernels/json_scan.py) and returns their parcels as one ParcelBatch, plus the indices
of the messages it left to the reference path (screener/pipeline/decode.py + columns.py), which
decides them and dead-letters what is bad. No Python runs per parcel or per field value here: the
per-batch work is a fixed number of numpy calls per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from screener.kernels.hashing import fnv1a64_spans
from screener.kernels.json_scan import PARCEL_ID, ScanResult, resolve_deferred, scan
from screener.pipeline.batch import (
    ITEM_NUMBER_FIELDS,
    ITEM_STRING_FIELDS,
    PARCEL_NUMBER_FIELDS,
    PARCEL_STRING_FIELDS,
    ParcelBatch,
    SpanStrings,
    Vocabularies,
)

_ITEM_ORIGIN = ITEM_STRING_FIELDS.index("origin_country")
_ORIGIN = PARCEL_STRING_FIELDS.index("origin_country")


@dataclass
class FastDecoded:
    """What the fast path decided: the batch of its messages' parcels, and which messages it took."""

    batch: ParcelBatch
    taken: np.ndarray          # int64: indices (into the input list) of the messages in `batch`
    left: list[int]            # indices of the messages for the reference path
    manifest_ids: list[str]    # per taken message
    buf: np.ndarray            # the scanned bytes (every span indexes it)
    rows: ScanResult           # the scan of the batch's rows alone (messages numbered as `taken`)

    @property
    def parcel_span(self) -> np.ndarray:
        """int64 [2, n]: each parcel object's bytes in `buf`."""
        return self.rows.parcel_span

    def manifest_fields(self, k: int) -> dict:
        """The manifest-level fields (carrier_code, master_bill_no) of taken message k, when it has them."""
        out = {}
        for name, col in (("carrier_code", 0), ("master_bill_no", 2)):
            a, n = self.rows.manifest_fields[k, col], self.rows.manifest_fields[k, col + 1]
            if n >= 0:
                out[name] = self.buf[a:a + n].tobytes().decode("utf-8")
        return out


class FastDecoder:
    """Builds ParcelBatches straight from message bytes into the given vocabularies."""

    def __init__(self, vocab: Vocabularies, max_message_bytes: int) -> None:
        self.vocab = vocab
        self.max_message_bytes = max_message_bytes

    def build(self, values: list[bytes | None]) -> FastDecoded:
        """Scan the messages; those it cannot prove valid are left to the reference path."""
        eligible = [i for i, v in enumerate(values) if v and len(v) <= self.max_message_bytes and utf8(v)]
        chunks = [values[i] for i in eligible]
        buf = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        bounds = np.zeros(len(chunks) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in chunks], out=bounds[1:])
        s = scan(buf, bounds)
        ok = s.ok.copy()
        pid_hash = fnv1a64_spans(buf, s.str_start[PARCEL_ID], s.str_len[PARCEL_ID])
        dup = _messages_with_duplicate_ids(s.message, pid_hash)
        bad_numbers = resolve_deferred(buf, s) if len(s.deferred) else dup[:0]
        drop = np.union1d(dup, bad_numbers)
        keep = None
        if len(drop):
            ok[drop] = False
            keep = ok[s.message]
        taken_local = np.flatnonzero(ok)
        batch, rows = self._batch(s, buf, pid_hash, keep, taken_local, len(eligible))
        manifest_ids = []
        for m in taken_local.tolist():
            a, n = s.manifest_id[m]
            manifest_ids.append(buf[a:a + n].tobytes().decode("utf-8") if n > 0 else "")
        for k in np.flatnonzero(s.bare[taken_local] & (s.manifest_id[taken_local, 1] <= 0)).tolist():
            # A bare parcel without its own manifest_id is named after the parcel (see decode.py).
            manifest_ids[k] = f"single:{batch.parcel_ids[int(np.searchsorted(batch.message_index, k))]}"
        eligible_arr = np.asarray(eligible, dtype=np.int64)
        taken = eligible_arr[taken_local]
        left = sorted(set(range(len(values))) - set(taken.tolist()))
        return FastDecoded(batch, taken, left, manifest_ids, buf, rows)

    def _batch(self, s: ScanResult, buf: np.ndarray, pid_hash: np.ndarray, keep: np.ndarray | None,
               taken_local: np.ndarray, n_msgs: int) -> tuple[ParcelBatch, ScanResult]:
        str_start, str_len, numbers, event_ms = s.str_start, s.str_len, s.numbers, s.event_ms
        message, span, item_parent = s.message, s.parcel_span, s.item_parent
        item_start, item_len, item_numbers = s.item_str_start, s.item_str_len, s.item_numbers
        if keep is not None:
            keep_items = keep[item_parent]
            str_start, str_len, numbers = str_start[:, keep], str_len[:, keep], numbers[:, keep]
            event_ms, message, span, pid_hash = event_ms[keep], message[keep], span[:, keep], pid_hash[keep]
            # Parent rows renumbered after dropping whole messages.
            item_parent = (np.cumsum(keep) - 1)[item_parent[keep_items]]
            item_start, item_len = item_start[:, keep_items], item_len[:, keep_items]
            item_numbers = item_numbers[:, keep_items]
        n = message.shape[0]
        # Message index within the taken messages (the batch's messages are the taken ones, in order).
        renumber = np.full(max(n_msgs, 1), -1, dtype=np.int32)
        renumber[taken_local] = np.arange(len(taken_local), dtype=np.int32)
        message_index = renumber[message] if n else np.zeros(0, dtype=np.int32)
        vocab = self.vocab
        # Codes are made when a column is first read: a pack that never reads consignee_name never interns it.
        strings = InternedColumns(vocab, "", buf, {f: (str_start[k], str_len[k]) for k, f in
                                                  enumerate(PARCEL_STRING_FIELDS)})
        origin = strings["origin_country"]
        item_strings = InternedColumns(vocab, "item_", buf, {f: (item_start[k], item_len[k]) for k, f in
                                                             enumerate(ITEM_STRING_FIELDS)},
                                       inherit={"origin_country": (origin, item_parent)})
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(item_parent, minlength=n)[:n], out=offsets[1:])
        batch = ParcelBatch(
            parcel_ids=SpanStrings(buf, str_start[PARCEL_ID].copy(), str_len[PARCEL_ID].copy()),
            message_index=message_index,
            parcel_hash=pid_hash,
            event_time_ms=np.ascontiguousarray(event_ms),
            strings=strings,
            numbers={f: np.ascontiguousarray(numbers[k]) for k, f in enumerate(PARCEL_NUMBER_FIELDS)},
            item_offsets=offsets,
            item_strings=item_strings,
            item_numbers={f: np.ascontiguousarray(item_numbers[k]) for k, f in enumerate(ITEM_NUMBER_FIELDS)},
            vocab=vocab,
        )
        rows = ScanResult(np.ones(len(taken_local), np.bool_), s.bare[taken_local], s.manifest_id[taken_local],
                          s.manifest_fields[taken_local], message_index, span, str_start, str_len, numbers, event_ms,
                          item_parent, item_start, item_len, item_numbers, s.deferred[:0])
        return batch, rows


class InternedColumns(dict):
    """String columns as int32 codes, interned from their byte spans the first time each is read."""

    def __init__(self, vocab: Vocabularies, prefix: str, buf: np.ndarray, spans: dict, inherit: dict | None = None):
        super().__init__()
        self._vocab, self._prefix, self._buf, self._spans = vocab, prefix, buf, spans
        self._inherit = inherit or {}

    def __missing__(self, name: str) -> np.ndarray:
        if name not in self._spans:
            raise KeyError(name)
        start, length = self._spans[name]
        codes = self._vocab[self._prefix + name].intern_spans(self._buf, start, length)
        if name in self._inherit:
            # An item without its own origin takes its parcel's (the country vocabulary is shared).
            parent_codes, parent = self._inherit[name]
            missing = codes == 0
            if missing.any():
                codes[missing] = parent_codes[parent[missing]]
        self[name] = codes
        return codes

    def keys(self):
        """Every column name (interned or not yet)."""
        return self._spans.keys()

    def items(self):
        """(name, codes) of every column, interning those not read yet."""
        return ((name, self[name]) for name in self._spans)

    def values(self):
        """Codes of every column, interning those not read yet."""
        return (self[name] for name in self._spans)

    def __iter__(self):
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def __contains__(self, name) -> bool:
        return name in self._spans


def utf8(value: bytes) -> bool:
    """Whether the bytes are valid UTF-8 (orjson refuses the rest; the reference path says so)."""
    if value.isascii():
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _messages_with_duplicate_ids(message: np.ndarray, pid_hash: np.ndarray) -> np.ndarray:
    """Messages (scan-local indices) where some parcel_id repeats: the reference path dead-letters them."""
    if len(message) < 2:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((pid_hash, message))
    same = (message[order][1:] == message[order][:-1]) & (pid_hash[order][1:] == pid_hash[order][:-1])
    if not same.any():
        return np.zeros(0, dtype=np.int64)
    # Equal hashes are almost surely equal ids; a true collision only costs a trip to the reference path.
    return np.unique(message[order][1:][same]).astype(np.int64)

