"""BatchProcessor: every input ends as decisions or dead letters, deterministically, never an exception."""

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.pipeline.decode import RawMessage
from screener.pipeline.processor import DEAD_LETTER, DECISIONS, FLAGGED, BatchProcessor
from screener.pipeline.screening import load_screener
from screener.schemas import validator


def raw_manifests(n=4, per=100, seed=2):
    gen = ManifestGenerator(GeneratorConfig(manifests=n, parcels_per_manifest=per, seed=seed))
    return [RawMessage(orjson.dumps(m), "manifests", 0, i) for i, m in enumerate(gen.manifests())]


@pytest.fixture(scope="module")
def screener():
    return load_screener("rules/default.toml")


def by_kind(result):
    out = {DECISIONS: [], FLAGGED: [], DEAD_LETTER: []}
    for kind, _key, value in result.records:
        out[kind].append(orjson.loads(value))
    return out


def test_outputs_match_their_schemas(screener):
    raws = raw_manifests() + [RawMessage(b"nope", "manifests", 0, 9)]
    out = by_kind(BatchProcessor(screener).process(raws))
    assert len(out[DECISIONS]) == 4 and out[FLAGGED] and len(out[DEAD_LETTER]) == 1
    for name, kind in (("decision", DECISIONS), ("flagged", FLAGGED), ("dead-letter", DEAD_LETTER)):
        check = validator(name)
        for record in out[kind]:
            check(record)


def test_decisions_are_the_same_on_any_worker_and_after_a_warm_up(screener):
    raws = raw_manifests(seed=8)

    def decisions(processor):
        out = by_kind(processor.process(raws))
        return [d for rec in out[DECISIONS] for d in rec["decisions"]]

    fresh = decisions(BatchProcessor(load_screener("rules/default.toml")))
    # A worker that screened other traffic first (warm-up, earlier batches) numbers strings
    # differently in its vocabularies; the decisions must not change.
    warmed = BatchProcessor(screener)
    warmed.process(raw_manifests(seed=99))
    assert decisions(warmed) == fresh
    other = BatchProcessor(screener)  # same compiled screener, a new vocabulary
    assert decisions(other) == fresh


def test_a_failing_screener_dead_letters_instead_of_stopping(screener):
    class Broken:
        ruleset_id, version, hash = "broken", "1", "x"

        def screen(self, batch):
            raise RuntimeError("kernel exploded")

    result = BatchProcessor(Broken()).process(raw_manifests(n=2))
    out = by_kind(result)
    assert [d["reason"] for d in out[DEAD_LETTER]] == ["internal_error", "internal_error"]
    assert "kernel exploded" in out[DEAD_LETTER][0]["message"]
    assert result.outcome.messages["dead_letter"] == 2


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300) | st.sampled_from([b"{}", b"[]", b"null", b'{"parcels": []}',
                                                          b'{"schema_version": 1, "manifest_id": "", "parcels": []}',
                                                          b'{"schema_version": 1, "parcel_id": 5}']),
                min_size=1, max_size=8))
def test_hostile_bytes_end_as_dead_letters_never_as_exceptions(screener, values):
    raws = [RawMessage(v, "manifests", 0, i) for i, v in enumerate(values)]
    result = BatchProcessor(screener).process(raws)
    out = by_kind(result)
    assert result.outcome.messages["ok"] + result.outcome.messages["dead_letter"] == len(values)
    assert "internal_error" not in result.outcome.dead_letters
    # Every message is accounted for: a decision record or at least one dead letter.
    accounted = {(d["source"]["offset"]) for d in out[DEAD_LETTER]} | \
        {rec["source"]["offset"] for rec in out[DECISIONS]}
    assert accounted == set(range(len(values)))


def test_counts_add_up_for_a_mixed_batch(screener):
    raws = raw_manifests(n=3, per=50)
    bad = orjson.loads(raws[0].value)
    bad["parcels"][0]["gross_weight_kg"] = 0
    raws[0] = RawMessage(orjson.dumps(bad), "manifests", 0, 0)
    result = BatchProcessor(screener).process(raws + [RawMessage(b"", "manifests", 0, 3)])
    o = result.outcome
    assert o.parcels == 149 and sum(o.lanes.values()) == 149
    assert dict(o.dead_letters) == {"non_positive_value": 1, "empty_message": 1}
    assert o.messages == {"ok": 3, "dead_letter": 1}
