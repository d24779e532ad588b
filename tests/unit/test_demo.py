"""The demo's live rate and summary throughput: windowed, never absurd on bursts or short runs."""

from __future__ import annotations

import math

from screener.demo import MIN_THROUGHPUT_SPAN_S, RATE_WINDOW_S, Tally


def test_live_rate_is_smooth_over_bursty_arrivals():
    t = Tally(started_at=100.0)
    rates = []
    for tick in range(1, 81):  # 20 s of view refreshes every 0.25 s
        now = 100.0 + tick * 0.25
        if tick % 8 == 0:  # a batch of 2,000 decisions lands every 2 s: 1,000 parcels/s on average
            t.decided.update(f"P{tick}-{i}" for i in range(2_000))
        rates.append(t.rate(now))
    assert rates[0] == 0.0  # under MIN_RATE_SPAN_S: no rate rather than a huge one
    # Two or three batches inside the 5 s window: 800 or 1,200/s, never a burst over a refresh tick.
    assert max(rates) <= (RATE_WINDOW_S // 2 + 1) * 2_000 / RATE_WINDOW_S
    assert min(rates[20:]) >= (RATE_WINDOW_S // 2) * 2_000 / RATE_WINDOW_S


def test_throughput_is_unmeasured_when_every_decision_came_within_a_blink():
    t = Tally(started_at=2.0, first_at=10.0, last_at=10.002)
    t.decided.update(range(2_000))
    assert math.isnan(t.throughput())  # 2,000 parcels in 2 ms would read as 1,000,000/s
    assert t.end_to_end() == 2_000 / 8.002
    t.last_at = 10.0 + MIN_THROUGHPUT_SPAN_S * 2
    assert t.throughput() == 2_000 / (MIN_THROUGHPUT_SPAN_S * 2)
