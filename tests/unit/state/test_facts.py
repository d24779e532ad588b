"""Facts of selected parcels (screener/state/facts.py) and the outcome join (screener/kafka/feedback.py)."""

from __future__ import annotations

import orjson
import pytest
from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from screener.kafka.feedback import join_outcomes
from screener.pipeline.decode import RawMessage
from screener.pipeline.processor import DEAD_LETTER, BatchProcessor
from screener.rules import load_pack_screener
from screener.state.facts import DAY_MS, FactStore, facts_records, read_facts
from screener.state.risk import JOINED_TOPIC, RiskStats, decode_joined
from screener.state.screener import StatefulScreener

from .test_stateful_screener import manifest, parcel

ENTITIES = {"consignee": ["c-1"], "seller": ["s-1"], "origin": ["cn"], "hs6": ["610910"],
            "origin_hs6": ["cn|610910"]}


def kafka_partition(pid: str, n: int) -> int:
    """Where any Kafka client's default partitioner puts key `pid` (an outcome keyed by parcel_id)."""
    return (murmur2(pid.encode()) & 0x7FFFFFFF) % n


@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=60, unique=True),
       st.integers(1, 8), st.integers(200, 3000))
def test_facts_land_on_the_partition_of_their_outcome_and_records_stay_under_the_limit(pids, n, limit):
    facts = [(pid, 1_000 + i, ENTITIES) for i, pid in enumerate(pids)]
    records = facts_records(facts, n, limit)
    seen = []
    for partition, value in records:
        assert len(value) <= limit or value.count(b"\n") == 1   # only a single fact may pass the limit
        for pid, ms, entities in read_facts(value):
            assert kafka_partition(pid, n) == partition
            seen.append((pid, ms, entities))
    assert sorted(seen) == sorted(facts)
    whole = facts_records(facts, n, 1 << 30)          # no limit in the way: one record per partition
    assert sorted(p for p, _ in whole) == sorted({kafka_partition(pid, n) for pid in pids})


def test_a_fact_older_than_the_retention_is_forgotten_and_a_late_one_is_not_kept():
    store = FactStore(retention_ms=2 * DAY_MS)
    store.add([("old", 0, ENTITIES), ("mid", DAY_MS, ENTITIES)])
    store.add([("new", 2 * DAY_MS + 1, ENTITIES), ("late", 1, ENTITIES)])
    assert store.join("old", 5, True) is None and store.join("late", 5, True) is None
    joined = store.join("mid", 7, True)
    assert joined.entities == ENTITIES and joined.inspected_ms == 7 and joined.illicit
    assert len(store) == 2


@pytest.mark.parametrize("value", [b"not json\n", b'{"parcel_id": 5, "event_ms": 1, "entities": {}}\n', b"[1]\n"])
def test_unreadable_fact_records_are_counted_not_kept(value):
    store = FactStore()
    store.add_records([value, None, b""])
    assert store.unreadable == 1 and len(store) == 0


def test_every_outcome_is_joined_or_dead_lettered_with_its_reason():
    store = FactStore()
    store.add([("P-1", 10, ENTITIES)])
    values = [orjson.dumps({"parcel_id": "P-1", "inspected_at": 20, "illicit": True}),
              orjson.dumps({"parcel_id": "P-9", "inspected_at": 20, "illicit": False}),
              b"{oops", orjson.dumps({"parcel_id": "P-1", "inspected_at": 20, "illicit": "yes"})]
    raws = [RawMessage(v, "inspections", 0, k) for k, v in enumerate(values)]
    records, counts = join_outcomes(raws, store, 1 << 20)
    assert counts == {"joined": 1, "unknown_parcel": 1, "invalid": 2}
    assert [r[0] for r in records] == [JOINED_TOPIC, DEAD_LETTER, DEAD_LETTER, DEAD_LETTER]
    joined = decode_joined(records[0][2])
    assert joined.parcel_id == "P-1" and joined.entities == ENTITIES and joined.illicit
    reasons = [orjson.loads(r[2])["reason"] for r in records[1:]]
    assert reasons == ["unknown_parcel", "not_json", "wrong_type"]


def test_only_selected_parcels_are_kept_and_their_outcomes_move_r11():
    risk = RiskStats()
    screener = StatefulScreener(load_pack_screener("rules/stateful.toml"), risk=risk, keep_selected=True)
    processor = BatchProcessor(screener)
    # The third and fourth CNY 2,000 parcels of C-X pass the CNY 5,000 window total (R2): selected.
    processor.process([manifest(0, [parcel(f"X{k}", "C-\u200bX", k, 2000.0) for k in range(1, 5)])])
    selected = screener.take_selected()
    assert [pid for pid, _, _ in selected] == ["X3", "X4"]
    assert selected[0][2]["consignee"] == ["c-x"]          # normalised: invisible character and case
    assert screener.take_selected() == []
    store = FactStore()
    store.add(selected)
    risk.observe([store.join(pid, 0, True) for pid in ("X3", "X4")])
    rate, labelled = risk.rates("consignee", ["c-x"])
    assert labelled[0] == 2 and rate[0] > risk.prior_rate()
