"""Consignee state for stateful rules (R2 split shipments, R3 yearly quota, R12 new entity), in Numba.

One `ConsigneeState` holds the consignees of ONE state partition (a worker keeps one store per partition it
owns). Entities are keyed by the string the caller passes (normalised consignee ids), interned to dense slots
by a `Vocabulary` (screener/pipeline/batch.py); state lives in numpy arrays indexed by slot, window events
in one arena of linked lists with a free list: no Python object per entity or event.
`screener/state/reference.py` is the same semantics written plainly; property tests hold the two equal.

Semantics. Parcels are processed strictly in array order in one sequential kernel, so no column depends on
how parcels were batched, nor on when `expire()` ran. A parcel without a key ("" or None) is ignored
entirely: it changes nothing and all its columns are NaN. For every other parcel i (key k, time t):

- Watermark W = max event time of the parcels applied so far (store-wide), taken with parcel i included
  (W = max(W, t) before anything else; a replay never moves it). Everything below reads W after that step.
- Retention: a window event e is *retained* while e.event_ms > W - window_ms - lateness_ms; no parcel that
  is not too late could count it any more. Events that are not retained are ignored by every read and
  dropped physically when their entity is touched or by `expire()` (timing never matters).
- TTL: an entity is *alive* while last_seen_ms > W - ttl_ms. A dead entity is forgotten: touched, it
  starts afresh (a forgotten consignee is new again); `expire()` removes dead ones physically.
  The constructor requires ttl_ms > window_ms + lateness_ms, so an entity with retained events is alive.
- Replay (idempotence): each entity keeps last_seq, the largest seq applied to it. A parcel with
  seq <= last_seq of its alive entity was applied already (a replay after a crash): state is not changed,
  its columns are computed from the current state. `seq` must therefore grow strictly over the parcels of
  a partition, e.g. (message offset << 20) | parcel index, not the bare offset of a multi-parcel message.
- Applying a parcel that is not a replay: last_seq = seq, first_seen_ms = min, last_seen_ms = max.
  (Window events beyond the bound below are dropped, oldest-added first, before a new one joins.)
  It is *too late* when t < W - lateness_ms (store counter `late_events` += 1).
  It is a *duplicate* when a retained event of the entity has the same pid_hash (the same parcel sent
  again); a duplicate changes no aggregate: not the window, not the year total, not the parcel count.
  Otherwise the entity's parcel count grows by one (the parcel's ordinal is the count before it), and,
  unless too late, the event (t, value, pid_hash, ordinal) joins the window and the year total:
  year Y = UTC calendar year of t; Y > entity year: year = Y and total = 0, then Y == year: total += value
  (an event of a past year adds nothing). A NaN or infinite value counts as 0.
- Columns (float64, from the state after applying the parcel):
  consignee_24h_count / consignee_24h_value_usd: count and sum of retained events with
  t - window_ms < e.event_ms <= t (parcel i itself included when it was added), summed newest-added first;
  consignee_year_value_usd: the year total if the entity's year is Y, else the parcel's own value;
  consignee_parcels_before: the ordinal stored with the retained event that has the parcel's pid_hash
  (the parcel's own, or the original's for a duplicate), else parcel count - 1; so a replay gives the
  value of the first time while its event is retained, and also when nothing else arrived in between;
  consignee_days_known: (t - first_seen_ms) / 86,400,000;
  consignee_late: 1.0 when t < W - lateness_ms (a replay is judged against the current watermark), else 0.0.

Memory: per entity 42 bytes of arrays (head int32, first/last seen and last_seq int64, year int16,
year total float64, parcel count int32) plus the Vocabulary's entry (a 4-byte table slot at most 3/4 full,
an 8-byte offset and the key's bytes: 25-30 bytes for 11-byte keys); per retained window event 32 bytes
(time, value, pid hash, ordinal, next). benchmarks/state_memory.py measures it: 10M consignees with one
event each, 100 bytes per entity in use, 102 by RSS growth (the heap outgrown arrays held is given back).
Each parcel walks its entity's window list (dedup and sums), so a parcel costs O(the entity's retained
events). Bound: an entity keeps at most `max_events` (MAX_WINDOW_EVENTS, 1,024) retained events. Adding one
more first drops the oldest-added (store counter `bounded_events`), so one consignee flooded with parcels
costs each of its parcels at most that walk, and its changelog record stays small. For such an entity the
24h count and value cover only its newest `max_events` events: they are lower bounds, and the count
stays at max_events while the flood goes on. A duplicate of a dropped event is no longer recognised.
`expire()` compacts (a fresh Vocabulary and arrays of live entities only) when over half the slots are dead.
A slot is its key's code in `vocab`, so slots from `slots_of` stay valid while `vocab` is the same object
(a compaction, in `expire()` or `restore`, replaces it and renumbers them).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from screener.pipeline.batch import Vocabulary, grown, release_freed_heap

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
COLUMNS = (
    "consignee_24h_count",
    "consignee_24h_value_usd",
    "consignee_year_value_usd",
    "consignee_parcels_before",
    "consignee_days_known",
    "consignee_late",
)
# The watermark before anything was applied: far in the past, yet W - window - lateness - ttl cannot overflow.
NO_TIME = -(1 << 62)
# Store-wide counters in `meta` (int64), one array so the kernels can update them in place.
_W, _LATE, _HWM, _FREE, _LIVE, _EVENTS, _BOUNDED = 0, 1, 2, 3, 4, 5, 6
# Window events kept per entity at most: a parcel walks its entity's list, so this bounds its cost (and the
# size of the entity's changelog record) whatever one consignee receives.
MAX_WINDOW_EVENTS = 1024
_INITIAL = 1024


@nb.njit(cache=True, inline="always")
def year_of(ms):
    """UTC calendar year of a time in ms since the epoch (Hinnant's civil_from_days, floor divisions)."""
    z = ms // 86400000 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    return yoe + era * 400 + (1 if mp >= 10 else 0)


@nb.njit(cache=True)
def free_events(k, head, ev_next, meta):
    """Return entity k's events to the free list (the entity keeps no window)."""
    e = head[k]
    while e >= 0:
        nxt = ev_next[e]
        ev_next[e] = meta[_FREE]
        meta[_FREE] = e
        meta[_EVENTS] -= 1
        e = nxt
    head[k] = -1


@nb.njit(cache=True)
def find_retained(k, pid, keep_after, head, ev_ms, ev_pid, ev_next, meta):
    """(entity k's retained event with this pid_hash or -1, its retained events), dropping the others on the way."""
    match = -1
    retained = 0
    prev = -1
    e = head[k]
    while e >= 0:
        nxt = ev_next[e]
        if ev_ms[e] <= keep_after:
            # Unlinked here rather than by a sweep: the entity's list is being walked anyway.
            if prev < 0:
                head[k] = nxt
            else:
                ev_next[prev] = nxt
            ev_next[e] = meta[_FREE]
            meta[_FREE] = e
            meta[_EVENTS] -= 1
        else:
            if ev_pid[e] == pid:
                match = e
            retained += 1
            prev = e
        e = nxt
    return match, retained


@nb.njit(cache=True)
def drop_oldest(k, keep, head, ev_next, meta):
    """Free entity k's events after its `keep` newest-added ones (the bound on a window's events)."""
    if keep <= 0:
        rest = head[k]
        head[k] = -1
    else:
        e = head[k]
        for _ in range(keep - 1):
            e = ev_next[e]
        rest = ev_next[e]
        ev_next[e] = -1
    while rest >= 0:
        nxt = ev_next[rest]
        ev_next[rest] = meta[_FREE]
        meta[_FREE] = rest
        meta[_EVENTS] -= 1
        meta[_BOUNDED] += 1
        rest = nxt


@nb.njit(cache=True)
def apply_kernel(slots, seq, event_ms, value_usd, pid_hash,
                 head, first_seen, last_seen, last_seq, year, year_value, parcels,
                 ev_ms, ev_value, ev_pid, ev_ord, ev_next, meta,
                 window_ms, lateness_ms, ttl_ms, max_events, out, changed):
    """Apply parcels in order and write their six columns to out[6, n]; returns how many entries of
    `changed` (slots changed, repeats allowed) were written. The caller guarantees room for n new events."""
    n_changed = 0
    for i in range(slots.shape[0]):
        k = slots[i]
        if k < 0:
            for c in range(6):
                out[c, i] = np.nan
            continue
        t = event_ms[i]
        pid = pid_hash[i]
        v = value_usd[i]
        if not np.isfinite(v):
            v = 0.0
        w = max(meta[_W], t)
        meta[_W] = w
        keep_after = w - window_ms - lateness_ms
        late = t < w - lateness_ms
        alive = parcels[k] > 0 and last_seen[k] > w - ttl_ms
        if parcels[k] > 0 and not alive:
            free_events(k, head, ev_next, meta)
            parcels[k] = 0
            meta[_LIVE] -= 1
        if parcels[k] == 0:
            head[k] = -1    # head is meaningful only while the entity holds state (grown arrays are zeros)
        replay = alive and seq[i] <= last_seq[k]
        match, retained = find_retained(k, pid, keep_after, head, ev_ms, ev_pid, ev_next, meta)
        if not replay:
            if parcels[k] == 0:
                first_seen[k] = t
                last_seen[k] = t
                year[k] = 0
                year_value[k] = 0.0
                meta[_LIVE] += 1
            last_seq[k] = seq[i]
            first_seen[k] = min(first_seen[k], t)
            last_seen[k] = max(last_seen[k], t)
            if late:
                meta[_LATE] += 1
            if match < 0:
                ordinal = parcels[k]
                parcels[k] += 1
                if not late:
                    if retained >= max_events:
                        drop_oldest(k, max_events - 1, head, ev_next, meta)
                    e = meta[_FREE]
                    if e >= 0:
                        meta[_FREE] = ev_next[e]
                    else:
                        e = meta[_HWM]
                        meta[_HWM] += 1
                    ev_ms[e] = t
                    ev_value[e] = v
                    ev_pid[e] = pid
                    ev_ord[e] = ordinal
                    ev_next[e] = head[k]
                    head[k] = e
                    meta[_EVENTS] += 1
                    match = e
                    y = year_of(t)
                    if y > year[k]:
                        year[k] = y
                        year_value[k] = 0.0
                    if y == year[k]:
                        year_value[k] += v
            changed[n_changed] = k
            n_changed += 1
        lo = max(t - window_ms, keep_after)
        count = 0
        total = 0.0
        e = head[k]
        while e >= 0:
            m = ev_ms[e]
            if lo < m <= t:
                count += 1
                total += ev_value[e]
            e = ev_next[e]
        out[0, i] = count
        out[1, i] = total
        out[2, i] = year_value[k] if year[k] == year_of(t) else v
        out[3, i] = ev_ord[match] if match >= 0 else parcels[k] - 1
        out[4, i] = (t - first_seen[k]) / 86400000.0
        out[5, i] = 1.0 if late else 0.0
    return n_changed


@nb.njit(cache=True)
def expire_kernel(n_slots, head, last_seen, parcels, ev_ms, ev_pid, ev_next, meta, window_ms, lateness_ms, ttl_ms,
                  forgotten):
    """Forget dead entities (slots written to `forgotten`, count returned) and drop events no longer retained."""
    w = meta[_W]
    keep_after = w - window_ms - lateness_ms
    c = 0
    for k in range(1, n_slots):
        if parcels[k] == 0:
            continue
        if last_seen[k] <= w - ttl_ms:
            free_events(k, head, ev_next, meta)
            parcels[k] = 0
            meta[_LIVE] -= 1
            forgotten[c] = k
            c += 1
        elif head[k] >= 0:
            find_retained(k, np.uint64(0), keep_after, head, ev_ms, ev_pid, ev_next, meta)
    return c


@nb.njit(cache=True)
def compact_events(live, head, ev_ms, ev_value, ev_pid, ev_ord, ev_next, new_head, n_ms, n_value, n_pid, n_ord, n_next):
    """Copy the live entities' lists (live[j] becomes slot j + 1) into fresh arrays, order kept; returns events."""
    c = 0
    for j in range(live.shape[0]):
        prev = -1
        new_head[j + 1] = -1
        e = head[live[j]]
        while e >= 0:
            n_ms[c] = ev_ms[e]
            n_value[c] = ev_value[e]
            n_pid[c] = ev_pid[e]
            n_ord[c] = ev_ord[e]
            n_next[c] = -1
            if prev < 0:
                new_head[j + 1] = c
            else:
                n_next[prev] = c
            prev = c
            c += 1
            e = ev_next[e]
    return c


def _pow2(need: int) -> int:
    size = _INITIAL
    while size < need:
        size *= 2
    return size


class ConsigneeState:
    """State of the consignees of one state partition; see the module docstring for the semantics."""

    ENTITY_ARRAYS = ("head", "first_seen", "last_seen", "last_seq", "year", "year_value", "parcels")
    EVENT_ARRAYS = ("ev_ms", "ev_value", "ev_pid", "ev_ord", "ev_next")

    __slots__ = ("window_ms", "lateness_ms", "ttl_ms", "max_events", "vocab", "meta", "_changed", *ENTITY_ARRAYS, *EVENT_ARRAYS)

    def __init__(self, window_ms: int = DAY_MS, lateness_ms: int = 6 * HOUR_MS, ttl_ms: int = 180 * DAY_MS,
                 max_events: int = MAX_WINDOW_EVENTS) -> None:
        if window_ms <= 0 or lateness_ms < 0 or ttl_ms <= window_ms + lateness_ms or max_events < 1:
            raise ValueError("need window_ms > 0, lateness_ms >= 0, ttl_ms > window_ms + lateness_ms "
                             "and max_events >= 1")
        self.window_ms, self.lateness_ms, self.ttl_ms = int(window_ms), int(lateness_ms), int(ttl_ms)
        self.max_events = int(max_events)
        self.vocab = Vocabulary("consignee_state")
        self.meta = np.zeros(8, dtype=np.int64)
        self.meta[_W] = NO_TIME
        self.meta[_FREE] = -1
        self._changed = np.zeros(0, dtype=np.int32)
        self._new_arrays(_INITIAL, _INITIAL)

    def _new_arrays(self, entities: int, events: int) -> None:
        self.head = np.zeros(entities, dtype=np.int32)
        self.first_seen = np.zeros(entities, dtype=np.int64)
        self.last_seen = np.zeros(entities, dtype=np.int64)
        self.last_seq = np.zeros(entities, dtype=np.int64)
        self.year = np.zeros(entities, dtype=np.int16)
        self.year_value = np.zeros(entities, dtype=np.float64)
        self.parcels = np.zeros(entities, dtype=np.int32)
        self.ev_ms = np.zeros(events, dtype=np.int64)
        self.ev_value = np.zeros(events, dtype=np.float64)
        self.ev_pid = np.zeros(events, dtype=np.uint64)
        self.ev_ord = np.zeros(events, dtype=np.int32)
        self.ev_next = np.zeros(events, dtype=np.int32)

    # -- sizes and counters -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.meta[_LIVE])

    @property
    def live_entities(self) -> int:
        """Entities holding state (some may be past their TTL until touched or `expire()`)."""
        return int(self.meta[_LIVE])

    @property
    def live_events(self) -> int:
        """Window events held in the arena."""
        return int(self.meta[_EVENTS])

    @property
    def n_slots(self) -> int:
        """Slots in use by the Vocabulary, live or dead (slot 0 is the missing key)."""
        return len(self.vocab)

    @property
    def watermark(self) -> int | None:
        """Max event time applied so far (ms), None before the first parcel."""
        w = int(self.meta[_W])
        return None if w == NO_TIME else w

    @property
    def late_events(self) -> int:
        """Parcels applied too late for the window and year total since this store was made (not restored)."""
        return int(self.meta[_LATE])

    @property
    def bounded_events(self) -> int:
        """Window events dropped since this store was made because their entity held max_events newer ones."""
        return int(self.meta[_BOUNDED])

    def nbytes(self) -> int:
        """Bytes allocated by the store's arrays and its Vocabulary."""
        arrays = (*self.ENTITY_ARRAYS, *self.EVENT_ARRAYS)
        return sum(getattr(self, a).nbytes for a in arrays) + self.meta.nbytes + self.vocab.nbytes()

    def nbytes_used(self) -> int:
        """Bytes of the arrays up to what is in use (slots, arena high-water mark, the Vocabulary's table whole)."""
        slots, events = len(self.vocab), int(self.meta[_HWM])
        v = self.vocab
        used = v.slots.nbytes + (slots + 1) * v.str_off.itemsize + int(v.counts[1])
        used += sum(getattr(self, a).itemsize for a in self.ENTITY_ARRAYS) * slots
        return used + sum(getattr(self, a).itemsize for a in self.EVENT_ARRAYS) * events

    # -- keys -----------------------------------------------------------------------------------------------

    def _reserve_entities(self) -> None:
        need = len(self.vocab)
        # Grown as zeros, no sentinel fill, so untouched tails stay non-resident: the kernels set head[k]
        # and ev_next[e] before reading them.
        if need > self.head.shape[0]:
            for a in self.ENTITY_ARRAYS:
                setattr(self, a, grown(getattr(self, a), need))
            release_freed_heap()

    def reserve_events(self, n: int) -> None:
        """Room for n more window events (the kernels never check)."""
        # Conservative: the free list is not counted, so the kernel can always take from the high-water mark.
        need = int(self.meta[_HWM]) + n
        if need > self.ev_ms.shape[0]:
            for a in self.EVENT_ARRAYS:
                setattr(self, a, grown(getattr(self, a), need))
            release_freed_heap()

    def _slots(self, codes: np.ndarray) -> np.ndarray:
        self._reserve_entities()
        return np.where(codes > 0, codes, -1).astype(np.int32)

    def slots_of(self, keys: list) -> np.ndarray:
        """int32 slots of entity keys (strings; "" or None: -1, no state), adding new keys."""
        return self._slots(self.vocab.intern_many(keys))

    def slots_of_spans(self, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """int32 slots of keys given as UTF-8 byte spans of `buf` (length <= 0: -1), for the fast decoder."""
        return self._slots(self.vocab.intern_spans(buf, starts, lengths))

    def slots_of_bytes(self, keys: list[bytes]) -> np.ndarray:
        """int32 slots of UTF-8 encoded keys (b"": -1), adding new keys."""
        lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
        starts = np.zeros(len(keys), dtype=np.int64)
        if len(keys) > 1:
            np.cumsum(lengths[:-1], out=starts[1:])
        return self.slots_of_spans(np.frombuffer(b"".join(keys), dtype=np.uint8), starts, lengths)

    def keys_of(self, slots: np.ndarray) -> list[bytes]:
        """UTF-8 keys of slots, read from the Vocabulary's arena (no Python string per entity kept)."""
        slots = np.asarray(slots, dtype=np.int64)
        if len(slots) == 0:
            return []
        off = self.vocab.str_off
        lo, hi = int(off[slots].min()), int(off[slots + 1].max())
        data = self.vocab.arena[lo:hi].tobytes()
        starts, ends = (off[slots] - lo).tolist(), (off[slots + 1] - lo).tolist()
        return [data[a:b] for a, b in zip(starts, ends)]

    def live_slots(self) -> np.ndarray:
        """Slots holding state, ascending."""
        return np.flatnonzero(self.parcels[:len(self.vocab)] > 0).astype(np.int32)

    @property
    def changed_slots(self) -> np.ndarray:
        """Slots whose state the last apply() changed (ascending, distinct): what to write to the changelog."""
        return self._changed

    # -- the work ---------------------------------------------------------------------------------------------

    def apply(self, slots, seq, event_ms, value_usd, pid_hash) -> dict[str, np.ndarray]:
        """Apply parcels in order (slots from slots_of, or the keys themselves) and return their state columns."""
        if not isinstance(slots, np.ndarray):
            slots = self.slots_of(list(slots))
        slots = np.ascontiguousarray(slots, dtype=np.int32)
        n = len(slots)
        seq = np.ascontiguousarray(seq, dtype=np.int64)
        event_ms = np.ascontiguousarray(event_ms, dtype=np.int64)
        value_usd = np.ascontiguousarray(value_usd, dtype=np.float64)
        pid_hash = np.ascontiguousarray(pid_hash, dtype=np.uint64)
        if not (len(seq) == len(event_ms) == len(value_usd) == len(pid_hash) == n):
            raise ValueError("apply: columns of different lengths")
        if n and int(slots.max()) >= len(self.vocab):
            raise ValueError("apply: a slot this store never gave out")
        self._reserve_entities()
        self.reserve_events(n)
        out = np.empty((len(COLUMNS), n), dtype=np.float64)
        changed = np.empty(n, dtype=np.int32)
        m = apply_kernel(slots, seq, event_ms, value_usd, pid_hash,
                         self.head, self.first_seen, self.last_seen, self.last_seq, self.year, self.year_value,
                         self.parcels, self.ev_ms, self.ev_value, self.ev_pid, self.ev_ord, self.ev_next, self.meta,
                         self.window_ms, self.lateness_ms, self.ttl_ms, self.max_events, out, changed)
        self._changed = np.unique(changed[:m])
        return dict(zip(COLUMNS, out))

    def expire(self) -> list[bytes]:
        """Forget entities past their TTL, drop window events no longer retained, compact when over half the
        slots are dead; returns the forgotten keys (UTF-8), for tombstones in the changelog."""
        forgotten = np.empty(max(len(self.vocab), 1), dtype=np.int32)
        c = expire_kernel(len(self.vocab), self.head, self.last_seen, self.parcels, self.ev_ms, self.ev_pid,
                          self.ev_next, self.meta, self.window_ms, self.lateness_ms, self.ttl_ms, forgotten)
        keys = self.keys_of(forgotten[:c])
        self._changed = self._changed[self.parcels[self._changed] > 0]
        self.maybe_compact()
        return keys

    def forget(self, slots: np.ndarray) -> None:
        """Drop the state of these slots (a tombstone read from the changelog)."""
        for k in np.asarray(slots, dtype=np.int64).tolist():
            if k > 0 and self.parcels[k] > 0:
                free_events(k, self.head, self.ev_next, self.meta)
                self.parcels[k] = 0
                self.meta[_LIVE] -= 1

    def maybe_compact(self) -> bool:
        """Rebuild Vocabulary and arrays with live entities only when more than half the slots are dead."""
        used = len(self.vocab) - 1
        if used - self.live_entities <= used // 2:
            return False
        live = self.live_slots()
        old = self.vocab
        vocab = Vocabulary(old.name)
        starts = old.str_off[live]
        codes = vocab.intern_spans(old.arena, starts, old.str_off[live + 1] - starts)
        # A fresh vocabulary numbers distinct keys 1, 2, ... in the order given: live[j] becomes j + 1.
        assert (codes == np.arange(1, len(live) + 1)).all()
        remap = np.full(used + 1, -1, dtype=np.int32)
        remap[live] = np.arange(1, len(live) + 1, dtype=np.int32)
        changed = remap[self._changed]
        entities = {a: getattr(self, a) for a in self.ENTITY_ARRAYS}
        events = {a: getattr(self, a) for a in self.EVENT_ARRAYS}
        self._new_arrays(_pow2(len(live) + 1), _pow2(self.live_events))
        for a, old_a in entities.items():
            if a != "head":
                getattr(self, a)[1:len(live) + 1] = old_a[live]
        c = compact_events(live, entities["head"], *events.values(), self.head, *(getattr(self, a) for a in self.EVENT_ARRAYS))
        self.meta[_HWM], self.meta[_FREE], self.meta[_EVENTS] = c, -1, c
        self.vocab = vocab
        self._changed = changed[changed >= 0]
        return True

    # -- inspection -------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, tuple]:
        """Logical state of every alive entity: key -> (first_seen_ms, last_seen_ms, last_seq, year, year_value_usd,
        parcels, ((event_ms, value_usd, pid_hash, ordinal), ...) retained, newest-added first). For tests."""
        w = int(self.meta[_W])
        keep_after = w - self.window_ms - self.lateness_ms
        live = self.live_slots()
        out = {}
        for k, key in zip(live.tolist(), self.keys_of(live)):
            if int(self.last_seen[k]) <= w - self.ttl_ms:
                continue
            events = []
            e = int(self.head[k])
            while e >= 0:
                if int(self.ev_ms[e]) > keep_after:
                    events.append((int(self.ev_ms[e]), float(self.ev_value[e]), int(self.ev_pid[e]), int(self.ev_ord[e])))
                e = int(self.ev_next[e])
            out[key.decode("utf-8")] = (int(self.first_seen[k]), int(self.last_seen[k]), int(self.last_seq[k]),
                                        int(self.year[k]), float(self.year_value[k]), int(self.parcels[k]), tuple(events))
        return out
