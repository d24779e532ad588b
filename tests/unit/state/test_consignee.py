"""Consignee state: the Numba store equals the plain reference, column for column and bit for bit.

Hypothesis drives random parcel sequences over few keys (so entities collide), times spanning a year
boundary and the TTL, out-of-order and too-late parcels, duplicate parcel hashes and replays (a suffix of
earlier parcels applied again with their seq values); small window / lateness / TTL so that every path runs.
Floats are compared exactly (NaN equal to NaN): both implementations add in the same order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.state.changelog import HEADER, encode_entities, restore
from screener.state.consignee import COLUMNS, DAY_MS, HOUR_MS, MAX_WINDOW_EVENTS, ConsigneeState
from screener.state.reference import ReferenceConsigneeState, utc_year

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = 1735603200000          # 2024-12-31T00:00:00Z: a day before the year boundary
KEYS = ["", "a", "b", "c", "é"]
VALUES = [0.0, 1.0, 0.1, 0.2, 0.3, 1e6, 12.5, 1e-3, math.nan, -0.0, math.inf]
PARAMS = [  # (window, lateness, ttl, max_events): small bounds so that dropping the oldest events runs too
    (10 * HOUR_MS, 3 * HOUR_MS, 2 * DAY_MS, MAX_WINDOW_EVENTS),
    (24 * HOUR_MS, 0, 26 * HOUR_MS, 3),
    (5 * HOUR_MS, 20 * HOUR_MS, 3 * DAY_MS, 2),
    (2 * HOUR_MS, HOUR_MS, 4 * HOUR_MS, MAX_WINDOW_EVENTS),   # entities forgotten all the time
    (24 * HOUR_MS, 6 * HOUR_MS, 3 * DAY_MS, 1),
]


@st.composite
def parcels(draw, max_size=60):
    """Rows (key, seq, event_ms, value, pid_hash): seq 1..n, then replays of suffixes inserted along the way."""
    n = draw(st.integers(1, max_size))
    rows = []
    clock = 0
    for i in range(n):
        # Mostly forward in time, sometimes a jump back (out of order, possibly too late).
        step = draw(st.sampled_from([0, 1, 60_000, HOUR_MS, 4 * HOUR_MS, 13 * HOUR_MS, DAY_MS, -3 * HOUR_MS, -9 * HOUR_MS]))
        clock = max(0, clock + step)
        t = BASE + clock + draw(st.sampled_from([0, 0, 1, 999]))   # whole hours often: exact boundaries
        rows.append((draw(st.sampled_from(KEYS)), i + 1, t, draw(st.sampled_from(VALUES)), draw(st.integers(0, 5))))
    if not draw(st.booleans()):
        return rows
    out = []
    for i, row in enumerate(rows):
        out.append(row)
        if draw(st.integers(0, 9)) == 0:
            start = draw(st.integers(0, i))
            out.extend(rows[start:i + 1])   # a crash: the uncommitted tail again, same seq values
    return out


def columns_of(rows):
    """The apply() arguments of rows."""
    keys, seq, t, v, pid = zip(*rows) if rows else ((),) * 5
    return list(keys), np.array(seq, np.int64), np.array(t, np.int64), np.array(v, np.float64), np.array(pid, np.uint64)


def splits(draw_points: list[int], n: int) -> list[tuple[int, int]]:
    """Batches [lo, hi) of n rows cut at the drawn points."""
    points = sorted({p for p in draw_points if 0 < p < n})
    bounds = [0, *points, n]
    return list(zip(bounds, bounds[1:]))


def same(a, b) -> bool:
    """Columns exactly equal, NaN equal to NaN."""
    return np.array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64), equal_nan=True)


def run(store, rows, bounds, expire_at=()):
    """Columns of rows applied in the given batches (expire() after the batches listed)."""
    out = {name: [] for name in COLUMNS}
    for b, (lo, hi) in enumerate(bounds):
        cols = store.apply(*columns_of(rows[lo:hi]))
        for name in COLUMNS:
            out[name].extend(np.asarray(cols[name]).tolist())
        if b in expire_at:
            store.expire()
    return out


@SETTINGS
@given(rows=parcels(), params=st.sampled_from(PARAMS), cuts=st.lists(st.integers(0, 200), max_size=6),
       expire_at=st.sets(st.integers(0, 6)))
def test_fast_store_equals_reference(rows, params, cuts, expire_at):
    fast, ref = ConsigneeState(*params), ReferenceConsigneeState(*params)
    for b, (lo, hi) in enumerate(splits(cuts, len(rows))):
        cols = fast.apply(*columns_of(rows[lo:hi]))
        expected = ref.apply(*columns_of(rows[lo:hi]))
        for name in COLUMNS:
            assert same(cols[name], expected[name]), (name, rows[lo:hi], cols[name], expected[name])
        changed = {k.decode() for k in fast.keys_of(fast.changed_slots)}
        assert changed <= {r[0] for r in rows[lo:hi]} - {""}
        if b in expire_at:
            assert {k.decode() for k in fast.expire()} == set(ref.expire())
        assert fast.snapshot() == ref.snapshot()
    assert fast.watermark == ref.watermark and fast.late_events == ref.late_events
    assert fast.bounded_events == ref.bounded_events


@SETTINGS
@given(rows=parcels(), params=st.sampled_from(PARAMS), cuts=st.lists(st.integers(0, 200), max_size=8),
       expire_at=st.sets(st.integers(0, 8)))
def test_columns_do_not_depend_on_batching_or_on_expire(rows, params, cuts, expire_at):
    whole = run(ConsigneeState(*params), rows, [(0, len(rows))])
    one_by_one = ConsigneeState(*params)
    split = run(one_by_one, rows, splits(cuts, len(rows)), expire_at)
    for name in COLUMNS:
        assert same(whole[name], split[name]), name


@SETTINGS
@given(rows=parcels(), params=st.sampled_from(PARAMS), cut=st.integers(0, 200), start=st.integers(0, 200))
def test_a_replayed_prefix_changes_nothing(rows, params, cut, start):
    """Crash after applying A[:cut], replay from `start`: state and later columns as if A was applied once."""
    rows = [r for i, r in enumerate(rows) if r[1] == i + 1]   # the sequence without its own replays
    cut = min(cut, len(rows))
    start = min(start, cut)
    once = ConsigneeState(*params)
    first = run(once, rows, [(0, cut), (cut, len(rows))])
    crashed = ConsigneeState(*params)
    run(crashed, rows, [(0, cut)])
    before = crashed.snapshot()
    replayed = crashed.apply(*columns_of(rows[start:cut])) if cut > start else None
    assert crashed.snapshot() == before
    if replayed is not None:
        # Only a parcel of an entity past its TTL is applied again (it was forgotten), and stays dead: tombstones.
        assert all(v == b"" for v in encode_entities(crashed, crashed.changed_slots)[1])
        # The parcel applied last, replayed with nothing in between, gets its first columns.
        for name in COLUMNS:
            assert same(replayed[name][-1:], first[name][cut - 1:cut]), name
    rest = run(crashed, rows, [(cut, len(rows))])
    assert crashed.snapshot() == once.snapshot()
    for name in COLUMNS:
        assert same(rest[name], first[name][cut:]), name


@SETTINGS
@given(rows=parcels(), params=st.sampled_from(PARAMS), cuts=st.lists(st.integers(0, 200), max_size=6),
       restore_after=st.integers(0, 6), expire_at=st.sets(st.integers(0, 6)))
def test_changelog_round_trip_gives_identical_columns(rows, params, cuts, restore_after, expire_at):
    """Records written as a worker would (changed slots after every apply, tombstones after expire) rebuild a
    store that then decides exactly as the original."""
    bounds = splits(cuts, len(rows))
    restore_after = min(restore_after, len(bounds) - 1)
    original = ConsigneeState(*params)
    log_keys, log_values = [], []
    for b, (lo, hi) in enumerate(bounds[:restore_after + 1]):
        original.apply(*columns_of(rows[lo:hi]))
        keys, values = encode_entities(original, original.changed_slots)
        log_keys += keys
        log_values += values
        if b in expire_at:
            gone = original.expire()
            log_keys += gone
            log_values += [None] * len(gone)
    restored = ConsigneeState(*params)
    restore(restored, log_keys, log_values)
    assert restored.snapshot() == original.snapshot()
    # A full dump restores the same, also into a store that already holds something else.
    dump = ConsigneeState(*params)
    dump.apply(["zz"], [1], [BASE - 400 * DAY_MS], [1.0], [9])
    restore(dump, *encode_entities(original, original.live_slots()))
    restore(dump, [b"zz"], [b""])
    assert dump.snapshot() == original.snapshot()
    assert restored.watermark == original.watermark == dump.watermark or not original.snapshot()
    rest = bounds[restore_after + 1:]
    if original.snapshot():
        a, b, c = (run(s, rows, rest) for s in (original, restored, dump))
        for name in COLUMNS:
            assert same(a[name], b[name]) and same(a[name], c[name]), name
        assert original.snapshot() == restored.snapshot() == dump.snapshot()


def test_split_shipments_window_and_duplicates():
    s = ConsigneeState()
    t = BASE + 12 * HOUR_MS
    cols = s.apply(["x", "x", "x", "x", "x"], [1, 2, 3, 4, 5],
                   [t, t + HOUR_MS, t + 2 * HOUR_MS, t + 2 * HOUR_MS, t + 25 * HOUR_MS],
                   [100.0, 50.0, 25.0, 25.0, 10.0], [1, 2, 3, 3, 4])
    # The fourth parcel is the third sent again (same pid): not counted twice; its ordinal is the original's.
    assert cols["consignee_24h_count"].tolist() == [1, 2, 3, 3, 2]
    assert cols["consignee_24h_value_usd"].tolist() == [100, 150, 175, 175, 35]
    assert cols["consignee_parcels_before"].tolist() == [0, 1, 2, 2, 3]
    assert cols["consignee_year_value_usd"].tolist() == [100, 150, 175, 175, 10]   # 2025 began in between


def test_a_flooded_consignee_keeps_a_bounded_window_and_changelog_record():
    # An attacker (or a consolidator address) sends one consignee 20,000 parcels within an hour: each parcel
    # walks the consignee's window, so without the bound the batch would cost 200 million steps.
    s = ConsigneeState(max_events=64)
    n = 20_000
    cols = s.apply(["x"] * n, np.arange(1, n + 1), BASE + np.arange(n) * 100, np.ones(n), np.arange(n, dtype=np.uint64))
    assert s.live_events == 64 and s.bounded_events == n - 64
    assert cols["consignee_24h_count"].tolist() == [*range(1, 65), *[64] * (n - 64)]   # stays at the bound
    assert cols["consignee_24h_value_usd"][-1] == 64.0                                 # a lower bound
    assert cols["consignee_parcels_before"][-1] == n - 1                               # counts are exact
    assert cols["consignee_year_value_usd"][-1] == float(n)
    _, values = encode_entities(s, s.live_slots())
    assert len(values[0]) == HEADER + 28 * 64
    assert ConsigneeState().max_events == MAX_WINDOW_EVENTS == 1024


def test_yearly_quota_across_the_year_boundary_with_replays():
    s = ConsigneeState()
    dec31, jan1 = BASE + 20 * HOUR_MS, BASE + 26 * HOUR_MS
    assert (utc_year(dec31), utc_year(jan1)) == (2024, 2025)
    first = s.apply(["x"] * 3, [1, 2, 3], [dec31, jan1, dec31 + HOUR_MS], [10.0, 20.0, 40.0], [1, 2, 3])
    # The 2024 parcel after the 2025 one is judged alone and does not touch the 2025 total.
    assert first["consignee_year_value_usd"].tolist() == [10, 20, 40]
    again = s.apply(["x"] * 3, [1, 2, 3], [dec31, jan1, dec31 + HOUR_MS], [10.0, 20.0, 40.0], [1, 2, 3])
    assert again["consignee_year_value_usd"].tolist() == [10, 20, 40]
    assert s.snapshot()["x"][3:5] == (2025, 20.0)
    assert again["consignee_parcels_before"].tolist() == [0, 1, 2]


def test_too_late_parcels_are_flagged_and_not_counted():
    s = ConsigneeState()
    s.apply(["a"], [1], [BASE + 40 * HOUR_MS], [1.0], [1])
    cols = s.apply(["b", "b"], [2, 3], [BASE + 30 * HOUR_MS, BASE + 35 * HOUR_MS], [5.0, 7.0], [2, 3])
    assert cols["consignee_late"].tolist() == [1.0, 0.0]
    assert cols["consignee_24h_count"].tolist() == [0, 1]
    assert cols["consignee_parcels_before"].tolist() == [0, 1]   # the late parcel is still a parcel seen
    assert s.late_events == 1


def test_missing_keys_get_nan_and_no_state():
    s = ConsigneeState()
    cols = s.apply(["", None], [1, 2], [BASE, BASE], [1.0, 2.0], [1, 2])
    assert all(np.isnan(cols[name]).all() for name in COLUMNS)
    assert len(s) == 0 and s.watermark is None and len(s.changed_slots) == 0


def test_slots_and_keys_are_interchangeable_inputs():
    a, b = ConsigneeState(), ConsigneeState()
    keys = ["k1", "", "k2", "k1"]
    args = ([1, 2, 3, 4], [BASE, BASE, BASE + 1, BASE + 2], [1.0, 2.0, 3.0, 4.0], [1, 2, 3, 4])
    ca, cb = a.apply(keys, *args), b.apply(b.slots_of(keys), *args)
    assert all(same(ca[n], cb[n]) for n in COLUMNS)
    with pytest.raises(ValueError):
        b.apply(np.array([99], np.int32), [5], [BASE], [1.0], [5])


def test_expiry_bounds_memory_and_a_forgotten_consignee_is_new_again():
    s = ConsigneeState(window_ms=DAY_MS, lateness_ms=6 * HOUR_MS, ttl_ms=10 * DAY_MS)
    per_day, days = 2_000, 60
    seq = 0
    peak_slots = 0
    for day in range(days):
        keys = [f"C-{day}-{i}" for i in range(per_day)] + ["regular"]
        t = BASE + day * DAY_MS + np.arange(per_day + 1, dtype=np.int64) * 1000
        seqs = np.arange(seq + 1, seq + per_day + 2)
        seq += per_day + 1
        cols = s.apply(keys, seqs, t, np.ones(per_day + 1), seqs.astype(np.uint64))
        assert cols["consignee_parcels_before"][-1] == day
        gone = s.expire()
        if day >= 11:
            assert len(gone) == per_day   # the consignees of day - 10
        peak_slots = max(peak_slots, s.n_slots)
        assert s.live_entities <= 11 * per_day + 1
    assert peak_slots <= 2 * 11 * per_day + 2 * per_day + 2   # compaction keeps dead slots below half
    assert s.live_events <= 2 * per_day + 2
    # Day 0's consignee comes back after 60 days: forgotten, so new again (no history, zero days known).
    cols = s.apply(["C-0-5"], [seq + 1], [BASE + days * DAY_MS], [1.0], [1])
    assert cols["consignee_parcels_before"][0] == 0 and cols["consignee_days_known"][0] == 0
    assert cols["consignee_24h_count"][0] == 1


def test_bytes_per_entity_with_one_window_event():
    s = ConsigneeState()
    n = 100_000
    keys = [f"C-{i:09d}" for i in range(n)]
    s.apply(keys, np.arange(1, n + 1), BASE + np.arange(n), np.ones(n), np.arange(n, dtype=np.uint64))
    own = sum(getattr(s, a).itemsize for a in (*s.ENTITY_ARRAYS, *s.EVENT_ARRAYS))
    assert own == 74
    assert s.nbytes_used() / n < 74 + 70   # plus the Vocabulary's table, offsets and key bytes


def test_malformed_changelog_records_are_refused():
    s = ConsigneeState()
    s.apply(["a"], [1], [BASE], [1.0], [1])
    keys, values = encode_entities(s, s.live_slots())
    assert len(values[0]) == HEADER + 28
    for bad in (b"\x02" + values[0][1:], values[0][:-1], values[0] + b"\x00"):
        with pytest.raises(ValueError):
            restore(ConsigneeState(), keys, [bad])
    fresh = ConsigneeState()
    assert restore(fresh, keys + keys, [values[0], None]) == 0 and len(fresh) == 0


def test_ttl_boundary_is_the_same_for_touch_and_expire():
    """Seen exactly ttl_ms before the watermark is forgotten, whether touched or swept."""
    ttl = 40 * HOUR_MS
    swept, touched = ConsigneeState(ttl_ms=ttl), ConsigneeState(ttl_ms=ttl)
    for s in (swept, touched):
        s.apply(["old", "new"], [1, 2], [BASE, BASE + ttl - 1], [1.0, 1.0], [1, 2])
        assert s.expire() == []
        s.apply(["new"], [3], [BASE + ttl], [1.0], [3])
    assert swept.expire() == [b"old"] and "old" not in swept.snapshot()
    cols = touched.apply(["old"], [4], [BASE + ttl], [1.0], [4])
    assert cols["consignee_parcels_before"][0] == 0
