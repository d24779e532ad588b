"""Stateful packs on the real broker: consignee state per partition, asked for by batch, recovered after SIGKILL."""

from __future__ import annotations

import asyncio
import re
import time

import orjson
import pytest

from screener.kafka.broker import free_port
from screener.kernels.partition import partitions_of
from screener.rules.parcels import example_parcel

from .helpers import WorkerProcess, consume_until, metrics_until, produce

PACK = "rules/stateful.toml"


def manifest(k: int, parcels: list[dict]) -> bytes:
    return orjson.dumps({"schema_version": 1, "manifest_id": f"M{k}", "parcels": parcels})


def parcel(pid: str, consignee: str, hour: int, cny: float = 2000.0) -> dict:
    return example_parcel({"consignee_id": consignee, "declared_value": cny, "paid_amount": cny + 75.5,
                           "event_time": f"2026-11-11T{hour:02d}:00:00Z",
                           "items": [{"line_value": cny, "unit_price": cny / 2}]}, pid)


def decided(out, topic) -> dict[str, list[dict]]:
    by: dict[str, list[dict]] = {}
    for record in out[topic]:
        for d in record["decisions"]:
            by.setdefault(d["parcel_id"], []).append(d)
    return by


def rules_of(d: dict) -> list[str]:
    return [r["rule_id"] for r in d["reasons"]]


@pytest.mark.timeout(240)
def test_split_shipment_caught_across_manifests_on_different_partitions_with_two_workers(broker, tmp_path):
    env = {"SCREENER_PACK": PACK}
    one = WorkerProcess(broker.url, tmp_path, partitions=4, extra_env=env)
    two = WorkerProcess(broker.url, tmp_path / "two", prefix=one.prefix, partitions=4, extra_env=env)
    (tmp_path / "two").mkdir()
    topic = one.topic("decisions")
    # Consignee C-SPLIT's three CNY 2,000 parcels come in three manifests (spread over the manifests
    # topic's partitions, round robin), among other consignees' parcels; the third passes CNY 5,000.
    # A fourth manifest holds only an invalid parcel: its receipt still comes.
    values = [manifest(k, [parcel(f"S{k}", ["C-SPLIT", "c-split", "C-\u200bSPLIT"][k], 2 + k)]
                       + [parcel(f"O{k}-{j}", f"C-OTHER-{k}-{j}", 2 + k, 300.0) for j in range(20)])
              for k in range(3)]
    values.append(manifest(9, [{"parcel_id": "BAD"}]))
    try:
        one.start()
        two.start()
        asyncio.run(produce(broker.bootstrap, one.topic("manifests"), values[:1]))
        out = asyncio.run(consume_until(broker.bootstrap, [topic], lambda o: "S0" in decided(o, topic), 120))
        asyncio.run(produce(broker.bootstrap, one.topic("manifests"), values[1:2]))
        asyncio.run(consume_until(broker.bootstrap, [topic], lambda o: "S1" in decided(o, topic), 60))
        asyncio.run(produce(broker.bootstrap, one.topic("manifests"), values[2:]))

        def done(o):
            # Everything, not just the last parcels: a read may see some partitions before others.
            got = decided(o, topic)
            return ({"S2"} | {f"O{k}-{j}" for k in range(3) for j in range(20)} <= got.keys()
                    and any(r["manifest_id"] == "M9" for r in o[topic]))

        out = asyncio.run(consume_until(broker.bootstrap, [topic], done, 60))
    finally:
        one.stop()
        two.stop()
    got = decided(out, topic)
    assert "R2_SPLIT_SHIPMENT_CN_9610" not in rules_of(got["S1"][0])
    reason = next(r for r in got["S2"][0]["reasons"] if r["rule_id"] == "R2_SPLIT_SHIPMENT_CN_9610")
    assert reason["values"]["consignee_24h_count"] == 3, (reason, one.log()[-3000:])
    assert all(len(got[f"O{k}-{j}"]) >= 1 for k in range(3) for j in range(20))
    receipt = next(r for r in out[topic] if r["manifest_id"] == "M9")
    assert receipt["decisions"] == [] and receipt["dead_lettered"] == 1
    # M0's consignees live in several state partitions, yet its decisions come in one receipt, as stateless.
    spanned = set(partitions_of([b"c-split"] + [f"c-other-0-{j}".encode() for j in range(20)], 4).tolist())
    assert len(spanned) >= 2, spanned
    receipts = [r for r in out[topic] if r["manifest_id"] == "M0"]
    assert {len(r["decisions"]) for r in receipts} == {21} and "shard" not in receipts[0], receipts[0].keys()


@pytest.mark.timeout(240)
def test_window_totals_survive_sigkill_and_nothing_is_counted_twice(broker, tmp_path):
    port = free_port()
    worker = WorkerProcess(broker.url, tmp_path, partitions=2,
                           extra_env={"SCREENER_PACK": PACK, "SCREENER_METRICS_PORT": str(port)})
    topic = worker.topic("decisions")
    try:
        worker.start()
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"),
                            [manifest(k, [parcel(f"K{k}", "C-KEEP", 1 + k, 1500.0)]) for k in range(3)]))
        asyncio.run(consume_until(broker.bootstrap, [topic], lambda o: "K2" in decided(o, topic), 120))
        worker.kill()          # state is only on the broker now
        worker.start()
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), [manifest(3, [parcel("K3", "C-KEEP", 5, 1500.0)])]))
        out = asyncio.run(consume_until(broker.bootstrap, [topic], lambda o: "K3" in decided(o, topic), 120))
        # SREs see the recovered state: one consignee, its four window events (sampled every few seconds).
        state = {("screener_state_entries", (("kind", "consignee"), ("name", entry))): value
                 for entry, value in (("entities", 1.0), ("window_events", 4.0))}
        assert metrics_until(port, lambda m: all(m.get(k) == v for k, v in state.items()), 60), worker.log()[-3000:]
        # ...and the lookups' round trips: the restarted worker asked the state partitions for K3's columns.
        assert metrics_until(port, lambda m: m.get(("screener_state_lookup_seconds_count", ()), 0) >= 1, 10)
    finally:
        worker.stop()
    got = decided(out, topic)
    for pid in ("K0", "K1", "K2"):      # 4,500 CNY in three parcels: under the limit
        assert all("R2_SPLIT_SHIPMENT_CN_9610" not in rules_of(d) for d in got[pid]), got[pid]
    # The fourth parcel sees the three before it, recovered from the changelog, each counted once (a replay
    # of uncommitted input after the kill must not add them again).
    reason = next(r for r in got["K3"][-1]["reasons"] if r["rule_id"] == "R2_SPLIT_SHIPMENT_CN_9610")
    assert reason["values"]["consignee_24h_count"] == 4, worker.log()[-3000:]
    restarted = (tmp_path / "worker-2.log").read_text(errors="replace")
    assert re.search(r"state partition \d+: 1 entities from [1-9]", restarted), restarted[-3000:]


@pytest.mark.timeout(300)
def test_a_worker_joining_mid_stream_takes_state_partitions_over_and_nothing_stalls_or_counts_twice(broker, tmp_path):
    # Worker one screens alone, then two joins while manifests keep coming: the rebalance moves manifests and
    # state partitions (and their stores) while batches wait for answers. Every parcel is decided, and the
    # consignee that gets one parcel per manifest is counted once per parcel, whoever answered for it.
    env = {"SCREENER_PACK": PACK}
    one = WorkerProcess(broker.url, tmp_path, partitions=4, extra_env=env)
    (tmp_path / "two").mkdir()
    two = WorkerProcess(broker.url, tmp_path / "two", prefix=one.prefix, partitions=4, extra_env=env)
    topic = one.topic("decisions")
    values = [manifest(k, [parcel(f"R{k}", "C-REPEAT", 2 + k // 8, 300.0)]
                       + [parcel(f"N{k}-{j}", f"C-NEW-{k}-{j}", 2 + k // 8, 300.0) for j in range(30)])
              for k in range(24)]
    first = {f"R{k}" for k in range(8)}
    try:
        one.start()
        asyncio.run(produce(broker.bootstrap, one.topic("manifests"), values[:8]))
        asyncio.run(consume_until(broker.bootstrap, [topic], lambda o: first <= decided(o, topic).keys(), 120))
        two.start()
        for lo in range(8, 23, 3):        # the rest while two joins and the partitions move
            asyncio.run(produce(broker.bootstrap, one.topic("manifests"), values[lo:min(lo + 3, 23)]))
            time.sleep(1.0)
        every = {p["parcel_id"] for v in values[:23] for p in orjson.loads(v)["parcels"]}
        asyncio.run(consume_until(broker.bootstrap, [topic], lambda o: every <= decided(o, topic).keys(), 150))
        asyncio.run(produce(broker.bootstrap, one.topic("manifests"), values[23:]))
        out = asyncio.run(consume_until(broker.bootstrap, [topic], lambda o: "R23" in decided(o, topic), 60))
    finally:
        one.stop()
        two.stop()
    got = decided(out, topic)
    assert every <= got.keys()
    last = got["R23"][-1]
    reason = next(r for r in last["reasons"] if r["rule_id"] == "R2_SPLIT_SHIPMENT_CN_9610")
    assert reason["values"]["consignee_24h_count"] == 24, (reason, one.log()[-3000:], two.log()[-3000:])
    assert "state partition" in two.log(), two.log()[-3000:]     # two did take state partitions over
