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


def test_decisions_are_split_under_the_record_limit_and_an_entry_too_large_for_any_record_is_reported():
    gen = ManifestGenerator(GeneratorConfig(manifests=3, parcels_per_manifest=120, seed=4))
    decs = [decode(RawMessage(orjson.dumps(m), "manifests", 0, i), 1 << 20) for i, m in enumerate(gen.manifests())]
    batch, _ = BatchBuilder().build(decs)
    screener = load_screener("rules/default.toml")
    result = screener.screen(batch)
    bounds = np.searchsorted(batch.message_index, np.arange(len(decs) + 1)).tolist()
    messages = [MessageOut(d.manifest_id, {"topic": "t", "partition": 0, "offset": i}, bounds[i], bounds[i + 1])
                for i, d in enumerate(decs)]
    limit = 3000
    out = encode(messages, batch, result, screener, "now", lambda i: b"{}", limit)
    records = [orjson.loads(v) for _, v in out.decisions]
    assert all(len(v) <= limit for _, v in out.decisions)
    for d in decs:
        parts = [r for r in records if r["manifest_id"] == d.manifest_id]
        assert sorted(r["part"] for r in parts) == list(range(1, parts[0]["parts"] + 1)) and len(parts) > 1
    decided = [x["parcel_id"] for r in records for x in r["decisions"]]
    too_large = {batch.parcel_ids[row] for _, row, _ in out.too_large}
    # Every parcel exactly once: in a decisions part, or reported as too large for any record.
    assert sorted(decided + list(too_large)) == sorted(batch.parcel_ids)
    assert len(decided) == len(set(decided))
