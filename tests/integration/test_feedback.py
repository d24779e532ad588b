"""Inspection feedback on the real broker: outcomes published with `screener inspect`, joined by the worker to
the facts it kept of the parcels it selected, raise the R11 score of the importer's later parcels."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from click.testing import CliRunner

from screener.kafka.broker import free_port
from screener.kafka.inspect_cli import inspect

from .helpers import WorkerProcess, consume_until, metrics_until, produce
from .test_stateful_worker import PACK, decided, manifest, parcel, rules_of

R11 = "R11_REPEAT_OFFENDER_CONSIGNEE"



@pytest.mark.timeout(300)
def test_outcomes_marking_an_importers_parcels_illicit_raise_later_parcels_r11_score(broker, tmp_path):
    port = free_port()
    worker = WorkerProcess(broker.url, tmp_path, partitions=2,
                           extra_env={"SCREENER_PACK": PACK, "SCREENER_METRICS_PORT": str(port)})
    decisions, dead = worker.topic("decisions"), worker.topic("dead-letter")
    joined = worker.topic("outcomes-joined")
    # Day 1: six CNY 2,000 parcels to C-BAD; from the third on its 24 h total passes CNY 5,000 (R2, yellow),
    # so B3..B6 are selected and their facts kept; B1 stays green. C-GOOD's parcel is a control.
    day1 = [parcel(f"B{k}", "C-BAD", 1 + k) for k in range(1, 7)] + [parcel("G1", "C-GOOD", 1, 300.0)]
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_text("".join(
        orjson.dumps({"parcel_id": pid, "inspected_at": "2026-11-12T09:00:00Z", "illicit": True,
                      "lane": "yellow", "finding_code": "UNDERVALUATION"}).decode() + "\n"
        for pid in ("B3", "B4", "B5", "B6", "B1", "NEVER-SEEN")))
    # Day 3 (outside the window): one small parcel each; only C-BAD's record speaks against it.
    later = lambda pid, who: parcel(pid, who, 0, 100.0) | {"event_time": "2026-11-14T08:00:00Z"}  # noqa: E731
    try:
        worker.start()
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), [manifest(1, day1)]))
        asyncio.run(consume_until(broker.bootstrap, [decisions], lambda o: "B6" in decided(o, decisions), 120))
        result = CliRunner().invoke(inspect, [str(outcomes), "--broker", broker.url,
                                              "--topic-prefix", worker.prefix], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        asyncio.run(consume_until(broker.bootstrap, [joined], lambda o: len(o[joined]) >= 4, 60))
        # R11 learns from outcomes-joined as it reads it: the later parcels are published once the worker says
        # it has taken the four in (before, they could be screened first: a flaky test).
        assert metrics_until(port, lambda m: m.get(("screener_r11_outcomes_learned_total", ()), 0) >= 4, 60), \
            worker.log()[-3000:]
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"),
                            [manifest(2, [later("B7", "C-BAD"), later("G2", "C-GOOD")])]))
        out = asyncio.run(consume_until(
            broker.bootstrap, [decisions, dead],
            lambda o: "B7" in decided(o, decisions) and len(o[dead]) >= 2, 60))
    finally:
        worker.stop()
    got = decided(out, decisions)
    assert all(R11 not in rules_of(d) for pid in ("B1", "B3", "B6", "G1") for d in got[pid])
    b7, g2 = got["B7"][-1], got["G2"][-1]
    reason = next((r for r in b7["reasons"] if r["rule_id"] == R11), None)
    assert reason is not None, (b7, worker.log()[-3000:])
    assert reason["values"]["consignee_inspections"] == 4
    assert reason["values"]["consignee_illicit_rate"] > 0.5
    assert b7["score"] > g2["score"] and R11 not in rules_of(g2)
    # B1 was green (no facts kept) and NEVER-SEEN was never decided: both dead-lettered, named.
    unknown = sorted(d["parcel_id"] for d in out[dead] if d["reason"] == "unknown_parcel")
    assert unknown == ["B1", "NEVER-SEEN"], out[dead]
