"""Hostile input on the real embedded broker: output and memory stay bounded, other partitions keep moving."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from screener.generator import GeneratorConfig, ManifestGenerator

from .helpers import WorkerProcess, committed_offsets, consume_until, high_watermarks, produce

BASE = next(iter(ManifestGenerator(GeneratorConfig(manifests=1, parcels_per_manifest=1, seed=1)).manifests()))["parcels"][0]


def parcel_hitting_nine_rules(i: int) -> dict:
    """A parcel of the default pack's worst kind: watchlisted, prohibited goods, undervalued, inconsistent."""
    return dict(BASE, parcel_id=f"H-{i:06d}", consignee_id="C-WATCH-0001", gross_weight_kg=0.1, net_weight_kg=2.0,
                declared_value=1.0, paid_amount=900.0, currency="CNY",
                items=[{"hs_code": "9302000000", "description": "cocaine gift", "quantity": 3, "unit_price": 5.0,
                        "line_value": 99.0},
                       {"hs_code": "8507600090", "description": "gift", "quantity": 1, "unit_price": 1.0,
                        "line_value": 1.0}])


def good_manifests(n: int) -> list[bytes]:
    return [orjson.dumps(m) for m in ManifestGenerator(GeneratorConfig(manifests=n, parcels_per_manifest=40,
                                                                        seed=31)).manifests()]


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a live process (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(300)
def test_a_manifest_whose_decisions_exceed_the_record_limit_is_split_and_nothing_stalls(broker, tmp_path):
    parcels = []
    while True:   # as many as fit under the 1 MiB input limit: ~1,400 parcels, ~6 MB of decisions
        parcels.append(parcel_hitting_nine_rules(len(parcels)))
        if len(parcels) % 100 == 0 and len(orjson.dumps({"parcels": parcels})) > 1_000_000:
            parcels = parcels[:-100]
            break
    hostile = orjson.dumps({"schema_version": 1, "manifest_id": "HOSTILE", "parcels": parcels})
    assert len(hostile) < 1 << 20
    good = good_manifests(11)
    good_ids = {p["parcel_id"] for v in good for p in orjson.loads(v)["parcels"]}
    worker = WorkerProcess(broker.url, tmp_path, partitions=4).start()
    try:
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), [hostile] + good))

        def done(out):
            decided = {d["parcel_id"] for rec in out[worker.topic("decisions")] for d in rec["decisions"]}
            return decided >= good_ids | {p["parcel_id"] for p in parcels}

        out = asyncio.run(consume_until(broker.bootstrap, [worker.topic("decisions")], done, timeout=200))
        parts = [rec for rec in out[worker.topic("decisions")] if rec["manifest_id"] == "HOSTILE"]
        decided = {d["parcel_id"] for rec in parts for d in rec["decisions"]}
        assert decided == {p["parcel_id"] for p in parcels}, worker.log()[-3000:]
        assert len({rec["part"] for rec in parts}) == parts[0]["parts"] > 1
        assert all(len(orjson.dumps(rec)) <= 1_000_000 for rec in parts)
        assert all(len(d["reasons"]) >= 9 for rec in parts for d in rec["decisions"])
        others = {d["parcel_id"] for rec in out[worker.topic("decisions")] if rec["manifest_id"] != "HOSTILE"
                  for d in rec["decisions"]}
        assert others == good_ids
        high = asyncio.run(high_watermarks(broker.bootstrap, worker.topic("manifests")))
        for _ in range(40):
            committed = asyncio.run(committed_offsets(broker.bootstrap, worker.app_id, worker.topic("manifests")))
            committed = {p: c or 0 for p, c in committed.items()}   # an empty partition has nothing committed
            if committed == high:
                break
            asyncio.run(asyncio.sleep(0.5))
        assert committed == high
    finally:
        worker.stop()


@pytest.mark.timeout(300)
def test_half_a_million_bad_parcels_make_one_dead_letter_and_bounded_memory(broker, tmp_path):
    zeros = b'{"schema_version":1,"manifest_id":"Z","parcels":[' + b",".join([b"0"] * 500_000) + b"]}"
    good = good_manifests(2)
    good_ids = {p["parcel_id"] for v in good for p in orjson.loads(v)["parcels"]}
    worker = WorkerProcess(broker.url, tmp_path, partitions=1).start()
    try:
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), [zeros, zeros] + good))

        def done(out):
            decided = {d["parcel_id"] for rec in out[worker.topic("decisions")] for d in rec["decisions"]}
            return decided >= good_ids and len(out[worker.topic("dead-letter")]) >= 2

        out = asyncio.run(consume_until(broker.bootstrap, [worker.topic(t) for t in ("decisions", "dead-letter")],
                                        done, timeout=200))
        dead = out[worker.topic("dead-letter")]
        assert len(dead) == 2, [d["reason"] for d in dead]
        assert all(d["reason"] == "too_many_bad_parcels" for d in dead)
        assert dead[0]["bad_parcels"]["count"] == 500_000
        assert dead[0]["bad_parcels"]["by_reason"] == {"invalid_parcel_type": 500_000}
        assert len(dead[0]["bad_parcels"]["first"]) == 10
        # A receipt on `decisions` for each bad manifest: no parcel decided, all of them dead-lettered.
        receipts = [rec for rec in out[worker.topic("decisions")] if rec["manifest_id"] == "Z"]
        assert len(receipts) == 2 and all(r["decisions"] == [] and r["dead_lettered"] == 500_000 for r in receipts)
        # Was 2.6 GB and growing with every copy; the reference path now holds one message at a time.
        assert peak_rss_mb(worker.proc.pid) < 1024
    finally:
        worker.stop()
