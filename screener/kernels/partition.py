"""Kafka's default partitioner (murmur2 of the key, as the Java client and aiokafka do) over many keys at once.

The worker produces thousands of keyed records per batch; aiokafka hashes each key in pure Python inside
`send()`. Computing all partitions in one Numba call lets the worker fill record batches directly, and
keeps records with the same key on the same partition as any other Kafka client would put them.
`aiokafka.partitioner.murmur2` is the reference (tests/unit/kernels/test_partition.py).
"""

from __future__ import annotations

import numba as nb
import numpy as np

_MASK = 0xFFFFFFFF
_M = 0x5BD1E995


@nb.njit(cache=True)
def murmur2_many(buf, starts, lengths):
    """Java-compatible murmur2 (seed 0x9747B28C) of each key buf[starts[i]:starts[i]+lengths[i]]."""
    # Numba widens 32-bit arithmetic to 64 bits, so every step masks back to 32 like the Java code wraps.
    out = np.empty(starts.shape[0], dtype=np.uint32)
    for i in range(starts.shape[0]):
        s, n = starts[i], lengths[i]
        h = (0x9747B28C ^ n) & _MASK
        for j in range(n // 4):
            a = s + 4 * j
            k = np.int64(buf[a]) | (np.int64(buf[a + 1]) << 8) | (np.int64(buf[a + 2]) << 16) | \
                (np.int64(buf[a + 3]) << 24)
            k = (k * _M) & _MASK
            k ^= k >> 24
            k = (k * _M) & _MASK
            h = (h * _M) & _MASK
            h ^= k
        tail = s + (n & ~3)
        extra = n % 4
        if extra >= 3:
            h ^= np.int64(buf[tail + 2]) << 16
        if extra >= 2:
            h ^= np.int64(buf[tail + 1]) << 8
        if extra >= 1:
            h ^= np.int64(buf[tail])
            h = (h * _M) & _MASK
        h ^= h >> 13
        h = (h * _M) & _MASK
        h ^= h >> 15
        out[i] = h
    return out


def partitions_of(keys: list[bytes], partitions: int) -> np.ndarray:
    """Partition (0..partitions-1) of each key by Kafka's default partitioner."""
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    starts = np.zeros(len(keys), dtype=np.int64)
    if len(keys) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    return partitions_of_spans(np.frombuffer(b"".join(keys), dtype=np.uint8), starts, lengths, partitions)


def partitions_of_spans(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, partitions: int) -> np.ndarray:
    """Partition of each key given as a byte span of `buf`, by Kafka's default partitioner."""
    return (murmur2_many(buf, starts, lengths).astype(np.int64) & 0x7FFFFFFF) % partitions
