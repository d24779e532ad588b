"""Arrays grown by doubling keep their contents and zero their new tail."""

import numpy as np

from screener.pipeline.batch import grown


def test_grown_doubles_to_hold_the_need_keeps_the_contents_and_zeros_the_tail():
    a = np.arange(1, 6, dtype=np.int64)
    b = grown(a, 11)
    assert b.shape == (20,) and b.dtype == a.dtype
    assert b[:5].tolist() == [1, 2, 3, 4, 5] and not b[5:].any()
    assert grown(np.zeros(0, np.int32), 3).shape == (4,)
    assert grown(a, 5).shape == (5,)
