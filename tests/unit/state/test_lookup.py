"""State lookups without a broker: requests and answers give the columns one local store gives, whatever the
batching and the partition count; records stay under the limit; hostile records are refused, never crash."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from screener.kafka.state_shards import Shard
from screener.kernels.partition import partitions_of
from screener.pipeline.decode import RawMessage
from screener.pipeline.processor import DEAD_LETTER, DECISIONS, BatchProcessor
from screener.rules import load_pack_screener
from screener.rules.parcels import example_parcel
from screener.state.consignee import COLUMNS, ConsigneeState
from screener.state.lookup import (
    ANSWERS,
    REQUESTS,
    ConsigneeKeys,
    ask,
    decode_answer,
    decode_request,
    encode_failure,
    encode_requests,
    fill,
    serve,
)
from screener.state.screener import StatefulScreener

PACK = "rules/stateful.toml"


@pytest.fixture(scope="module")
def rules():
    return load_pack_screener(PACK)


def parcel(pid: str, consignee: str, hour: int, cny: float) -> dict:
    return example_parcel({"consignee_id": consignee, "declared_value": cny, "paid_amount": cny + 75.5,
                           "event_time": f"2026-11-11T{hour:02d}:00:00Z",
                           "items": [{"line_value": cny, "unit_price": cny / 2}]}, pid)


def manifests(seed: int, n: int = 24) -> list[RawMessage]:
    rng = random.Random(seed)
    spellings = ["C-{}", "c-{}", "C-\u200b{}", "\uff23-{}"]     # one consignee after normalisation
    out = []
    for k in range(n):
        parcels = [parcel(f"P{k}-{j}", rng.choice(spellings).format(rng.randrange(12)), rng.randrange(1, 23),
                          rng.choice([300.0, 1500.0, 2000.0, 4000.0])) for j in range(rng.randrange(1, 9))]
        out.append(RawMessage(orjson.dumps({"schema_version": 1, "manifest_id": f"M{k}", "parcels": parcels}),
                              "manifests", k % 3, k))
    return out


class Served:
    """State partitions answering in this process, as the workers' serve-state agents do."""

    def __init__(self, partitions: int) -> None:
        self.shards = [Shard() for _ in range(partitions)]
        self.offsets = [0] * partitions
        self.requests: list[tuple[int, bytes]] = []

    def answers(self, lookup) -> dict:
        out = {}
        for asked in lookup.asked:
            p = asked.partition
            self.requests.append((p, asked.value))
            records = self.shards[p].answer(p, [RawMessage(asked.value, REQUESTS, p, self.offsets[p])]).records
            self.offsets[p] += 1
            for kind, _, value, *_ in records:
                if kind == ANSWERS:
                    answer = decode_answer(value)
                    out[answer.token] = answer
        return out


def asked_decisions(rules, batches, partitions: int, served: Served | None = None) -> dict[str, dict]:
    served = served or Served(partitions)
    screener = StatefulScreener(rules, remote=True)
    processor, keys = BatchProcessor(screener), ConsigneeKeys(partitions)
    out = {}
    for number, raws in enumerate(batches):
        prepared = processor.prepare(raws)
        lookup = ask(prepared.batches, screener, keys, 7, 1000 * number, 0, 1_000_000)
        result = processor.finish(prepared, fill(prepared.batches, lookup, served.answers(lookup)))
        out.update(decisions(result.records))
    return out


def local_decisions(rules, batches) -> dict[str, dict]:
    processor = BatchProcessor(StatefulScreener(rules, ConsigneeState()))
    out = {}
    for raws in batches:
        out.update(decisions(processor.process(raws).records))
    return out


def decisions(records) -> dict[str, dict]:
    return {d["parcel_id"]: d for kind, _, value, *_ in records if kind == DECISIONS
            for d in orjson.loads(value)["decisions"]}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_asked_columns_give_the_decisions_one_local_store_gives_whatever_the_batching(rules, seed):
    raws = manifests(seed)
    cut = random.Random(seed).randrange(1, len(raws))
    local = local_decisions(rules, [raws])
    assert asked_decisions(rules, [raws[:cut], raws[cut:]], 1) == local
    assert asked_decisions(rules, [[r] for r in raws], 1) == local
    assert any(r["rule_id"].startswith("R2_") for d in local.values() for r in d["reasons"])   # state matters here


def test_with_four_partitions_a_consignee_is_asked_of_its_one_partition_and_split_shipments_are_caught(rules):
    raws = [RawMessage(orjson.dumps({"schema_version": 1, "manifest_id": f"M{k}", "parcels": [
        parcel(f"S{k}", spelling, 2 + k, 2000.0)] + [parcel(f"O{k}-{j}", f"C-OTHER-{k}-{j}", 2, 300.0) for j in range(9)]}),
        "manifests", k, k) for k, spelling in enumerate(["C-SPLIT", "c-split", "C-\u200bSPLIT"])]
    served = Served(4)
    got = asked_decisions(rules, [[r] for r in raws], 4, served)
    reason = next(r for r in got["S2"]["reasons"] if r["rule_id"] == "R2_SPLIT_SHIPMENT_CN_9610")
    assert reason["values"]["consignee_24h_count"] == 3
    home = int(partitions_of([b"c-split"], 4)[0])
    holding = [p for p, shard in enumerate(served.shards) if b"c-split" in shard.store.keys_of(shard.store.live_slots())]
    assert holding == [home]
    assert len({p for p, _ in served.requests}) >= 2       # the batches' other consignees went elsewhere


def test_request_records_stay_under_the_limit_and_carry_every_row_once_in_order():
    rng = np.random.default_rng(5)
    n = 3000
    key_len = rng.integers(1, 60, n)
    keys = [bytes(rng.integers(97, 123, k, dtype=np.uint8)) for k in key_len]
    partition = rng.integers(-1, 4, n)
    event_ms, value, pid = rng.integers(0, 1 << 40, n), rng.random(n), rng.integers(0, 1 << 62, n).astype(np.uint64)
    asked = encode_requests(3, 10, 2, partition, key_len, lambda rows: b"".join(keys[r] for r in rows.tolist()),
                            event_ms, value, pid, 4096)
    assert all(len(a.value) <= 4096 for a in asked) and len(asked) > 4
    rows = np.concatenate([a.rows for a in asked])
    assert sorted(rows.tolist()) == np.flatnonzero(partition >= 0).tolist()
    for a in asked:
        assert (partition[a.rows] == a.partition).all() and (np.diff(a.rows) > 0).all()
        req = decode_request(a.value)
        assert req.token == a.token and req.reply == 2
        assert (req.event_ms == event_ms[a.rows]).all() and (req.pid_hash == pid[a.rows]).all()
        got = [req.key_buf[s:s + n].tobytes() for s, n in zip(req.key_start.tolist(), req.key_len.tolist())]
        assert got == [keys[r] for r in a.rows.tolist()]
    assert [a.token[1] for a in asked] == list(range(10, 10 + len(asked)))


def one_request() -> bytes:
    return encode_requests(1, 0, 0, np.zeros(2, np.int64), np.array([3, 4]), lambda rows: b"c-1c-22",
                           np.array([1_800_000_000_000] * 2), np.array([10.0, 20.0]), np.array([1, 2], np.uint64),
                           1 << 20)[0].value


def test_a_request_sent_again_as_a_new_record_changes_no_state_and_gets_the_same_columns():
    store = ConsigneeState()
    req = decode_request(one_request())
    first = serve(store, req, 5)
    again = serve(store, req, 9)          # the asker crashed and sent it again: another record, other offsets
    assert np.array_equal(first, again, equal_nan=True)
    assert first[COLUMNS.index("consignee_24h_count")].tolist() == [1.0, 1.0]
    assert store.live_events == 2


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_hostile_request_and_answer_bytes_are_refused_with_a_value_error_never_a_crash(data):
    good = one_request()
    cut = data.draw(st.integers(0, len(good)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)), max_size=4))
    value = bytearray(good[:cut] + data.draw(st.binary(max_size=8)))
    for at, b in flips:
        if at < len(value):
            value[at] = b
    for decoder in (decode_request, decode_answer):
        try:
            decoder(bytes(value))
        except ValueError:
            pass
    shard = Shard()
    records = shard.answer(0, [RawMessage(bytes(value), REQUESTS, 0, 0)]).records
    assert {r[0] for r in records} <= {ANSWERS, DEAD_LETTER, "state-changelog"}
    if any(r[0] == DEAD_LETTER for r in records):
        assert b"unreadable state request" in records[0][2]


def test_a_failed_answer_dead_letters_its_messages_with_the_owners_reason(rules):
    raws = manifests(4, 3)
    screener = StatefulScreener(rules, remote=True)
    processor, keys = BatchProcessor(screener), ConsigneeKeys(1)
    prepared = processor.prepare([raws[0]])
    lookup = ask(prepared.batches, screener, keys, 7, 0, 0, 1_000_000)
    answers = {a.token: decode_answer(encode_failure(a.token, "state partition 0: boom")) for a in lookup.asked}
    result = processor.finish(prepared, fill(prepared.batches, lookup, answers))
    dead = [orjson.loads(v) for kind, _, v, *_ in result.records if kind == DEAD_LETTER]
    assert not decisions(result.records)
    assert len(dead) == 1 and dead[0]["reason"] == "internal_error" and "boom" in dead[0]["message"]
