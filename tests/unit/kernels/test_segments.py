"""write_segments (Numba) against its plain-Python reference, on any grouping, sizes and limit."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from screener.kernels.segments import write_segments, write_segments_reference


@st.composite
def layouts(draw):
    sizes = draw(st.lists(st.integers(1, 60), max_size=40))
    gaps = draw(st.lists(st.integers(0, 5), min_size=len(sizes), max_size=len(sizes)))
    data, span = bytearray(), [[], []]
    for size, gap in zip(sizes, gaps):        # objects with bytes between them that must not be copied
        data += b"-" * gap
        span[0].append(len(data))
        data += bytes(draw(st.binary(min_size=size, max_size=size)))
        span[1].append(len(data))
    n = len(sizes)
    order = draw(st.permutations(range(n))) if n else []
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    bounds = [0, *cuts, n]
    heads = draw(st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=4))
    group_head = [draw(st.integers(0, len(heads) - 1)) for _ in range(len(bounds) - 1)]
    limit = draw(st.integers(1, 400))
    return (np.frombuffer(bytes(data), np.uint8), np.array(span, np.int64).reshape(2, n),
            np.array(order, np.int64), np.array(bounds[:-1], np.int64), np.array(bounds[1:], np.int64),
            np.array(group_head, np.int64), heads, limit)


@given(layouts())
def test_the_kernel_writes_the_segments_its_reference_writes(layout):
    buf, span, order, lo, hi, head, heads, limit = layout
    out, seg_group, seg_bounds, seg_rows, new_start = write_segments(buf, span, order, lo, hi, head, heads, limit)
    docs, ref_group, ref_rows, ref_start = write_segments_reference(buf, span, order, lo, hi, head, heads, limit)
    assert out.tobytes() == b"".join(docs)
    assert np.diff(seg_bounds).tolist() == [len(d) for d in docs]
    assert seg_group.tolist() == ref_group and seg_rows.tolist() == ref_rows
    assert {r: s for r, s in enumerate(new_start.tolist()) if s >= 0} == ref_start
    # Every group is at least one segment; a segment over the limit holds one parcel.
    assert sorted(set(ref_group)) == list(range(len(lo)))
    for k, doc in enumerate(docs):
        same = k + 1 < len(docs) and ref_group[k + 1] == ref_group[k]
        parcels = (ref_rows[k + 1] if same else hi[ref_group[k]]) - ref_rows[k]
        assert len(doc) <= limit or parcels <= 1


def test_a_segment_may_fill_the_limit_exactly_and_one_byte_less_splits_it():
    buf = np.frombuffer(b"A" * 10 + b"B" * 10, np.uint8)
    span = np.array([[0, 10], [10, 20]], np.int64)
    args = (buf, span, np.array([0, 1]), np.array([0]), np.array([2]), np.array([0]), [b"H"])
    exact = len(b"H") + len(b',"parcels":[') + 10 + 1 + 10 + len(b"]}")
    assert write_segments(*args, exact)[0].tobytes() == b'H,"parcels":[' + b"A" * 10 + b"," + b"B" * 10 + b"]}"
    assert len(write_segments(*args, exact - 1)[1]) == 2
