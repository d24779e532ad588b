"""R15 capacity: the Numba demotion equals the plain reference; floors and random picks are never demoted;
counters stay bounded and survive an encode / decode round trip."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.state.capacity import RING_HOURS, WINDOW_HOURS, CapacityCounters, demote
from screener.state.reference import ReferenceCapacityCounters, reference_demote

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def selections(draw, max_size=120):
    """Columns (lane, score, floor, random, hour) of parcels, hours mostly forward with jumps back and far ahead."""
    n = draw(st.integers(0, max_size))
    rows, hour = [], 1000
    for _ in range(n):
        hour = max(0, hour + draw(st.sampled_from([0, 0, 0, 1, 2, -1, -5, 30, -49, -60, 70])))
        rows.append((draw(st.sampled_from([0, 1, 2, 2])), draw(st.sampled_from([0.0, 0.1, 0.5, 0.75, 0.9, 1.0])),
                     draw(st.sampled_from([0, 0, 0, 1, 2])), draw(st.integers(0, 9)) == 0, hour))
    return rows


def as_columns(rows):
    """The demote() columns of rows."""
    lane, score, floor, random, hour = zip(*rows) if rows else ((),) * 5
    return (np.array(lane, np.uint8), np.array(score, np.float64), np.array(floor, np.uint8), np.array(random, np.bool_),
            np.array(hour, np.int64))


capacities = st.tuples(st.just(0), st.integers(-1, 6), st.integers(-1, 4))
nears = st.sampled_from([0.0, 0.5, 0.8, 1.0])


@SETTINGS
@given(rows=selections(), capacity=capacities, near=nears, cuts=st.lists(st.integers(0, 120), max_size=5))
def test_fast_demotion_equals_reference_in_any_batching(rows, capacity, near, cuts):
    fast, ref = CapacityCounters(), ReferenceCapacityCounters()
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(rows)}), len(rows)]
    for lo, hi in zip(bounds, bounds[1:]):
        cols = as_columns(rows[lo:hi])
        new_lane, demoted, used_at = demote(*cols, fast, capacity, near)
        r_lane, r_demoted, r_used = reference_demote(*cols, ref, capacity, near)
        assert new_lane.tolist() == r_lane and demoted.tolist() == r_demoted and used_at.tolist() == r_used
        assert fast.live() == ref.live()
        # Restarting from the encoded counters changes nothing.
        fast = CapacityCounters.decode(fast.encode())


@SETTINGS
@given(rows=selections(), capacity=capacities, near=nears)
def test_floors_and_random_picks_are_never_demoted(rows, capacity, near):
    lane, score, floor, random, hour = as_columns(rows)
    new_lane, demoted, _ = demote(lane, score, floor, random, hour, CapacityCounters(), capacity, near)
    assert (new_lane[random] == lane[random]).all()
    assert (new_lane >= np.minimum(lane, floor)).all()
    assert (new_lane <= lane).all() and (demoted == (new_lane != lane)).all()


def test_a_busy_hour_demotes_weak_selections_first_and_cascades():
    counters = CapacityCounters()
    n = 10
    lane = np.full(n, 2, np.uint8)
    score = np.array([0.2] * 4 + [1.0] + [0.2] * 5)
    new_lane, demoted, used_at = demote(lane, score, np.zeros(n, np.uint8), np.zeros(n, np.bool_), np.full(n, 7, np.int64),
                                        counters, [0, 3, 2], 0.5)
    # Red (capacity 2) keeps one below half, one at exactly half (bar 0), then at full capacity only score 1.0;
    # yellow (capacity 3) takes two below 1.5, then its bar at 2 of 3 is 1/3 and the 0.2s go green.
    assert new_lane.tolist() == [2, 2, 1, 1, 2, 0, 0, 0, 0, 0]
    assert demoted.tolist() == [n != 2 for n in new_lane.tolist()]
    assert used_at.tolist()[:6] == [0, 1, 0, 1, 2, 2] and counters.live() == {(2, 7): 3, (1, 7): 2}
    unlimited = demote(lane, score * 0, np.zeros(n, np.uint8), np.zeros(n, np.bool_), np.full(n, 7, np.int64),
                       CapacityCounters(), [0, 0, -1], 0.5)
    assert not unlimited[1].any()


def test_counters_are_bounded_and_old_hours_are_neither_counted_nor_demoted():
    counters, ref = CapacityCounters(), ReferenceCapacityCounters()
    size = counters.nbytes()
    rng = np.random.default_rng(3)
    for start in range(0, 5000, 100):
        n = 2000
        hour = start + rng.integers(0, 100, n)
        cols = (rng.integers(0, 3, n).astype(np.uint8), rng.random(n), np.zeros(n, np.uint8), np.zeros(n, np.bool_), hour)
        demote(*cols, counters, [0, 50, 20], 0.8)
        reference_demote(*cols, ref, [0, 50, 20], 0.8)
        assert len(counters.live()) <= 2 * (WINDOW_HOURS + 1) and len(ref.counts) <= 2 * (WINDOW_HOURS + 1)
        assert counters.live() == ref.live()
    assert counters.nbytes() == size and RING_HOURS > WINDOW_HOURS + 1
    newest = int(counters.newest[0])
    old = demote(np.array([2], np.uint8), np.array([0.0]), np.zeros(1, np.uint8), np.zeros(1, np.bool_),
                 np.array([newest - WINDOW_HOURS - 1]), counters, [0, 1, 1], 0.0)
    assert old[0].tolist() == [2] and old[2].tolist() == [-1]
    assert CapacityCounters.decode(counters.encode()).live() == counters.live()
    assert CapacityCounters.decode(None).live() == {}
