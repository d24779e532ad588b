"""The learned model in a real worker on the embedded broker: `SCREENER_MODEL` wraps the pack's screener,
flagged parcels carry the model's reason, and decisions name the combined ruleset."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.pipeline.screening import load_screener

from ..unit.backtest.helpers import generated_history
from .helpers import WorkerProcess, consume_until, produce

pytest.importorskip("lightgbm")


@pytest.mark.timeout(240)
def test_worker_with_a_model_flags_and_explains_with_it(broker, tmp_path):
    from screener.model.train import train

    model_dir = tmp_path / "model"
    train(generated_history(manifests=30, parcels=80), load_screener("rules/default.toml"), model_dir,
          num_trees=15, label_delay_days=1.0)
    gen = ManifestGenerator(GeneratorConfig(manifests=6, parcels_per_manifest=200, seed=21, fraud_scale=5.0))
    values = [orjson.dumps(m) for m in gen.manifests()]
    ids = {label["parcel_id"] for label in gen.labels}
    worker = WorkerProcess(broker.url, tmp_path, extra_env={"SCREENER_MODEL": str(model_dir)}).start()
    try:
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), values))

        def done(out):
            # Every decision, and the flagged record of every parcel selected (it is on another topic and may
            # be read after the decisions of its batch).
            decided = [d for rec in out[worker.topic("decisions")] for d in rec["decisions"]]
            selected = {d["parcel_id"] for d in decided if d["lane"] != "green"}
            return {d["parcel_id"] for d in decided} >= ids and {
                f["parcel_id"] for f in out[worker.topic("flagged")]} >= selected

        out = asyncio.run(consume_until(broker.bootstrap, [worker.topic("decisions"), worker.topic("flagged")],
                                        done, timeout=150))
    finally:
        worker.stop()
    assert done(out), worker.log()[-3000:]
    assert {rec["ruleset"]["id"] for rec in out[worker.topic("decisions")]} == {"default+model"}
    model_flags = [f for f in out[worker.topic("flagged")] if any(r["rule_id"] == "MODEL" for r in f["reasons"])]
    assert model_flags, "the model flags some parcels"
    reason = next(r for r in model_flags[0]["reasons"] if r["rule_id"] == "MODEL")
    assert reason["values"]["top_features"] and 0.0 <= reason["values"]["probability"] <= 1.0
