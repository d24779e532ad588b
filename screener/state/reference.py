"""Plain-Python references of the state kernels: consignee state (consignee.py) and R15 capacity (capacity.py).

Written for obviousness (dicts, dataclasses, lists), not speed; property tests hold the kernels to these,
column for column and bit for bit: both sum floats in the same order (window events newest-added first,
year totals in application order), so equal means exactly equal. The semantics are documented in the
kernels' module docstrings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from screener.state.capacity import WINDOW_HOURS
from screener.state.consignee import COLUMNS, DAY_MS, HOUR_MS, MAX_WINDOW_EVENTS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_year(ms: int) -> int:
    """UTC calendar year of a time in ms since the epoch."""
    return (EPOCH + timedelta(milliseconds=ms)).year


@dataclass
class Event:
    """One parcel in an entity's window."""

    event_ms: int
    value_usd: float
    pid_hash: int
    ordinal: int   # how many parcels of the entity were applied before it


@dataclass
class Entity:
    """What the store knows about one consignee."""

    first_seen_ms: int
    last_seen_ms: int
    last_seq: int
    year: int = 0                 # 0: no parcel counted in a year yet
    year_value_usd: float = 0.0
    parcels: int = 0
    events: list[Event] = field(default_factory=list)   # oldest-added first


class ReferenceConsigneeState:
    """The consignee store of one partition, plainly: a dict of key -> Entity."""

    def __init__(self, window_ms: int = DAY_MS, lateness_ms: int = 6 * HOUR_MS, ttl_ms: int = 180 * DAY_MS,
                 max_events: int = MAX_WINDOW_EVENTS) -> None:
        self.window_ms, self.lateness_ms, self.ttl_ms, self.max_events = window_ms, lateness_ms, ttl_ms, max_events
        self.entities: dict[str, Entity] = {}
        self.watermark: int | None = None
        self.late_events = 0
        self.bounded_events = 0

    def apply(self, keys: list[str], seq, event_ms, value_usd, pid_hash) -> dict[str, list[float]]:
        """Apply parcels in order; their state columns by name."""
        columns: dict[str, list[float]] = {name: [] for name in COLUMNS}
        for key, s, t, v, pid in zip(keys, seq, event_ms, value_usd, pid_hash):
            row = self.apply_one(key, int(s), int(t), float(v), int(pid))
            for name, x in zip(COLUMNS, row):
                columns[name].append(x)
        return columns

    def retained(self, event: Event) -> bool:
        """Could a parcel that is not too late still count this event?"""
        return event.event_ms > self.watermark - self.window_ms - self.lateness_ms

    def alive(self, entity: Entity) -> bool:
        """Seen within the TTL (by the watermark)?"""
        return entity.last_seen_ms > self.watermark - self.ttl_ms

    def apply_one(self, key: str, seq: int, t: int, value: float, pid: int) -> tuple[float, ...]:
        """Apply one parcel; its columns in COLUMNS order."""
        if not key:
            return (math.nan,) * len(COLUMNS)
        if not math.isfinite(value):
            value = 0.0
        self.watermark = t if self.watermark is None else max(self.watermark, t)
        late = t < self.watermark - self.lateness_ms

        entity = self.entities.get(key)
        if entity is not None and not self.alive(entity):
            del self.entities[key]
            entity = None
        if entity is not None:
            entity.events = [e for e in entity.events if self.retained(e)]

        replay = entity is not None and seq <= entity.last_seq
        if not replay:
            if entity is None:
                entity = self.entities[key] = Entity(first_seen_ms=t, last_seen_ms=t, last_seq=seq)
            entity.last_seq = seq
            entity.first_seen_ms = min(entity.first_seen_ms, t)
            entity.last_seen_ms = max(entity.last_seen_ms, t)
            if late:
                self.late_events += 1
            duplicate = any(e.pid_hash == pid for e in entity.events)
            if not duplicate:
                ordinal = entity.parcels
                entity.parcels += 1
                if not late:
                    drop = len(entity.events) - (self.max_events - 1)
                    if drop > 0:    # the oldest-added go: an entity keeps at most max_events
                        del entity.events[:drop]
                        self.bounded_events += drop
                    entity.events.append(Event(t, value, pid, ordinal))
                    year = utc_year(t)
                    if year > entity.year:
                        entity.year = year
                        entity.year_value_usd = 0.0
                    if year == entity.year:
                        entity.year_value_usd += value

        low = max(t - self.window_ms, self.watermark - self.window_ms - self.lateness_ms)
        count, total = 0, 0.0
        for e in reversed(entity.events):   # newest-added first, the kernel's summation order
            if low < e.event_ms <= t:
                count += 1
                total += e.value_usd
        year_value = entity.year_value_usd if entity.year == utc_year(t) else value
        same = [e for e in entity.events if e.pid_hash == pid]
        before = same[0].ordinal if same else entity.parcels - 1
        days_known = (t - entity.first_seen_ms) / DAY_MS
        return (float(count), total, year_value, float(before), days_known, 1.0 if late else 0.0)

    def expire(self) -> list[str]:
        """Forget entities past their TTL; their keys."""
        if self.watermark is None:
            return []
        gone = [key for key, entity in self.entities.items() if not self.alive(entity)]
        for key in gone:
            del self.entities[key]
        for entity in self.entities.values():
            entity.events = [e for e in entity.events if self.retained(e)]
        return gone

    def snapshot(self) -> dict[str, tuple]:
        """Logical state of alive entities, in the layout of ConsigneeState.snapshot."""
        out = {}
        for key, entity in self.entities.items():
            if not self.alive(entity):
                continue
            events = tuple((e.event_ms, e.value_usd, e.pid_hash, e.ordinal) for e in reversed(entity.events) if self.retained(e))
            out[key] = (entity.first_seen_ms, entity.last_seen_ms, entity.last_seq, entity.year, entity.year_value_usd,
                        entity.parcels, events)
        return out


class ReferenceCapacityCounters:
    """Kept selections per (lane, event hour), for hours at most WINDOW_HOURS behind the newest hour seen."""

    def __init__(self) -> None:
        self.newest: int | None = None
        self.counts: dict[tuple[int, int], int] = {}

    def live(self) -> dict[tuple[int, int], int]:
        """Non-zero counts by (lane, hour)."""
        return {k: v for k, v in self.counts.items() if v}


def reference_demote(lane, score, floor, random, hour, counters: ReferenceCapacityCounters, capacity, near: float):
    """R15 capacity demotion, parcel by parcel: (new lanes, demoted flags, used counts at the last check)."""
    new_lanes, demoted, used_at = [], [], []
    for lane_i, score_i, floor_i, random_i, h in zip(lane, score, floor, random, hour):
        lane_i, floor_i, h = int(lane_i), int(floor_i), int(h)
        counters.newest = h if counters.newest is None else max(counters.newest, h)
        for lane_hour in [k for k in counters.counts if k[1] < counters.newest - WINDOW_HOURS]:
            del counters.counts[lane_hour]
        new, used = lane_i, -1
        if lane_i >= 1 and h >= counters.newest - WINDOW_HOURS:
            while new >= 1:
                used = counters.counts.get((new, h), 0)
                cap = int(capacity[new])
                if cap <= 0 or used < near * cap or floor_i >= new or random_i:
                    break
                bar = 1.0 if near >= 1.0 else min(1.0, (used / cap - near) / (1.0 - near))
                if score_i >= bar:
                    break
                new -= 1
            if new >= 1:
                counters.counts[(new, h)] = counters.counts.get((new, h), 0) + 1
        new_lanes.append(new)
        demoted.append(new != lane_i)
        used_at.append(used)
    return new_lanes, demoted, used_at
