"""The bulk encoder writes what orjson would, for template parcels and for parcels with their own entry."""

import numpy as np
import orjson

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.pipeline.batch import ScreenResult
from screener.pipeline.columns import BatchBuilder
from screener.pipeline.decode import RawMessage, decode
from screener.pipeline.encode import MessageOut, encode
from screener.pipeline.screening import load_screener


class ScoresEverything:
    """A screener whose score is not the rules' alone: parcels no rule touched still score above 0."""

    def __init__(self, rules):
        self.rules, self.ruleset_id, self.version, self.hash = rules, "x", "1", "h"

    def screen(self, batch):
        base = self.rules.screen(batch)
        return ScreenResult(base.lane, np.full(batch.n, 0.125), base.hits, base.random)

    def explain_many(self, batch, result, rows):
        return self.rules.explain_many(batch, result, rows)


def test_a_parcel_no_rule_touched_keeps_a_nonzero_score():
    m = next(iter(ManifestGenerator(GeneratorConfig(manifests=1, parcels_per_manifest=50, seed=2)).manifests()))
    dec = decode(RawMessage(orjson.dumps(m), "manifests", 0, 0), 1 << 20)
    batch, _ = BatchBuilder().build([dec])
    screener = ScoresEverything(load_screener("rules/default.toml"))
    result = screener.screen(batch)
    out = encode([MessageOut("M", {"topic": "t", "partition": 0, "offset": 0}, 0, batch.n)], batch, result, screener,
                 "now", lambda i: b"{}", 1_000_000)
    decisions = orjson.loads(out.decisions[0][1])["decisions"]
    assert [d["score"] for d in decisions] == [0.125] * batch.n
    assert [d["parcel_id"] for d in decisions] == [p["parcel_id"] for p in m["parcels"]]
