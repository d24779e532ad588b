"""Exact string interning in Numba: byte spans in, dense int32 codes out, no Python per value.

An open-addressing table keyed by the FNV-1a hash of a string's UTF-8 bytes, verified byte by byte
against an arena that holds each distinct string once, so two strings with equal hashes still get
different codes (a crafted collision cannot make a watchlisted id borrow a clean one's code).
Code 0 is the empty or missing string. The Python side (screener/pipeline/batch.py: Vocabulary) grows
the arrays before a call so that the kernel never runs out of room.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_EMPTY = np.int32(-1)
FNV_PRIME = np.uint64(0x100000001B3)


@nb.njit(cache=True, inline="always")
def _fnv(buf, start, length, basis):
    h = basis
    for t in range(length):
        h ^= np.uint64(buf[start + t])
        h *= FNV_PRIME
    return h


@nb.njit(cache=True)
def intern_spans(buf, starts, lengths, slots, slot_hash, arena, str_off, counts, basis):
    """Codes of the strings buf[starts[i]:starts[i]+lengths[i]] (length <= 0: code 0), adding new ones.

    `slots` (int32, -1 empty, power-of-two size) and `slot_hash` are the table; `arena` holds the
    distinct strings' bytes, `str_off[c]:str_off[c+1]` being code c's; `counts` = [codes, arena bytes].
    `basis` is the table's random FNV offset basis: colliding strings cannot be prepared in advance to
    degrade the table's probing (hash flooding). Codes never depend on it.
    The caller guarantees room: table at most half full and arena/str_off large enough afterwards.
    """
    out = np.zeros(starts.shape[0], dtype=np.int32)
    mask = np.uint64(slots.shape[0] - 1)
    for i in range(starts.shape[0]):
        n = lengths[i]
        if n <= 0:
            continue
        s = starts[i]
        h = _fnv(buf, s, n, basis)
        j = h & mask
        while True:
            code = slots[j]
            if code == _EMPTY:
                code = np.int32(counts[0])
                counts[0] += 1
                a = counts[1]
                for t in range(n):
                    arena[a + t] = buf[s + t]
                counts[1] = a + n
                str_off[code + 1] = a + n
                slots[j] = code
                slot_hash[j] = h
                break
            if slot_hash[j] == h:
                a = str_off[code]
                if str_off[code + 1] - a == n:
                    same = True
                    for t in range(n):
                        if arena[a + t] != buf[s + t]:
                            same = False
                            break
                    if same:
                        break
            j = (j + np.uint64(1)) & mask
        out[i] = code
    return out


@nb.njit(cache=True)
def rehash(slot_hash_old, slots_old, size):
    """A table of `size` slots holding the same codes (size a power of two)."""
    slots = np.full(size, _EMPTY, dtype=np.int32)
    slot_hash = np.zeros(size, dtype=np.uint64)
    mask = np.uint64(size - 1)
    for j in range(slots_old.shape[0]):
        code = slots_old[j]
        if code == _EMPTY:
            continue
        h = slot_hash_old[j]
        k = h & mask
        while slots[k] != _EMPTY:
            k = (k + np.uint64(1)) & mask
        slots[k] = code
        slot_hash[k] = h
    return slots, slot_hash
