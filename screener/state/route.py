"""Re-keying for stateful packs: a batch's valid parcels regrouped by state partition, one record per partition.

Manifests arrive keyed by manifest and hold many consignees; consignee state lives in one state partition
per consignee (murmur2 of the normalised consignee id, Kafka's default partitioner, so any client agrees).
Stage one of a stateful worker decodes and validates a batch as usual (dead letters included), then
`Router` puts each manifest's valid parcels into segments, one per state partition they belong to
(screener/kernels/segments.py writes them), and packs the batch's segments into one record per destination
partition (more only when the record limit needs it), never one per parcel. A record's value is a JSON
header line (`{"segments": [{"source", "shard", "shards", "dead_lettered", "size"}, ...], "columns": N}`),
the segments' bytes, each a manifest-shaped document (`schema_version`, `manifest_id`, the manifest's
carrier fields, `parcels` as received), and, when `columns` is there, N bytes of column block: stage one's
scan of those documents (screener/state/segment_columns.py), so stage two does not scan them again. A
batch the fast path did not decode has no block; stage two scans its documents with the same decoder.
`segments` turns a record back into messages whose `route` carries the original manifest's source and the
sequence of the segment's first parcel in the partition: (record offset << 24) + parcels before it.

A record's value is written as one LZ4 frame with a content checksum (`compression="lz4"`, the default):
the hop carries every parcel's bytes a second time, the worker's Kafka client costs grow with the bytes it
moves, and a frame is under a third of the record. Stage two reads both forms, expanding a frame to at
most `max_bytes`, so a small record cannot make it allocate more.
"""

from __future__ import annotations

import dataclasses

import lz4.frame
import numpy as np
import orjson

from screener.kernels.block_check import parcel_objects, spans_are_plain_strings
from screener.kernels.json_scan import CARRIER_CODE, ScanResult
from screener.kernels.partition import partitions_of
from screener.kernels.segments import write_segments
from screener.pipeline.batch import PerCode
from screener.pipeline.decode import RawMessage
from screener.pipeline.fast_columns import utf8
from screener.settings import HOP_COMPRESSIONS
from screener.state.segment_columns import block_size, decode_block, encode_block

PARCELS = "parcels"      # the kind (and topic name) of re-keyed records
_HEADER_SLACK = 4096
_LZ4_MAGIC = b"\x04\x22\x4d\x18"   # an LZ4 frame; an uncompressed record starts with its header's "{"
_MAX_EXPANDED = 1 << 22      # what a frame may expand to unless the caller says (the worker derives its own)


class Router:
    """Collects a batch's valid parcels by state partition; `flush` gives the records to produce."""

    def __init__(self, partitions: int, max_record_bytes: int = 1_000_000, compression: str = "lz4") -> None:
        """`max_record_bytes` bounds a record before compression; `compression`: "lz4" or "none"."""
        if compression not in HOP_COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(HOP_COMPRESSIONS)}, not {compression!r}")
        self.partitions = partitions
        self.max_record_bytes = max_record_bytes
        self.compress = compression == "lz4"
        self._partition_of = PerCode(self._partitions_of_codes)   # each consignee code's partition, once
        self.reset()

    def reset(self) -> None:
        """Forget what the batch added so far."""
        self._pending: list[tuple] = []

    def _partitions(self, batch) -> np.ndarray:
        codes = batch.strings["consignee_id"]    # first: reading the column interns it, `normalised` then has it
        return self._partition_of(batch.vocab["consignee_id"], codes).astype(np.int64)

    def _partitions_of_codes(self, vocab, codes: np.ndarray) -> np.ndarray:
        keys = vocab.normalised
        return partitions_of([keys[c].encode() for c in codes.tolist()], self.partitions)

    def add(self, messages, batch, parcel_json, outcome, scanned=None) -> None:
        """Queue decoded messages (rows [m.lo, m.hi) of `batch`) for re-keying; `scanned` = (buf, the scan of
        the batch's rows) when the fast path decoded them, so the records carry their columns."""
        parts = self._partitions(batch) if batch.n else np.zeros(0, np.int64)
        self._pending.append((messages, batch.n, parts, parcel_json, scanned))
        outcome.messages["routed"] += len(messages)

    def flush(self) -> list[tuple[str, bytes | None, bytes, int]]:
        """One record per destination partition (several when the limit needs), in partition order."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        if len(pending) == 1 and pending[0][4] is not None:
            messages, n, parts, _, (buf, rows) = pending[0]
            return self._records(buf, rows.parcel_span, messages, parts, rows)
        # The reference path (a message at a time): the parcels' JSON joined into one buffer, no columns.
        pieces, messages, parts, base = [], [], [], 0
        for msgs, n, p, parcel_json, _ in pending:
            pieces += [parcel_json(r) for r in range(n)]
            messages += [dataclasses.replace(m, lo=m.lo + base, hi=m.hi + base) for m in msgs]
            parts.append(p)
            base += n
        ends = np.cumsum([len(x) for x in pieces], dtype=np.int64)
        span = np.stack([ends - np.fromiter(map(len, pieces), np.int64, len(pieces)), ends])
        buf = np.frombuffer(b"".join(pieces), dtype=np.uint8)
        return self._records(buf, span, messages, np.concatenate(parts), None)

    def _records(self, buf, span, messages, parts, rows) -> list[tuple[str, None, bytes, int]]:
        n, n_msgs = span.shape[1], len(messages)
        msg_of_row = np.repeat(np.arange(n_msgs), [m.hi - m.lo for m in messages])
        order = np.lexsort((np.arange(n), msg_of_row, parts))
        group_key = parts[order] * n_msgs + msg_of_row[order]
        cut = np.flatnonzero(np.diff(group_key)) + 1
        lo = np.concatenate(([0], cut)).astype(np.int64) if n else np.zeros(0, np.int64)
        # A message without a valid parcel still gets one (empty) segment: its receipt comes from stage two.
        empty = [k for k, m in enumerate(messages) if m.hi == m.lo]
        empty_part = partitions_of([messages[k].manifest_id.encode() for k in empty], self.partitions)
        keys = np.concatenate((group_key[lo], empty_part * n_msgs + np.asarray(empty, np.int64)))
        g_lo = np.concatenate((lo, np.searchsorted(group_key, keys[len(lo):])))
        g_hi = np.concatenate((np.append(lo[1:], n), g_lo[len(lo):]))
        by_key = np.argsort(keys, kind="stable")
        keys, g_lo, g_hi = keys[by_key], g_lo[by_key], g_hi[by_key]
        heads = [_head(m) for m in messages]
        limit = self.max_record_bytes - _HEADER_SLACK
        # Room for the column block too: it takes under twice the bytes of the parcels it describes.
        out, seg_group, seg_bounds, seg_rows, new_start = write_segments(
            buf, span, order, g_lo, g_hi, keys % n_msgs, [h for h, _ in heads], limit // 3 if rows else limit)
        seg_msg, seg_part = (keys % n_msgs)[seg_group], (keys // n_msgs)[seg_group]
        seg_rows = np.append(seg_rows, n)
        columns = (_rebased(rows, order, span, new_start, seg_rows, seg_bounds, seg_msg, heads)
                   if rows is not None else None)
        shards = np.bincount(seg_msg, minlength=n_msgs)
        seen = np.zeros(n_msgs, np.int64)
        metas = []
        for s, k in enumerate(seg_msg.tolist()):
            seen[k] += 1
            m = messages[k]
            metas.append({"source": m.source, "shard": int(seen[k]), "shards": int(shards[k]),
                          "dead_lettered": m.dead_lettered if seen[k] == 1 else 0,
                          "size": int(seg_bounds[s + 1] - seg_bounds[s])})
        return self._pack(out, seg_part.tolist(), seg_bounds, seg_rows, metas, columns)

    def _pack(self, out, seg_part, seg_bounds, seg_rows, metas, columns) -> list[tuple[str, None, bytes, int]]:
        """Consecutive segments of one partition per record, under the record limit with their columns."""
        records, start, ns = [], 0, len(metas)
        limit = self.max_record_bytes - _HEADER_SLACK
        while start < ns:
            end, size = start, 0
            while end < ns and seg_part[end] == seg_part[start]:
                grow = metas[end]["size"] + 200 + (columns.block_bytes(end, end + 1) if columns else 0)
                if end > start and size + grow > limit:
                    break
                size += grow
                end += 1
            header = {"segments": metas[start:end]}
            # A lone segment too large with its block (one huge parcel) goes without it: stage two scans it.
            block = columns.block(start, end) if columns and size <= limit else b""
            if block:
                header["columns"] = len(block)
            docs = memoryview(out)[seg_bounds[start]:seg_bounds[end]]     # joined below: one copy of the bytes
            value = b"".join((orjson.dumps(header), b"\n", docs, block))
            if self.compress:
                value = lz4.frame.compress(value, content_checksum=True)
            records.append((PARCELS, None, value, seg_part[start]))
            start = end
        return records


def _head(m) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """A segment's head (its manifest's document up to `parcels`) and where its strings are in it."""
    out = b'{"schema_version":1,"manifest_id":'
    at: dict[str, tuple[int, int]] = {}
    for name, value in (("manifest_id", m.manifest_id), *m.manifest_fields.items()):
        text = orjson.dumps(value)
        if name != "manifest_id":
            out += b',"' + name.encode() + b'":'
        at[name] = (len(out) + 1, len(text) - 2)
        out += text
    return out, at


class _Columns:
    """The scan of a batch's rows in segment order, spans into the written segments: sliced per record."""

    def __init__(self, scan, seg_rows, seg_bounds, item_bounds) -> None:
        self.scan, self.seg_rows, self.seg_bounds, self.item_bounds = scan, seg_rows, seg_bounds, item_bounds

    def block_bytes(self, s0: int, s1: int) -> int:
        """Size of the block of segments [s0, s1)."""
        rows = self.seg_rows[s1] - self.seg_rows[s0]
        items = self.item_bounds[self.seg_rows[s1]] - self.item_bounds[self.seg_rows[s0]]
        return block_size(s1 - s0, int(rows), int(items))

    def block(self, s0: int, s1: int) -> bytes:
        """The column block of segments [s0, s1), spans relative to the first one's document."""
        s, base = self.scan, self.seg_bounds[s0]
        r0, r1 = self.seg_rows[s0], self.seg_rows[s1]
        i0, i1 = self.item_bounds[r0], self.item_bounds[r1]
        mid, fields = s.manifest_id[s0:s1].copy(), s.manifest_fields[s0:s1].copy()
        mid[:, 0] -= base
        fields[:, 0::2] = np.where(fields[:, 1::2] >= 0, fields[:, 0::2] - base, -1)
        return encode_block(ScanResult(
            s.ok[s0:s1], s.bare[s0:s1], mid, fields, s.message[r0:r1] - s0, s.parcel_span[:, r0:r1] - base,
            s.str_start[:, r0:r1] - base, s.str_len[:, r0:r1], s.numbers[:, r0:r1], s.event_ms[r0:r1],
            s.item_parent[i0:i1] - r0, s.item_str_start[:, i0:i1] - base, s.item_str_len[:, i0:i1],
            s.item_numbers[:, i0:i1], s.deferred))


def _rebased(rows, order, span, new_start, seg_rows, seg_bounds, seg_msg, heads) -> _Columns:
    """The rows' scan in `order`, each span moved to where write_segments put its parcel (or head)."""
    n_seg = len(seg_bounds) - 1
    seg_of = np.repeat(np.arange(n_seg), np.diff(seg_rows))          # segment of each position in order
    delta = new_start[order] - span[0, order]
    st, ln = rows.str_start[:, order], rows.str_len[:, order]
    # A parcel without its own carrier_code has its manifest's: that span points into the segment's head.
    carrier = _heads_at(heads, seg_msg, "carrier_code")
    c = st[CARRIER_CODE]
    inherited = (ln[CARRIER_CODE] >= 0) & ((c < span[0, order]) | (c >= span[1, order]))
    st = st + delta
    st[CARRIER_CODE] = np.where(inherited, seg_bounds[seg_of] + carrier[seg_of, 0], st[CARRIER_CODE])
    # Items follow their parcels: row r's items are [first[r], first[r + 1]) before, in `order` after.
    counts = np.bincount(rows.item_parent, minlength=span.shape[1])
    first = np.zeros(span.shape[1] + 1, np.int64)
    np.cumsum(counts, out=first[1:])
    per_row = counts[order]
    item_bounds = np.zeros(len(order) + 1, np.int64)
    np.cumsum(per_row, out=item_bounds[1:])
    items = np.repeat(first[order] - item_bounds[:-1], per_row) + np.arange(item_bounds[-1])
    parent = np.repeat(np.arange(len(order)), per_row)
    mid = _heads_at(heads, seg_msg, "manifest_id")
    mid[:, 0] += seg_bounds[:-1]
    fields = np.concatenate((carrier, _heads_at(heads, seg_msg, "master_bill_no")), 1)
    fields[:, 0::2] = np.where(fields[:, 1::2] >= 0, fields[:, 0::2] + seg_bounds[:-1, None], -1)
    scan = ScanResult(
        np.ones(n_seg, np.bool_), np.zeros(n_seg, np.bool_), mid, fields, seg_of,
        np.stack([new_start[order], new_start[order] + span[1, order] - span[0, order]]), st, ln,
        rows.numbers[:, order], rows.event_ms[order], parent, rows.item_str_start[:, items] + delta[parent],
        rows.item_str_len[:, items], rows.item_numbers[:, items], np.zeros((0, 5), np.int64))
    return _Columns(scan, seg_rows, seg_bounds, item_bounds)


def _heads_at(heads, seg_msg, name: str) -> np.ndarray:
    """int64 [segments, 2]: where field `name` is in each segment's head (start -1, length -1: not there)."""
    return np.array([heads[k][1].get(name, (-1, -1)) for k in seg_msg.tolist()], dtype=np.int64).reshape(-1, 2)


def expanded(value: bytes, max_bytes: int) -> bytes:
    """A re-keyed record's value as stage one built it: an LZ4 frame expanded (ValueError past `max_bytes`,
    or when it is not one whole frame), any other value as it is."""
    if not value.startswith(_LZ4_MAGIC):
        return value
    frame = lz4.frame.LZ4FrameDecompressor()
    try:
        out = frame.decompress(value, max_length=max_bytes)
    except RuntimeError as exc:
        raise ValueError(f"a damaged LZ4 frame: {exc}") from None
    if not frame.eof:
        raise ValueError(f"an LZ4 frame that is cut short or expands past {max_bytes} bytes")
    if frame.unused_data:
        raise ValueError("bytes after the LZ4 frame")
    return out


def segments(value: bytes, topic: str, partition: int, offset: int, timestamp_ms: int = 0,
             max_bytes: int = _MAX_EXPANDED) -> list[RawMessage]:
    """The segments of a re-keyed record as messages for stage two (raises ValueError on a malformed one)."""
    return segments_and_columns(value, topic, partition, offset, timestamp_ms, max_bytes)[0]


def segments_and_columns(value: bytes, topic: str, partition: int, offset: int, timestamp_ms: int = 0,
                         max_bytes: int = _MAX_EXPANDED) -> tuple[list[RawMessage], ScanResult | None]:
    """The segments as messages and, when the record's column block fits them, the scan of their documents;
    `max_bytes`: the most a compressed record may expand to (stage one writes at most its record limit
    plus one oversized parcel)."""
    value = expanded(value, max_bytes)
    newline = value.index(b"\n")
    header = orjson.loads(value[:newline])
    metas = header["segments"]
    sizes = [meta["size"] for meta in metas]
    if any(type(size) is not int or not 0 <= size <= len(value) for size in sizes) or (
            newline + 1 + sum(sizes) > len(value)):
        raise ValueError("the header's segment sizes do not fit the record")
    bounds = np.cumsum([newline + 1] + sizes, dtype=np.int64)
    docs = np.frombuffer(value, dtype=np.uint8, count=int(bounds[-1] - bounds[0]), offset=int(bounds[0]))
    local = bounds - bounds[0]
    # The elements of each document's parcels array, found in the documents themselves (never in the block).
    doc, start, end = parcel_objects(docs, local)
    per_doc = np.bincount(doc, minlength=len(metas)).tolist()
    out, before = [], 0
    for meta, lo, hi, parcels in zip(metas, bounds.tolist(), bounds[1:].tolist(), per_doc):
        route = {"source": meta["source"], "shard": meta["shard"], "shards": meta["shards"],
                 "dead_lettered": meta["dead_lettered"], "seq": (offset << 24) + before}
        out.append(RawMessage(value[lo:hi], topic, partition, offset, timestamp_ms, None, route))
        before += parcels + 1          # +1: positions need only grow
    columns = header.get("columns")
    scanned = None
    at = int(bounds[-1])
    if type(columns) is int and at + columns == len(value) and utf8(value[bounds[0]:at]):
        scanned = decode_block(value[at:], bounds)
    # The block's rows must be the documents' parcels, one for one: a row left out would lose a parcel, and
    # a span that is not a whole parcel object would make a flagged record that is not JSON.
    if scanned is not None and not (np.array_equal(scanned.message, doc) and np.array_equal(scanned.parcel_span[0], start)
                                    and np.array_equal(scanned.parcel_span[1], end)):
        scanned = None
    if scanned is not None and not _strings_well_formed(docs, scanned):
        scanned = None
    return out, scanned


def _strings_well_formed(docs: np.ndarray, s: ScanResult) -> bool:
    """Whether the strings the output copies from the documents at the block's spans need no escaping."""
    pairs = np.concatenate((s.manifest_id, s.manifest_fields[:, :2], s.manifest_fields[:, 2:]))
    return (spans_are_plain_strings(docs, s.str_start, s.str_len)
            and spans_are_plain_strings(docs, s.item_str_start, s.item_str_len)
            and spans_are_plain_strings(docs, pairs[:, 0], pairs[:, 1]))
