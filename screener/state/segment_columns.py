"""The column block of a re-keyed record: stage one's scan of its segments, so stage two scans nothing.

Stage one has scanned every parcel already (screener/kernels/json_scan.py); a re-keyed record carries, after
its segment documents, what scanning those documents gives: the `ScanResult` of the record's rows with
every span rebased to the record's documents (int32 on the wire: 180 bytes per parcel, 60 per item). Stage two checks
the block against the documents it describes (every span inside them, rows and items in order; strings that
need no escaping and parcel spans that are whole objects: screener/kernels/block_check.py) and screens
from it; a block that is missing or fails a check costs a scan of the documents, never a wrong column, as
the documents themselves are always there. Tests hold the block equal to a scan of the documents.

Layout (little-endian): 9 int64 (MAGIC, VERSION, segments, rows, items, N_PSTR, N_PNUM, N_ISTR, N_INUM),
then int32 manifest_id [segments, 2], manifest_fields [segments, 4], message [rows], parcel_span [2, rows],
str_start and str_len [N_PSTR, rows], float64 numbers [N_PNUM, rows], int64 event_ms [rows], int32
item_parent [items], item_str_start and item_str_len [N_ISTR, items], float64 item_numbers [N_INUM, items].
"""

from __future__ import annotations

import numpy as np

from screener.kernels.json_scan import N_INUM, N_ISTR, N_PNUM, N_PSTR, ScanResult

MAGIC, VERSION = 0x5343524E434F4C53, 1     # "SCRNCOLS"
_HEAD = 9
_I32, _F64, _I64 = np.dtype("<i4"), np.dtype("<f8"), np.dtype("<i8")


def _layout(n_seg: int, n: int, k: int) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    return [("manifest_id", _I32, (n_seg, 2)), ("manifest_fields", _I32, (n_seg, 4)), ("message", _I32, (n,)),
            ("parcel_span", _I32, (2, n)), ("str_start", _I32, (N_PSTR, n)), ("str_len", _I32, (N_PSTR, n)),
            ("numbers", _F64, (N_PNUM, n)), ("event_ms", _I64, (n,)), ("item_parent", _I32, (k,)),
            ("item_str_start", _I32, (N_ISTR, k)), ("item_str_len", _I32, (N_ISTR, k)),
            ("item_numbers", _F64, (N_INUM, k))]


def block_size(segments: int, rows: int, items: int) -> int:
    """Bytes of the block of this many segments, rows and items."""
    return _HEAD * 8 + segments * _PER_SEGMENT + rows * _PER_ROW + items * _PER_ITEM


def _bytes_per(segments: int, rows: int, items: int) -> int:
    return sum(dtype.itemsize * int(np.prod(shape)) for _, dtype, shape in _layout(segments, rows, items))


# Per segment, row and item: the layout is linear in each (counted once, not per call).
_PER_SEGMENT, _PER_ROW, _PER_ITEM = _bytes_per(1, 0, 0), _bytes_per(0, 1, 0), _bytes_per(0, 0, 1)


def encode_block(scan: ScanResult) -> bytes:
    """The block of a scan whose spans index the record's documents (starts of absent strings are ignored)."""
    n_seg, n, k = scan.manifest_id.shape[0], scan.message.shape[0], scan.item_parent.shape[0]
    fields = scan._asdict()
    # A start is meaningful only where its length is >= 0 (the scanner leaves the rest unset).
    fields["str_start"] = np.where(scan.str_len >= 0, scan.str_start, 0)
    fields["item_str_start"] = np.where(scan.item_str_len >= 0, scan.item_str_start, 0)
    parts = [np.array([MAGIC, VERSION, n_seg, n, k, N_PSTR, N_PNUM, N_ISTR, N_INUM], dtype=_I64).tobytes()]
    parts += [np.ascontiguousarray(fields[name], dtype=dtype).tobytes() for name, dtype, _ in _layout(n_seg, n, k)]
    return b"".join(parts)


def decode_block(block: bytes, doc_bounds: np.ndarray) -> ScanResult | None:
    """The scan a block describes, spans into the documents doc_bounds[0]..doc_bounds[-1] (relative to
    doc_bounds[0]; segment s is [doc_bounds[s], doc_bounds[s + 1])); None when it does not fit them."""
    if len(block) < _HEAD * 8:
        return None
    head = np.frombuffer(block, dtype=_I64, count=_HEAD)
    n_seg = len(doc_bounds) - 1
    if (head[0], head[1], head[2], head[5], head[6], head[7], head[8]) != (
            MAGIC, VERSION, n_seg, N_PSTR, N_PNUM, N_ISTR, N_INUM) or head[3] < 0 or head[4] < 0:
        return None
    n, k = int(head[3]), int(head[4])
    layout = _layout(n_seg, n, k)
    if len(block) != block_size(n_seg, n, k):
        return None
    out, at = {}, _HEAD * 8
    for name, dtype, shape in layout:
        count = int(np.prod(shape))
        a = np.frombuffer(block, dtype=dtype, count=count, offset=at).reshape(shape)
        out[name] = a.astype(np.int64) if dtype == _I32 else a.astype(np.float64 if dtype == _F64 else np.int64)
        at += count * dtype.itemsize
    scan = ScanResult(np.ones(n_seg, np.bool_), np.zeros(n_seg, np.bool_), deferred=np.zeros((0, 5), np.int64),
                      **out)
    return scan if _fits(scan, doc_bounds - doc_bounds[0]) else None


def _spans_inside(start: np.ndarray, length: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Every span with a length >= 0 lies in [lo, hi) of its row; lengths are >= -2 (null, absent)."""
    present = length >= 0
    return bool((length >= -2).all() and (~present | ((start >= lo) & (start + length <= hi))).all())


def _fits(s: ScanResult, bounds: np.ndarray) -> bool:
    """Whether the scan indexes only the documents: what a hostile or damaged block must not get past."""
    n_seg, n = len(bounds) - 1, s.message.shape[0]
    msg, parent = s.message, s.item_parent
    if n and not ((msg >= 0).all() and (msg < n_seg).all() and (np.diff(msg) >= 0).all()):
        return False
    if len(parent) and not ((parent >= 0).all() and (parent < n).all() and (np.diff(parent) >= 0).all()):
        return False
    seg_lo, seg_hi = bounds[:-1], bounds[1:]
    lo, hi = seg_lo[msg], seg_hi[msg]
    span = s.parcel_span
    if n and not ((span[0] >= lo) & (span[0] <= span[1]) & (span[1] <= hi)).all():
        return False
    # A parcel's strings are inside its segment (carrier_code may come from the segment's head).
    return (_spans_inside(s.manifest_id[:, 0], s.manifest_id[:, 1], seg_lo, seg_hi)
            and all(_spans_inside(s.manifest_fields[:, c], s.manifest_fields[:, c + 1], seg_lo, seg_hi) for c in (0, 2))
            and _spans_inside(s.str_start, s.str_len, lo, hi)
            and _spans_inside(s.item_str_start, s.item_str_len, span[0][parent], span[1][parent]))


def concat_scans(scans: list[ScanResult], doc_offsets: list[int]) -> ScanResult:
    """One scan of several records' documents laid end to end (record r's starting at doc_offsets[r])."""
    if len(scans) == 1 and doc_offsets[0] == 0:
        return scans[0]
    segs = np.cumsum([0] + [s.manifest_id.shape[0] for s in scans])
    rows = np.cumsum([0] + [s.message.shape[0] for s in scans])

    def moved(name: str, by) -> np.ndarray:
        return np.concatenate([getattr(s, name) + b for s, b in zip(scans, by)], axis=-1)

    def spans(name: str) -> np.ndarray:
        # Starts move with the record; lengths (odd columns of [m, 2k] span pairs) stay.
        parts = []
        for s, off in zip(scans, doc_offsets):
            a = getattr(s, name).copy()
            a[:, 0::2] += off
            parts.append(a)
        return np.concatenate(parts, axis=0)

    return ScanResult(
        ok=np.concatenate([s.ok for s in scans]), bare=np.concatenate([s.bare for s in scans]),
        manifest_id=spans("manifest_id"), manifest_fields=spans("manifest_fields"),
        message=moved("message", segs[:-1]), parcel_span=moved("parcel_span", doc_offsets),
        str_start=moved("str_start", doc_offsets), str_len=np.concatenate([s.str_len for s in scans], axis=-1),
        numbers=np.concatenate([s.numbers for s in scans], axis=-1),
        event_ms=np.concatenate([s.event_ms for s in scans]), item_parent=moved("item_parent", rows[:-1]),
        item_str_start=moved("item_str_start", doc_offsets),
        item_str_len=np.concatenate([s.item_str_len for s in scans], axis=-1),
        item_numbers=np.concatenate([s.item_numbers for s in scans], axis=-1),
        deferred=np.zeros((0, 5), np.int64))
