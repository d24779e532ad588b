"""Stable 64-bit hashes of parcel ids and seeded uniform draws, for reproducible random selection.

The hash depends only on the parcel id's UTF-8 bytes, never on process state, so every worker
and every replay draws the same number for the same parcel and seed.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_MASK = (1 << 64) - 1


def pack_strings(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate strings into one uint8 buffer with int64 offsets (one encode for the batch)."""
    joined = "".join(values).encode("utf-8")
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    if len(joined) == int(lengths.sum()):
        # All ASCII (the usual case for ids): character lengths are byte lengths.
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return np.frombuffer(joined, dtype=np.uint8), offsets
    encoded = [v.encode("utf-8") for v in values]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return buf, offsets


@nb.njit(cache=True, nogil=True)
def fnv1a64_spans(buf, starts, lengths):
    """FNV-1a 64-bit hash of each string buf[starts[i]:starts[i]+lengths[i]] (length <= 0: the empty string).

    The spans may point anywhere in one buffer: into packed strings (hash_ids) or straight into message
    bytes (the fast decoder hashes parcel ids where they lie).
    """
    out = np.empty(starts.shape[0], dtype=np.uint64)
    for i in range(starts.shape[0]):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(starts[i], starts[i] + max(lengths[i], 0)):
            h = (h ^ np.uint64(buf[j])) * np.uint64(0x100000001B3)
        out[i] = h
    return out


def fnv1a64_reference(value: str) -> int:
    """Plain-Python FNV-1a 64 of one string (the oracle for fnv1a64_spans)."""
    h = 0xCBF29CE484222325
    for byte in value.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & _MASK
    return h


def hash_ids(values: list[str]) -> np.ndarray:
    """uint64 FNV-1a hash of every string."""
    buf, offsets = pack_strings(values)
    return fnv1a64_spans(buf, offsets[:-1], np.diff(offsets))


@nb.njit(nb.float64(nb.uint64, nb.uint64), cache=True, nogil=True)
def seeded_uniform(h, seed):
    """Uniform draw in [0, 1) from a parcel hash and a seed (splitmix64 finaliser)."""
    z = h ^ (seed * np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def seeded_uniform_reference(h: int, seed: int) -> float:
    """Plain-Python seeded_uniform (the oracle)."""
    z = (h ^ (seed * 0x9E3779B97F4A7C15)) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    z ^= z >> 31
    return (z >> 11) * (1.0 / 9007199254740992.0)
