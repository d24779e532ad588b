"""A consignee store as records of a compacted Kafka changelog topic: key = the entity's key (UTF-8),
value = its state in a fixed little-endian layout; b"" or None is a tombstone (the entity was forgotten).

Value layout, version 1 (HEADER = 43 bytes, then EVENT = 28 bytes per retained window event):

    u8 version | i64 first_seen_ms | i64 last_seen_ms | i64 last_seq | f64 year_value_usd | i32 parcels |
    i16 year | u32 events | events x (i64 event_ms | f64 value_usd | u64 pid_hash | i32 ordinal)

Events are written newest-added first, the store's list order, so a restored store sums windows in the same
order and gives bit-identical columns. The watermark is not a record: it is the max last_seen_ms of the
entities (every applied parcel raised its entity's last_seen_ms to at least its time, and the entity holding
the max is never past its TTL), so restoring the latest record of every key restores it exactly.
`late_events` is a counter since the store was made and is not restored.

Worker usage: after each `apply`, `encode_entities(store, store.changed_slots)`; after `expire()`, a tombstone
per returned key; on assignment of the partition, `restore(store, keys, values)` from the topic.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from screener.state.consignee import _EVENTS, _FREE, _HWM, _LIVE, _W, ConsigneeState, free_events

VERSION = 1
HEADER = 43
EVENT = 28


@nb.njit(cache=True, inline="always")
def _put(buf, at, x, nbytes):
    # x is a uint64 (signed values and float bits are passed as their uint64 bit patterns).
    for b in range(nbytes):
        buf[at + b] = np.uint8((x >> np.uint64(8 * b)) & np.uint64(0xFF))


@nb.njit(cache=True, inline="always")
def _get(buf, at, nbytes):
    x = np.uint64(0)
    for b in range(nbytes):
        x |= np.uint64(buf[at + b]) << np.uint64(8 * b)
    return x


@nb.njit(cache=True, inline="always")
def _signed(x, bits):
    # Sign-extend the low `bits` bits of a uint64.
    if bits == 64:
        return np.int64(x)
    v = np.int64(x)
    if v >= (np.int64(1) << (bits - 1)):
        v -= np.int64(1) << bits
    return v


@nb.njit(cache=True)
def record_sizes(slots, head, last_seen, parcels, ev_ms, ev_next, keep_after, dead_before):
    """Bytes of each slot's record: 0 (tombstone) for an entity without state or past its TTL."""
    sizes = np.zeros(slots.shape[0], dtype=np.int64)
    for i in range(slots.shape[0]):
        k = slots[i]
        if k <= 0 or parcels[k] == 0 or last_seen[k] <= dead_before:
            continue
        n = 0
        e = head[k]
        while e >= 0:
            if ev_ms[e] > keep_after:
                n += 1
            e = ev_next[e]
        sizes[i] = HEADER + EVENT * n
    return sizes


@nb.njit(cache=True)
def encode_kernel(slots, offsets, buf, head, first_seen, last_seen, last_seq, year, year_bits, parcels,
                  ev_ms, ev_value_bits, ev_pid, ev_ord, ev_next, keep_after):
    """Write the records of `slots` at buf[offsets[i]:offsets[i + 1]] (empty ranges are tombstones)."""
    for i in range(slots.shape[0]):
        at = offsets[i]
        size = offsets[i + 1] - at
        if size == 0:
            continue
        k = slots[i]
        buf[at] = VERSION
        _put(buf, at + 1, np.uint64(first_seen[k]), 8)
        _put(buf, at + 9, np.uint64(last_seen[k]), 8)
        _put(buf, at + 17, np.uint64(last_seq[k]), 8)
        _put(buf, at + 25, year_bits[k], 8)
        _put(buf, at + 33, np.uint64(parcels[k]), 4)
        _put(buf, at + 37, np.uint64(year[k]), 2)
        _put(buf, at + 39, np.uint64((size - HEADER) // EVENT), 4)
        p = at + HEADER
        e = head[k]
        while e >= 0:
            if ev_ms[e] > keep_after:
                _put(buf, p, np.uint64(ev_ms[e]), 8)
                _put(buf, p + 8, ev_value_bits[e], 8)
                _put(buf, p + 16, ev_pid[e], 8)
                _put(buf, p + 24, np.uint64(ev_ord[e]), 4)
                p += EVENT
            e = ev_next[e]


@nb.njit(cache=True)
def count_events(buf, offsets):
    """Window events of every record (checks version and length; raises ValueError on a malformed record)."""
    total = 0
    for i in range(offsets.shape[0] - 1):
        at = offsets[i]
        size = offsets[i + 1] - at
        if size < HEADER or buf[at] != VERSION:
            raise ValueError("consignee changelog: unknown version or short record")
        n = np.int64(_get(buf, at + 39, 4))
        if _signed(_get(buf, at + 33, 4), 32) <= 0:
            raise ValueError("consignee changelog: an entity record without parcels")
        if size != HEADER + EVENT * n:
            raise ValueError("consignee changelog: record length does not match its event count")
        total += n
    return total


@nb.njit(cache=True)
def restore_kernel(slots, buf, offsets, head, first_seen, last_seen, last_seq, year, year_bits, parcels,
                   ev_ms, ev_value_bits, ev_pid, ev_ord, ev_next, meta):
    """Replace the state of slots[i] by record i (events appended in record order); raises the watermark."""
    for i in range(slots.shape[0]):
        k = slots[i]
        at = offsets[i]
        if parcels[k] > 0:
            free_events(k, head, ev_next, meta)
            meta[_LIVE] -= 1
        head[k] = -1
        first_seen[k] = np.int64(_get(buf, at + 1, 8))
        last_seen[k] = np.int64(_get(buf, at + 9, 8))
        last_seq[k] = np.int64(_get(buf, at + 17, 8))
        year_bits[k] = _get(buf, at + 25, 8)
        parcels[k] = _signed(_get(buf, at + 33, 4), 32)
        year[k] = _signed(_get(buf, at + 37, 2), 16)
        n = np.int64(_get(buf, at + 39, 4))
        meta[_LIVE] += 1
        meta[_W] = max(meta[_W], last_seen[k])
        prev = -1
        p = at + HEADER
        for _ in range(n):
            e = meta[_FREE]
            if e >= 0:
                meta[_FREE] = ev_next[e]
            else:
                e = meta[_HWM]
                meta[_HWM] += 1
            ev_ms[e] = np.int64(_get(buf, p, 8))
            ev_value_bits[e] = _get(buf, p + 8, 8)
            ev_pid[e] = _get(buf, p + 16, 8)
            ev_ord[e] = _signed(_get(buf, p + 24, 4), 32)
            ev_next[e] = -1
            if prev < 0:
                head[k] = e
            else:
                ev_next[prev] = e
            prev = e
            meta[_EVENTS] += 1
            p += EVENT


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def encode_entities(store: ConsigneeState, slots) -> tuple[list[bytes], list[bytes]]:
    """Changelog records (keys, values) of these slots; b"" (tombstone) for a slot without live state."""
    slots = np.ascontiguousarray(slots, dtype=np.int32)
    w = int(store.meta[_W])
    keep_after = w - store.window_ms - store.lateness_ms
    sizes = record_sizes(slots, store.head, store.last_seen, store.parcels, store.ev_ms, store.ev_next, keep_after,
                         w - store.ttl_ms)
    offsets = _offsets(sizes)
    buf = np.zeros(int(offsets[-1]), dtype=np.uint8)
    encode_kernel(slots, offsets, buf, store.head, store.first_seen, store.last_seen, store.last_seq, store.year,
                  store.year_value.view(np.uint64), store.parcels, store.ev_ms, store.ev_value.view(np.uint64),
                  store.ev_pid, store.ev_ord, store.ev_next, keep_after)
    data = buf.tobytes()
    bounds = offsets.tolist()
    return store.keys_of(slots), [data[a:b] for a, b in zip(bounds, bounds[1:])]


def restore(store: ConsigneeState, keys, values) -> int:
    """Apply changelog records in order (the latest record of a key wins; b"" or None deletes the entity);
    returns how many entities hold restored state."""
    latest: dict[bytes, bytes] = {}
    for key, value in zip(keys, values):
        key = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        if key:   # the missing key never holds state
            latest[key] = value or b""
    dead = [k for k, v in latest.items() if not v]
    live = [k for k, v in latest.items() if v]
    if dead:
        store.forget(store.slots_of_bytes(dead))
    if live:
        slots = store.slots_of_bytes(live)
        vals = [latest[k] for k in live]
        offsets = _offsets(np.fromiter(map(len, vals), dtype=np.int64, count=len(vals)))
        buf = np.frombuffer(b"".join(vals), dtype=np.uint8)
        store.reserve_events(int(count_events(buf, offsets)))
        restore_kernel(slots, buf, offsets, store.head, store.first_seen, store.last_seen, store.last_seq, store.year,
                       store.year_value.view(np.uint64), store.parcels, store.ev_ms, store.ev_value.view(np.uint64),
                       store.ev_pid, store.ev_ord, store.ev_next, store.meta)
    store.maybe_compact()
    return len(live)
