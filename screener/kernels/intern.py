"""Exact string interning in Numba: byte spans in, dense int32 codes out, no Python per value.

An open-addressing table keyed by the FNV-1a hash of a string's UTF-8 bytes, verified byte by byte
against an arena that holds each distinct string once, so two strings with equal hashes still get
different codes (a crafted collision cannot make a watchlisted id borrow a clean one's code).
Code 0 is the empty or missing string. The Python side (screener/pipeline/batch.py: Vocabulary) grows
the arrays before a call so that the kernel never runs out of room.

A slot is one uint32: the top 5 bits of the string's hash (a tag, so 31 in 32 probes that do not match
are refused without reading the arena) over a 27-bit code, 0 being an empty slot (code 0 is never stored),
so a vocabulary holds at most MAX_CODES strings (the caller refuses more). The slot's position comes from
the hash's low bits, independent of the tag; the table keeps no full hash, and growing it hashes the
arena's strings again. 4 bytes a slot at most 3/4 full, where an int32 code and a 64-bit hash per slot
at most half full cost 24 bytes per string.
"""

from __future__ import annotations

import numba as nb
import numpy as np

FNV_PRIME = np.uint64(0x100000001B3)
CODE_BITS = 27
MAX_CODES = (1 << CODE_BITS) - 1
_CODE_MASK = np.uint32(MAX_CODES)
_TAG_SHIFT = np.uint64(64 - (32 - CODE_BITS))


@nb.njit(cache=True, inline="always")
def _slot(h, code):
    return np.uint32(((h >> _TAG_SHIFT) << np.uint64(CODE_BITS)) | np.uint64(code))


@nb.njit(cache=True, inline="always")
def _fnv(buf, start, length, basis):
    h = basis
    for t in range(length):
        h ^= np.uint64(buf[start + t])
        h *= FNV_PRIME
    return h


@nb.njit(cache=True)
def intern_spans(buf, starts, lengths, slots, arena, str_off, counts, basis):
    """Codes of the strings buf[starts[i]:starts[i]+lengths[i]] (length <= 0: code 0), adding new ones.

    `slots` (uint32, 0 empty, power-of-two size) is the table; `arena` holds the distinct strings'
    bytes, `str_off[c]:str_off[c+1]` being code c's; `counts` = [codes, arena bytes].
    `basis` is the table's random FNV offset basis: colliding strings cannot be prepared in advance to
    degrade the table's probing (hash flooding). Codes never depend on it.
    The caller guarantees room: table at most 3/4 full and arena/str_off large enough afterwards.
    """
    out = np.zeros(starts.shape[0], dtype=np.int32)
    mask = np.uint64(slots.shape[0] - 1)
    for i in range(starts.shape[0]):
        n = lengths[i]
        if n <= 0:
            continue
        s = starts[i]
        h = _fnv(buf, s, n, basis)
        tag = np.uint32(h >> _TAG_SHIFT)
        j = h & mask
        while True:
            slot = slots[j]
            if slot == 0:
                code = counts[0]
                counts[0] += 1
                a = counts[1]
                for t in range(n):
                    arena[a + t] = buf[s + t]
                counts[1] = a + n
                str_off[code + 1] = a + n
                slots[j] = _slot(h, code)
                break
            if slot >> np.uint32(CODE_BITS) == tag:
                code = np.int64(slot & _CODE_MASK)
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
def rehash(arena, str_off, codes, size, basis):
    """A table of `size` slots (a power of two) holding codes 1..codes-1, their strings hashed again."""
    slots = np.zeros(size, dtype=np.uint32)
    mask = np.uint64(size - 1)
    for code in range(1, codes):
        a = str_off[code]
        h = _fnv(arena, a, str_off[code + 1] - a, basis)
        k = h & mask
        while slots[k] != 0:
            k = (k + np.uint64(1)) & mask
        slots[k] = _slot(h, code)
    return slots
