"""Bulk JSON assembly of `decisions` records in Numba: no Python object per parcel.

A decision without reasons (a green parcel no rule touched, the common case) is always the same
bytes around its parcel_id, `{"parcel_id":"<id>","lane":"green","score":0.0,"reasons":[]}`, so the
kernel writes it from a template and the id's JSON-escaped bytes; decisions with reasons arrive
already encoded (orjson) and are copied. Each record is a head (the envelope, ending in
`"decisions":[`), its entries joined by commas, and `]}`.
"""

from __future__ import annotations

import numba as nb
import numpy as np

PLAIN_HEAD = b'{"parcel_id":"'
PLAIN_TAIL = b'","lane":"green","score":0.0,"reasons":[]}'
_HEAD = np.frombuffer(PLAIN_HEAD, dtype=np.uint8).copy()
_TAIL = np.frombuffer(PLAIN_TAIL, dtype=np.uint8).copy()


def entry_sizes(pid_len: np.ndarray, entry_len: np.ndarray) -> np.ndarray:
    """Encoded size of each parcel's decision entry (template or given bytes)."""
    return np.where(entry_len >= 0, entry_len, len(PLAIN_HEAD) + pid_len + len(PLAIN_TAIL))


@nb.njit(cache=True)
def assemble(pid_buf, pid_start, pid_len, entry_buf, entry_start, entry_len, rows, group_bounds, heads,
             head_bounds, head_tpl, tail_tpl):
    """One record per group: heads[g] + entries of rows[group_bounds[g]:group_bounds[g+1]] + ']}'.

    Returns (bytes, offsets): record g is out[offsets[g]:offsets[g+1]].
    """
    n_groups = group_bounds.shape[0] - 1
    n_head, n_tail = head_tpl.shape[0], tail_tpl.shape[0]
    sizes = np.empty(n_groups, dtype=np.int64)
    for g in range(n_groups):
        total = head_bounds[g + 1] - head_bounds[g] + 2
        for k in range(group_bounds[g], group_bounds[g + 1]):
            r = rows[k]
            if entry_len[r] >= 0:
                total += entry_len[r]
            else:
                total += n_head + pid_len[r] + n_tail
            if k > group_bounds[g]:
                total += 1
        sizes[g] = total
    offsets = np.zeros(n_groups + 1, dtype=np.int64)
    for g in range(n_groups):
        offsets[g + 1] = offsets[g] + sizes[g]
    out = np.empty(offsets[n_groups], dtype=np.uint8)
    for g in range(n_groups):
        # Slice copies, not byte loops: Numba makes them block copies, three times faster here.
        w = offsets[g]
        size = head_bounds[g + 1] - head_bounds[g]
        out[w:w + size] = heads[head_bounds[g]:head_bounds[g + 1]]
        w += size
        for k in range(group_bounds[g], group_bounds[g + 1]):
            if k > group_bounds[g]:
                out[w] = 44   # ','
                w += 1
            r = rows[k]
            if entry_len[r] >= 0:
                a, size = entry_start[r], entry_len[r]
                out[w:w + size] = entry_buf[a:a + size]
                w += size
            else:
                out[w:w + n_head] = head_tpl
                w += n_head
                a, size = pid_start[r], pid_len[r]
                out[w:w + size] = pid_buf[a:a + size]
                w += size
                out[w:w + n_tail] = tail_tpl
                w += n_tail
        out[w] = 93       # ']'
        out[w + 1] = 125  # '}'
    return out, offsets


def assemble_records(pid_buf, pid_start, pid_len, entry_buf, entry_start, entry_len, rows, group_bounds,
                     heads: list[bytes]) -> list[bytes]:
    """The records as bytes objects (one per group)."""
    head_bounds = np.zeros(len(heads) + 1, dtype=np.int64)
    np.cumsum([len(h) for h in heads], out=head_bounds[1:])
    head_buf = np.frombuffer(b"".join(heads), dtype=np.uint8)
    out, offsets = assemble(pid_buf, pid_start, pid_len, entry_buf, entry_start, entry_len, rows, group_bounds,
                            head_buf, head_bounds, _HEAD, _TAIL)
    data = out.tobytes()
    bounds = offsets.tolist()
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]
