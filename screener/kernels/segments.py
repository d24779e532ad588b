"""Re-keyed segment documents in Numba: a batch's parcel objects regrouped into manifest-shaped documents.

Stage one of a stateful worker (screener/state/route.py) sends each manifest's valid parcels to the state
partition of their consignee. A *group* is one manifest's parcels of one partition (rows of the scanned
buffer, in order); it becomes one or more *segments*, each a document
`<head>,"parcels":[<parcel>,<parcel>,...]}` made of its manifest's head (`{"schema_version":1,...`
without the closing brace) and the parcels' bytes exactly as received. A group is split greedily so that
no segment is over `limit` bytes unless a single parcel is; a group without rows is one empty segment.
`write_segments` writes every segment into one buffer and says where each parcel object landed;
`write_segments_reference` is the same in plain Python (tests hold the two equal).
"""

from __future__ import annotations

import numba as nb
import numpy as np

JOIN = b',"parcels":['
TAIL = b"]}"
_JOIN = np.frombuffer(JOIN, dtype=np.uint8).copy()
_TAIL = np.frombuffer(TAIL, dtype=np.uint8).copy()


@nb.njit(cache=True)
def _write_segments(buf, span, order, group_lo, group_hi, group_head, heads, head_bounds, limit, join, tail):
    n_groups = group_lo.shape[0]
    cap = n_groups + order.shape[0]     # a segment holds a row or is its group's only one
    seg_group = np.empty(cap, dtype=np.int64)
    seg_rows = np.empty(cap, dtype=np.int64)
    seg_size = np.empty(cap, dtype=np.int64)
    ns = 0
    for g in range(n_groups):
        h = group_head[g]
        base = head_bounds[h + 1] - head_bounds[h] + join.shape[0] + tail.shape[0]
        size, count = base, 0
        seg_group[ns], seg_rows[ns] = g, group_lo[g]
        for k in range(group_lo[g], group_hi[g]):
            r = order[k]
            add = span[1, r] - span[0, r] + (1 if count > 0 else 0)
            if count > 0 and size + add > limit:
                seg_size[ns] = size
                ns += 1
                seg_group[ns], seg_rows[ns] = g, k
                size, count = base, 0
                add = span[1, r] - span[0, r]
            size += add
            count += 1
        seg_size[ns] = size
        ns += 1
    seg_bounds = np.zeros(ns + 1, dtype=np.int64)
    for s in range(ns):
        seg_bounds[s + 1] = seg_bounds[s] + seg_size[s]
    out = np.empty(seg_bounds[ns], dtype=np.uint8)
    new_start = np.full(span.shape[1], -1, dtype=np.int64)
    for s in range(ns):
        at = seg_bounds[s]
        h = group_head[seg_group[s]]
        size = head_bounds[h + 1] - head_bounds[h]
        out[at:at + size] = heads[head_bounds[h]:head_bounds[h + 1]]
        at += size
        out[at:at + join.shape[0]] = join
        at += join.shape[0]
        hi = seg_rows[s + 1] if s + 1 < ns and seg_group[s + 1] == seg_group[s] else group_hi[seg_group[s]]
        for k in range(seg_rows[s], hi):
            if k > seg_rows[s]:
                out[at] = 44     # ,
                at += 1
            r = order[k]
            new_start[r] = at
            size = span[1, r] - span[0, r]
            out[at:at + size] = buf[span[0, r]:span[1, r]]
            at += size
        out[at:at + tail.shape[0]] = tail
        at += tail.shape[0]
    return out, seg_group[:ns].copy(), seg_bounds, seg_rows[:ns].copy(), new_start


def write_segments(buf: np.ndarray, span: np.ndarray, order: np.ndarray, group_lo: np.ndarray, group_hi: np.ndarray,
                   group_head: np.ndarray, heads: list[bytes], limit: int):
    """Every group's segments in one buffer: (out, seg_group, seg_bounds, seg_rows, new_start).

    Group g holds rows order[group_lo[g]:group_hi[g]] (parcel objects buf[span[0, r]:span[1, r]]) under head
    heads[group_head[g]]. Segment s is out[seg_bounds[s]:seg_bounds[s + 1]], of group seg_group[s], its
    rows starting at order[seg_rows[s]]; new_start[r] is where row r's object starts in out (-1: in no group).
    """
    head_bounds = np.zeros(len(heads) + 1, dtype=np.int64)
    np.cumsum([len(h) for h in heads], out=head_bounds[1:])
    heads_buf = np.frombuffer(b"".join(heads), dtype=np.uint8) if heads else np.zeros(0, np.uint8)
    return _write_segments(buf, span, order, group_lo, group_hi, group_head, heads_buf, head_bounds, limit,
                           _JOIN, _TAIL)


def write_segments_reference(buf: np.ndarray, span: np.ndarray, order, group_lo, group_hi, group_head,
                             heads: list[bytes], limit: int):
    """`write_segments` in plain Python, for the tests."""
    data = buf.tobytes()
    docs, seg_group, seg_rows, new_start = [], [], [], {}
    at = 0
    for g in range(len(group_lo)):
        head = heads[group_head[g]]
        chunks: list[list[int]] = [[]]
        size = len(head) + len(JOIN) + len(TAIL)
        starts = [group_lo[g]]
        for k in range(group_lo[g], group_hi[g]):
            r = order[k]
            add = span[1][r] - span[0][r] + (1 if chunks[-1] else 0)
            if chunks[-1] and size + add > limit:
                chunks.append([])
                starts.append(k)
                size = len(head) + len(JOIN) + len(TAIL)
                add = span[1][r] - span[0][r]
            size += add
            chunks[-1].append(r)
        for rows, first in zip(chunks, starts):
            doc = head + JOIN
            for j, r in enumerate(rows):
                doc += b"," if j else b""
                new_start[r] = at + len(doc)
                doc += data[span[0][r]:span[1][r]]
            doc += TAIL
            docs.append(doc)
            seg_group.append(g)
            seg_rows.append(first)
            at += len(doc)
    return docs, seg_group, seg_rows, new_start
