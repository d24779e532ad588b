import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.kernels.hashing import fnv1a64_reference, hash_ids, seeded_uniform, seeded_uniform_reference


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=30))
def test_kernel_hash_matches_reference(ids):
    got = hash_ids(ids)
    assert [int(h) for h in got] == [fnv1a64_reference(s) for s in ids]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**63 - 1))
def test_seeded_uniform_matches_reference_and_is_in_unit_interval(h, seed):
    u = seeded_uniform(np.uint64(h), np.uint64(seed))
    assert u == seeded_uniform_reference(h, seed)
    assert 0.0 <= u < 1.0


def test_seeded_uniform_selects_close_to_the_rate_and_depends_on_the_seed():
    hashes = hash_ids([f"P-{i}" for i in range(20000)])
    a = np.array([seeded_uniform(h, np.uint64(1)) for h in hashes])
    b = np.array([seeded_uniform(h, np.uint64(2)) for h in hashes])
    assert abs((a < 0.05).mean() - 0.05) < 0.01
    assert ((a < 0.05) != (b < 0.05)).any()
