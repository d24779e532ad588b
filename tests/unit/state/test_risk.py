"""Repeat-offender rates (screener/state/risk.py): the entity.py formula, idempotence, replacement, retention."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.features.entity import PRIOR_STRENGTH, EntityStats
from screener.state.risk import (
    DAY_MS,
    DEFAULT_RETENTION_MS,
    RISK_KINDS,
    JoinedOutcome,
    RiskStats,
    decode_joined,
    encode_joined,
    pair_key,
)

T0 = 1_794_355_200_000  # 2026-11-11


def joined(pid: str, illicit: bool, consignee: str = "c-1", hs6=("610910",), ms: int = T0, **extra) -> JoinedOutcome:
    entities = {"consignee": [consignee], "seller": ["s-1"], "origin": ["cn"], "hs6": list(hs6),
                "origin_hs6": [pair_key("cn", h) for h in hs6], **extra}
    return JoinedOutcome(pid, ms, illicit, entities)


def counts(stats: RiskStats) -> dict:
    """Everything the rates depend on, by key (slots may differ between stores)."""
    out = {"global": (stats.outcomes, stats.illicit_outcomes)}
    for kind, t in stats.tables.items():
        for key, slot in t.slot_of.items():
            if t.labelled[slot] or t.illicit[slot]:
                out[(kind, key)] = (t.labelled[slot], t.illicit[slot])
    return out


def test_prior_with_no_outcomes():
    stats = RiskStats()
    assert stats.prior_rate() == 0.5  # (0 + 1) / (0 + 2)
    rate, labelled = stats.rates("consignee", ["c-1", "", "c-2"])
    assert rate[0] == rate[2] == 0.5 and labelled[0] == labelled[2] == 0.0
    assert math.isnan(rate[1]) and math.isnan(labelled[1])
    assert rate.dtype == labelled.dtype == np.float64
    assert len(stats.tables["consignee"]) == 0  # reading never adds keys


def test_rates_are_the_formula_computed_by_hand():
    stats = RiskStats()
    assert stats.observe([joined("p1", True, "a"), joined("p2", False, "a"), joined("p3", True, "a"),
                          joined("p4", False, "b", hs6=("610910", "610910", "420222"))]) == 4
    p0 = (2 + 1) / (4 + 2)
    assert stats.prior_rate() == p0
    rate, labelled = stats.rates("consignee", ["a", "b", "z"])
    assert labelled.tolist() == [3.0, 1.0, 0.0]
    assert rate.tolist() == [(2 + 10 * p0) / (3 + 10), (0 + 10 * p0) / (1 + 10), p0]
    rate, labelled = stats.rates("hs6", ["610910", "420222"])  # a key twice in one parcel counts once
    assert labelled.tolist() == [4.0, 1.0] and rate.tolist() == [(2 + 10 * p0) / 14, (0 + 10 * p0) / 11]
    rate, labelled = stats.rates("origin_hs6", ["cn|420222"])
    assert labelled.tolist() == [1.0]
    assert PRIOR_STRENGTH == 10.0


def test_rates_agree_with_the_entity_statistics_of_the_model():
    outcomes = [joined(f"p{i}", i % 3 == 0, f"c-{i % 4}") for i in range(30)]
    stats = RiskStats()
    stats.observe(outcomes)
    entity = EntityStats(kinds={"consignee": ("consignee_id",)})
    entity.read_and_count([o.parcel_id for o in outcomes], {"consignee_id": [o.entities["consignee"][0]
                                                                             for o in outcomes]})
    entity.observe((o.parcel_id, o.illicit) for o in outcomes)
    keys = ["c-0", "c-1", "c-2", "c-3", "c-9"]
    got = entity.read_and_count(["q"] * 5, {"consignee_id": keys})
    rate, labelled = stats.rates("consignee", keys)
    assert rate.tolist() == got[:, 0].tolist() and labelled.tolist() == got[:, 1].tolist()


def test_observing_the_same_outcomes_twice_counts_them_once():
    outcomes = [joined(f"p{i}", i % 2 == 0, f"c-{i % 3}") for i in range(10)]
    once = RiskStats()
    assert once.observe(outcomes) == 10
    twice = RiskStats()
    assert twice.observe(outcomes) == 10
    assert twice.observe(outcomes) == 0
    assert twice.observe(outcomes[3:5]) == 0
    assert counts(twice) == counts(once) and twice.kept == 10


def test_a_later_outcome_for_a_parcel_replaces_the_earlier_one():
    stats = RiskStats()
    stats.observe([joined("p1", False, "a")])
    assert stats.observe([joined("p1", True, "a", ms=T0 + 1000)]) == 1
    only = RiskStats()
    only.observe([joined("p1", True, "a", ms=T0 + 1000)])
    assert counts(stats) == counts(only) == {
        "global": (1.0, 1.0), ("consignee", "a"): (1.0, 1.0), ("seller", "s-1"): (1.0, 1.0),
        ("origin", "cn"): (1.0, 1.0), ("hs6", "610910"): (1.0, 1.0), ("origin_hs6", "cn|610910"): (1.0, 1.0)}
    # and back, and to other entities: the first consignee keeps nothing of p1
    stats.observe([joined("p1", False, "a")])
    stats.observe([joined("p1", True, "b")])
    rate, labelled = stats.rates("consignee", ["a", "b"])
    assert labelled.tolist() == [0.0, 1.0] and stats.outcomes == 1.0


def test_missing_keys_and_unknown_kinds_are_ignored():
    stats = RiskStats()
    stats.observe([JoinedOutcome("p1", T0, True, {"consignee": ["", "a", "a"], "seller": [], "declarant": ["d"]})])
    assert counts(stats) == {"global": (1.0, 1.0), ("consignee", "a"): (1.0, 1.0)}
    assert stats.rates("seller", ["s"])[1].tolist() == [0.0]


def test_retention_forgets_the_parcel_but_keeps_its_counts():
    stats = RiskStats(retention_ms=10 * DAY_MS)
    stats.observe([joined("old", True, "a", ms=T0), joined("mid", False, "a", ms=T0 + 5 * DAY_MS)])
    assert stats.kept == 2
    stats.observe([joined("new", False, "b", ms=T0 + 10 * DAY_MS)])  # "old" is now exactly at the horizon
    assert stats.kept == 2 and stats.rates("consignee", ["a"])[1].tolist() == [2.0]
    # A replay of the forgotten outcome is too old to apply (it could not be de-duplicated): no double count.
    assert stats.observe([joined("old", True, "a", ms=T0)]) == 0 and stats.too_old == 1
    assert stats.rates("consignee", ["a"])[1].tolist() == [2.0] and stats.outcomes == 3.0
    # A late outcome within the retention is applied, and a replay of a kept one still is not.
    assert stats.observe([joined("late", True, "a", ms=T0 + 1 + DAY_MS)]) == 1
    assert stats.observe([joined("mid", False, "a", ms=T0 + 5 * DAY_MS)]) == 0
    assert stats.rates("consignee", ["a"])[1].tolist() == [3.0]
    assert DEFAULT_RETENTION_MS == 400 * DAY_MS


OUTCOMES = st.lists(st.builds(lambda p, y, c, h, d: joined(f"p{p}", y, f"c-{c}", hs6=h, ms=T0 + d * DAY_MS),
                              st.integers(0, 8), st.booleans(), st.integers(0, 3),
                              st.lists(st.sampled_from(["610910", "420222", "950300"]), min_size=1, max_size=3),
                              st.integers(0, 30)),
                    max_size=40)


@settings(max_examples=200, deadline=None)
@given(OUTCOMES, st.integers(1, 20))
def test_any_sequence_counts_what_its_last_outcome_per_parcel_counts(outcomes, batch):
    # Within the retention, the store after a sequence (any batching, with replays) is the store of the last
    # outcome of each parcel alone.
    stats = RiskStats()
    for i in range(0, len(outcomes), batch):
        stats.observe(outcomes[i:i + batch])
    stats.observe(outcomes[: len(outcomes) // 2])  # a replay of the first half, then the rest again
    stats.observe(outcomes[len(outcomes) // 2:])
    last = {o.parcel_id: o for o in outcomes}
    expected = RiskStats()
    expected.observe(last.values())
    assert counts(stats) == counts(expected)
    assert stats.kept == len(last)
    labelled = sum(stats.tables["consignee"].labelled)
    assert labelled == stats.outcomes == len(last)


@settings(max_examples=100, deadline=None)
@given(OUTCOMES, st.integers(0, 15))
def test_forgetting_depends_only_on_the_sequence_not_on_batching(outcomes, retention_days):
    def run(batch: int) -> RiskStats:
        s = RiskStats(retention_ms=retention_days * DAY_MS)
        for i in range(0, len(outcomes), batch):
            s.observe(outcomes[i:i + batch])
        return s

    one, many = run(1), run(max(1, len(outcomes)))
    assert counts(one) == counts(many) and one.kept == many.kept and one.too_old == many.too_old


def test_joined_records_round_trip_and_rebuild_the_store():
    outcomes = [joined(f"p{i}", i % 2 == 1, f"c-{i % 3}", ms=T0 + i) for i in range(6)]
    outcomes.append(joined("p0", True, "c-9", ms=T0 + 99))  # a re-inspection replaces p0
    records = [encode_joined(o) for o in outcomes]
    assert records[0][0] == b"p0" and orjson.loads(records[0][1])["entities"]["origin_hs6"] == ["cn|610910"]
    assert [decode_joined(v) for _, v in records] == outcomes
    live = RiskStats()
    live.observe(outcomes)
    rebuilt = RiskStats()
    # What compaction keeps (the last record per key), plus a tombstone and a record that is not one of ours.
    compacted = list({k: v for k, v in records}.values())
    assert rebuilt.rebuild([None, *compacted, b"", b"{oops"]) == 6
    assert counts(rebuilt) == counts(live) and rebuilt.unreadable == 1


@pytest.mark.parametrize("value", [b"[]", b'{"v": 2}', b'{"v": 1, "parcel_id": "p", "inspected_ms": 1.5, '
                                                       b'"illicit": true, "entities": {}}',
                                   b'{"v": 1, "parcel_id": "p", "inspected_ms": 1, "illicit": 1, "entities": {}}',
                                   b'{"v": 1, "parcel_id": "p", "inspected_ms": 1, "illicit": true, '
                                   b'"entities": {"hs6": "610910"}}', b"\xff"])
def test_decode_joined_refuses_what_is_not_a_joined_outcome(value):
    with pytest.raises(ValueError):
        decode_joined(value)


def test_kinds_are_those_of_r11():
    assert RISK_KINDS == ("consignee", "seller", "origin", "hs6", "origin_hs6")
