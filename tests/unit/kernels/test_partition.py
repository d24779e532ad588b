"""The bulk partitioner agrees with aiokafka's (the Java client's) on any key."""

import numpy as np
from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.kernels.partition import murmur2_many, partitions_of


@settings(deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=50), st.integers(1, 64))
def test_partitions_match_aiokafkas_default_partitioner(keys, n):
    ours = partitions_of(keys, n).tolist()
    theirs = [DefaultPartitioner()(k, list(range(n)), list(range(n))) for k in keys]
    assert ours == theirs


@settings(deadline=None)
@given(st.binary(max_size=64))
def test_murmur2_matches_the_reference(key):
    buf = np.frombuffer(key, dtype=np.uint8)
    got = murmur2_many(buf, np.zeros(1, dtype=np.int64), np.array([len(key)], dtype=np.int64))
    assert int(got[0]) == murmur2(key)
