from collections import Counter

import orjson

from screener.generator import FRAUD_KINDS, GeneratorConfig, ManifestGenerator
from screener.pipeline.columns import build_batch
from screener.pipeline.decode import RawMessage, decode


def _gen(seed=3, manifests=20):
    return ManifestGenerator(GeneratorConfig(manifests=manifests, parcels_per_manifest=500, seed=seed))


def test_same_seed_same_manifests_different_seed_different():
    a = [orjson.dumps(m) for m in _gen(3, 3).manifests()]
    b = [orjson.dumps(m) for m in _gen(3, 3).manifests()]
    c = [orjson.dumps(m) for m in _gen(4, 3).manifests()]
    assert a == b and a != c


def test_generated_parcels_are_valid_and_fraud_is_planted_at_the_configured_shares():
    gen = _gen()
    messages = [decode(RawMessage(orjson.dumps(m)), 1 << 20) for m in gen.manifests()]
    batch, rejected = build_batch(messages)
    assert rejected == [] and batch.n == 10_000
    kinds = Counter(label["finding_code"] for label in gen.labels)
    for kind, share in FRAUD_KINDS.items():
        assert 0.3 * share * 10_000 <= kinds[kind] <= 2.5 * share * 10_000, kind


def test_most_buyers_get_one_parcel_and_a_few_frequent_ones_many():
    gen = _gen(manifests=4)
    counts = Counter(p["consignee_id"] for m in gen.manifests() for p in m["parcels"])
    top = counts.most_common(1)[0][1]
    once = sum(1 for n in counts.values() if n == 1)
    # 2,000 parcels: the most frequent buyer gets tens (its split shipments are there to find), while
    # nine in ten buyers get one (so R2/R3 do not fire on the bulk of the traffic).
    assert top >= 15 and once >= 0.9 * len(counts) and len(counts) > 1_500


def test_generated_manifests_and_bare_parcels_match_the_manifest_schema():
    from screener.schemas import validator

    check = validator("manifest")
    m = _gen(manifests=1).manifest(0)
    check(m)
    check({"schema_version": 1, **m["parcels"][0]})
