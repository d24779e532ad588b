"""The starter kernel against a plain-Python reference of the same rule."""

import math

import numpy as np
import orjson

from screener.columns import BatchBuilder
from screener.generator import GeneratorConfig, ManifestGenerator
from screener.kernels.hashing import fnv1a64_reference, seeded_uniform_reference
from screener.kernels.starter import StarterScreener
from screener.manifest import RawMessage, decode


def reference_screen(s: StarterScreener, parcel: dict) -> tuple[int, float, bool, bool]:
    """(lane, score, undervalued, random) for one parcel, written the obvious way."""
    best = max(parcel["items"], key=lambda it: it["line_value"])
    band = s._band_of(best["hs_code"])
    kg = parcel.get("net_weight_kg") or parcel["gross_weight_kg"]
    vpk = parcel["declared_value"] * s.fx.get(parcel["currency"], math.nan) / kg
    hit = vpk < band
    score = s.weight if hit else 0.0
    lane = 2 if score >= s.red else 1 if score >= s.yellow else 0
    rnd = lane == 0 and seeded_uniform_reference(fnv1a64_reference(parcel["parcel_id"]), int(s.seed)) < s.random_rate
    return (1 if rnd else lane), score, hit, rnd


def test_kernel_agrees_with_reference_on_generated_traffic():
    gen = ManifestGenerator(GeneratorConfig(manifests=6, parcels_per_manifest=500, seed=9))
    manifests = list(gen.manifests())
    batch, _ = BatchBuilder().build([decode(RawMessage(orjson.dumps(m)), 1 << 22) for m in manifests])
    s = StarterScreener()
    res = s.screen(batch)
    parcels = [p for m in manifests for p in m["parcels"]]
    expected = [reference_screen(s, p) for p in parcels]
    assert res.lane.tolist() == [e[0] for e in expected]
    assert np.allclose(res.score, [e[1] for e in expected])
    assert ((res.hits[:, 0] & 1) > 0).tolist() == [e[2] for e in expected]
    assert res.random.tolist() == [e[3] for e in expected]
    assert 0 < sum(e[2] for e in expected) < len(parcels)  # the rule fires, but not on everything
