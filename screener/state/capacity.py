"""R15 inspection capacity: demote selections of a lane-hour that is near or over its capacity, in Numba.

Parcels are judged strictly in array order against `CapacityCounters`, the kept selections per lane
(1 yellow, 2 red) per event hour. Every parcel first advances the newest hour seen; counts of hours more than
WINDOW_HOURS behind it are dropped. For a parcel selected to lane L >= 1 (hour h within the window):

- used = kept selections of (L, h) so far. It is kept at L when capacity[L] <= 0 (unlimited),
  used < near * capacity[L], floor[i] >= L (a rule's lane floor), random[i] (a random pick: never demoted,
  or the random sample would be biased), or score >= bar with bar = min(1, (used / capacity[L] - near) / (1 - near))
  (bar = 1 when near >= 1): the bar rises linearly from 0 at `near` usage to 1 at full capacity, so the
  strongest selections still get through a busy hour.
- Otherwise it is demoted to L - 1 and judged again there (red may cascade to yellow, then to green).
- A kept selection counts at the lane where it ended: counters[L, h] += 1 (green is not counted).
- used_at[i] is `used` at the last check made for the parcel; -1 when none was made (a green parcel, or an
  hour more than WINDOW_HOURS behind the newest, which is neither counted nor demoted: its hour is closed).

Counters live in a ring of RING_HOURS hour slots (fixed memory); `encode` / `decode` give the bytes of a
compacted changelog record (one per state partition) so that a restarted worker resumes the same budgets.
"""

from __future__ import annotations

import numba as nb
import numpy as np

WINDOW_HOURS = 48
RING_HOURS = 64          # > WINDOW_HOURS + 1, so a live hour never shares its ring slot with another live hour
NO_HOUR = -(1 << 62)
VERSION = 1


@nb.njit(cache=True)
def demote_kernel(lane, score, floor, random, hour, hours, counts, newest, capacity, near, new_lane, demoted, used_at):
    """Judge parcels in order against the ring counters (hours[j], counts[lane, j]; newest[0] the newest hour)."""
    for i in range(lane.shape[0]):
        h = hour[i]
        if h > newest[0]:
            newest[0] = h
        start = np.int64(lane[i])
        new_lane[i] = lane[i]
        demoted[i] = False
        used_at[i] = -1
        if start == 0 or h < newest[0] - WINDOW_HOURS:
            continue
        j = h % RING_HOURS
        if hours[j] != h:
            # The slot held an hour at least RING_HOURS older: out of the window, so its counts are dropped.
            hours[j] = h
            for lane_k in range(counts.shape[0]):
                counts[lane_k, j] = 0
        current = start
        while current >= 1:
            used = counts[current, j]
            used_at[i] = used
            cap = capacity[current]
            if cap <= 0 or used < near * cap or np.int64(floor[i]) >= current or random[i]:
                break
            bar = 1.0 if near >= 1.0 else min(1.0, (used / cap - near) / (1.0 - near))
            if score[i] >= bar:
                break
            current -= 1
        new_lane[i] = current
        demoted[i] = current != start
        if current >= 1:
            counts[current, j] += 1


class CapacityCounters:
    """Kept selections per lane per event hour over the last WINDOW_HOURS + 1 hours (a fixed ring of arrays)."""

    __slots__ = ("hours", "counts", "newest")

    def __init__(self) -> None:
        self.hours = np.full(RING_HOURS, NO_HOUR, dtype=np.int64)
        self.counts = np.zeros((3, RING_HOURS), dtype=np.int64)
        self.newest = np.array([NO_HOUR], dtype=np.int64)

    def live(self) -> dict[tuple[int, int], int]:
        """Non-zero counts of hours in the window, by (lane, hour)."""
        newest = int(self.newest[0])
        out = {}
        for j, h in enumerate(self.hours.tolist()):
            if h == NO_HOUR or h < newest - WINDOW_HOURS:
                continue
            for lane in (1, 2):
                if self.counts[lane, j]:
                    out[(lane, h)] = int(self.counts[lane, j])
        return out

    def nbytes(self) -> int:
        """Bytes held (constant)."""
        return self.hours.nbytes + self.counts.nbytes + self.newest.nbytes

    def encode(self) -> bytes:
        """Changelog value: version u8, newest hour i64, entries u16, then (hour i64, yellow i64, red i64) each."""
        live = self.live()
        hours = sorted({h for _lane, h in live})
        rows = np.array([(h, live.get((1, h), 0), live.get((2, h), 0)) for h in hours], dtype="<i8").reshape(-1, 3)
        return bytes([VERSION]) + np.array([self.newest[0]], "<i8").tobytes() + len(hours).to_bytes(2, "little") + rows.tobytes()

    @classmethod
    def decode(cls, data: bytes | None) -> CapacityCounters:
        """Counters from an encoded value (empty or None: fresh counters)."""
        counters = cls()
        if not data:
            return counters
        if data[0] != VERSION or len(data) < 11:
            raise ValueError("capacity counters: unknown version or short record")
        n = int.from_bytes(data[9:11], "little")
        if len(data) != 11 + 24 * n:
            raise ValueError("capacity counters: bad length")
        counters.newest[0] = int(np.frombuffer(data, "<i8", 1, 1)[0])
        rows = np.frombuffer(data, "<i8", 3 * n, 11).reshape(-1, 3)
        for h, yellow, red in rows.tolist():
            j = h % RING_HOURS
            counters.hours[j] = h
            counters.counts[1, j], counters.counts[2, j] = yellow, red
        return counters


def demote(lane, score, floor, random, hour, counters: CapacityCounters, capacity, near: float):
    """R15 demotion of a batch, in order: (new_lane uint8[n], demoted bool[n], used_at int64[n]); updates counters."""
    lane = np.ascontiguousarray(lane, dtype=np.uint8)
    n = len(lane)
    capacity = np.ascontiguousarray(capacity, dtype=np.int64)
    if capacity.shape != (3,):
        raise ValueError("capacity: one entry per lane (green, yellow, red)")
    new_lane = np.empty(n, dtype=np.uint8)
    demoted = np.empty(n, dtype=np.bool_)
    used_at = np.empty(n, dtype=np.int64)
    demote_kernel(lane, np.ascontiguousarray(score, dtype=np.float64), np.ascontiguousarray(floor, dtype=np.uint8),
                  np.ascontiguousarray(random, dtype=np.bool_), np.ascontiguousarray(hour, dtype=np.int64),
                  counters.hours, counters.counts, counters.newest, capacity, float(near), new_lane, demoted, used_at)
    return new_lane, demoted, used_at
