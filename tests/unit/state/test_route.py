"""Re-keying for stateful packs: stage one (validate, regroup by state partition) then stage two (screen with
the partition's state) decides every parcel as one stateful screener over all the traffic would."""

from __future__ import annotations

import lz4.frame
import orjson
import pytest

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.kafka.state_shards import Shard
from screener.kernels.partition import partitions_of
from screener.pipeline.decode import RawMessage
from screener.pipeline.normalise import normalise
from screener.pipeline.processor import DEAD_LETTER, DECISIONS, BatchProcessor, VocabularyGenerations
from screener.rules import load_pack_screener
from screener.settings import Settings
from screener.state.changelog import encode_entities, restore
from screener.state.route import PARCELS, Router, expanded, segments, segments_and_columns
from screener.state.screener import StatefulScreener

PACK = "rules/stateful.toml"


@pytest.fixture(scope="module")
def rules():
    return load_pack_screener(PACK)


def traffic(manifests: int, seed: int = 3) -> list[RawMessage]:
    # A small consignee pool, so one consignee's parcels are spread over many manifests and R2/R3 fire.
    gen = ManifestGenerator(GeneratorConfig(manifests=manifests, parcels_per_manifest=40, seed=seed, consignees=60))
    raws = [RawMessage(orjson.dumps(m), "manifests", 0, k) for k, m in enumerate(gen.manifests())]
    bad = orjson.loads(raws[1].value)
    bad["parcels"][0]["declared_value"] = "lots"         # one parcel to dead-letter in stage one
    raws[1] = RawMessage(orjson.dumps(bad), "manifests", 0, 1)
    return raws


def by_parcel(records) -> dict[str, dict]:
    out = {}
    for record in records:
        if record[0] == DECISIONS:
            for d in orjson.loads(record[2])["decisions"]:
                out[d["parcel_id"]] = {k: d[k] for k in ("lane", "score", "reasons")}
    return out


def two_stage(rules, raws: list[RawMessage], partitions: int, batch: int, vocabularies=None):
    """Stage one in batches, its records appended to per-partition logs, each log screened by its shard
    (the shards sharing `vocabularies`, as a worker's do, when given)."""
    stage_one = BatchProcessor(rules, router=Router(partitions))
    logs: dict[int, list[bytes]] = {}
    first: list = []
    for at in range(0, len(raws), batch):
        for record in stage_one.process(raws[at:at + batch]).records:
            if record[0] == PARCELS:
                logs.setdefault(record[3], []).append(record[2])
            else:
                first.append(record)
    shards = {p: Shard(rules, {}, vocabularies=vocabularies) for p in logs}
    second: list = []
    for p, log in sorted(logs.items()):
        for offset, value in enumerate(log):
            second += shards[p].processor.process(segments(value, PARCELS, p, offset)).records
    return first, second, shards


def test_two_stages_decide_every_parcel_as_one_stateful_screener_would(rules):
    raws = traffic(24)
    whole = by_parcel(BatchProcessor(StatefulScreener(rules)).process(raws).records)
    first, second, _ = two_stage(rules, raws, partitions=3, batch=5)
    assert [r for r in first if r[0] == DECISIONS] == []          # stage one decides nothing itself
    assert {orjson.loads(r[2])["parcel_id"] for r in first if r[0] == DEAD_LETTER} == {
        orjson.loads(raws[1].value)["parcels"][0]["parcel_id"]}
    split = by_parcel(second)
    assert split == whole
    assert any(r["rule_id"].startswith("R2_") for d in whole.values() for r in d["reasons"])


def test_shards_sharing_one_vocabulary_decide_as_shards_with_their_own(rules):
    raws = traffic(16)
    _, own, _ = two_stage(rules, raws, partitions=3, batch=4)
    _, shared, shards = two_stage(rules, raws, partitions=3, batch=4, vocabularies=VocabularyGenerations())
    assert by_parcel(shared) == by_parcel(own) and len(by_parcel(own)) == 16 * 40 - 1
    vocabs = {id(s.processor.vocab) for s in shards.values()}
    assert len(vocabs) == 1 and len(shards) == 3


def test_each_consignee_lives_in_one_state_partition_and_manifests_say_how_they_were_split(rules):
    raws = traffic(6)
    _, second, _ = two_stage(rules, raws, partitions=4, batch=6)
    envelopes = [orjson.loads(r[2]) for r in second if r[0] == DECISIONS]
    m0 = [e for e in envelopes if e["manifest_id"] == orjson.loads(raws[0].value)["manifest_id"]]
    assert sorted(e["shard"] for e in m0) == list(range(1, m0[0]["shards"] + 1)) and m0[0]["shards"] >= 2
    assert all(e["source"] == raws[0].source() for e in m0)      # the original manifest, not the re-keyed record
    consignees = {p["parcel_id"]: normalise(p["consignee_id"])
                  for raw in raws for p in orjson.loads(raw.value)["parcels"]}
    for e in envelopes:
        parts = partitions_of([consignees[d["parcel_id"]].encode() for d in e["decisions"]], 4)
        assert len(set(parts.tolist())) <= 1
    bad = next(e for e in envelopes if e["source"] == raws[1].source() and e["shard"] == 1)
    assert bad["dead_lettered"] == 1 and sum(e["dead_lettered"] for e in envelopes) == 1


def test_records_stay_under_the_record_limit_one_per_partition_when_they_fit(rules):
    raws = traffic(8)
    small = Router(2, max_record_bytes=20_000)
    records = [r for r in BatchProcessor(rules, router=small).process(raws).records if r[0] == PARCELS]
    assert all(len(r[2]) <= 20_000 for r in records) and len(records) > 2
    one = [r for r in BatchProcessor(rules, router=Router(2)).process(raws).records if r[0] == PARCELS]
    assert sorted(r[3] for r in one) == [0, 1]
    parcels = sum(len(orjson.loads(s.value)["parcels"]) for r in records for s in segments(r[2], PARCELS, r[3], 0))
    assert parcels == sum(len(orjson.loads(raw.value)["parcels"]) for raw in raws) - 1


def test_a_replayed_record_adds_nothing_and_the_changelog_rebuilds_a_store_that_decides_the_same(rules):
    stage_one = BatchProcessor(rules, router=Router(2))
    raws = traffic(9)
    log = [r[2] for at in range(0, 9, 3) for r in stage_one.process(raws[at:at + 3]).records
           if r[0] == PARCELS and r[3] == 0]
    shard = Shard(rules, {})
    shard.processor.process(segments(log[0], PARCELS, 0, 0))
    keys, values = zip(*[(k, v) for _, k, v, _ in shard.changelog(0)])
    shard.processor.process(segments(log[0], PARCELS, 0, 0))     # the same offset again: a replay
    assert shard.changelog(0) == []                              # nothing changed, nothing to write
    assert encode_entities(shard.store, shard.store.live_slots()) == (list(keys), list(values))
    rebuilt = Shard(rules, {})
    assert restore(rebuilt.store, keys, values) == shard.store.live_entities > 0
    for offset, value in enumerate(log[1:], start=1):
        assert by_parcel(rebuilt.processor.process(segments(value, PARCELS, 0, offset)).records) == \
            by_parcel(shard.processor.process(segments(value, PARCELS, 0, offset)).records)


@pytest.mark.parametrize("value", [b"no header line", b'{"segments":[{"size":99}]}\n{}',
                                   b'{"segments":[{"size":-1}]}\n{}', b'{"segments":[{"size":1.5}]}\n{}',
                                   b'{"segments":[{"size":' + str(1 << 70).encode() + b'}]}\n{}'])
def test_a_malformed_re_keyed_record_raises_rather_than_deciding(value):
    with pytest.raises(ValueError):
        segments(value, PARCELS, 0, 0)


def test_a_compressed_record_is_the_plain_record_in_under_a_third_of_the_bytes(rules):
    raws = traffic(6)
    del raws[1]           # no parcel to dead-letter: the fast path decodes the batch, so records carry columns
    packed = [r for r in BatchProcessor(rules, router=Router(2)).process(raws).records if r[0] == PARCELS]
    plain = [r for r in BatchProcessor(rules, router=Router(2, compression="none")).process(raws).records
             if r[0] == PARCELS]
    assert [expanded(r[2], 1 << 22) for r in packed] == [r[2] for r in plain]
    assert all(r[2].startswith(b"\x04\x22\x4d\x18") and len(r[2]) * 3 < len(q[2]) for r, q in zip(packed, plain))
    for r, q in zip(packed, plain):
        (got, got_cols), (want, want_cols) = (segments_and_columns(x[2], PARCELS, x[3], 7) for x in (r, q))
        assert [(m.value, m.route) for m in got] == [(m.value, m.route) for m in want]
        assert got_cols is not None and (got_cols.numbers == want_cols.numbers).all()
        assert (got_cols.parcel_span == want_cols.parcel_span).all()


def _frame(data: bytes) -> bytes:
    return lz4.frame.compress(data, content_checksum=True)


_RECORD = b'{"segments":[]}\n'


@pytest.mark.parametrize("value, why", [
    (_frame(_RECORD)[:-6], "cut short"),                                    # truncated
    (_frame(_RECORD) + b"{}", "bytes after"),                                 # trailing bytes
    (_frame(_RECORD + b" " * (8 << 20)), "expands past"),                    # 8 MiB from a ~33 KB record
    (_frame(_RECORD).replace(b"segments", b"segmentz"), "damaged"),          # the checksum no longer holds
    (b"\x04\x22\x4d\x18garbage", "damaged"),
])
def test_a_hostile_lz4_record_raises_without_expanding_past_the_bound(value, why):
    with pytest.raises(ValueError, match=why):
        segments(value, PARCELS, 0, 0, max_bytes=1 << 20)


def test_an_unknown_hop_compression_is_refused_in_one_line():
    with pytest.raises(ValueError, match="SCREENER_HOP_COMPRESSION='zip': expected one of lz4, none"):
        Settings.load(environ={"SCREENER_HOP_COMPRESSION": "zip"})
    with pytest.raises(ValueError, match="compression must be one of"):
        Router(2, compression="gzip")


def test_an_unreadable_re_keyed_record_is_dead_lettered_whole_and_the_rest_screened(rules):
    good = [r for r in BatchProcessor(rules, router=Router(1)).process(traffic(2)).records if r[0] == PARCELS][0]
    shard = Shard(rules, {})
    result = shard.screen(0, [RawMessage(b'{"segments": [{"size": 3}]', PARCELS, 0, 0),
                              RawMessage(good[2], PARCELS, 0, 1)])
    dead = [orjson.loads(r[2]) for r in result.records if r[0] == DEAD_LETTER]
    assert [(d["reason"], d["source"]["offset"]) for d in dead] == [("internal_error", 0)]
    assert "unreadable re-keyed record" in dead[0]["message"]
    assert len(by_parcel(result.records)) == 79                  # 80 parcels, one dead-lettered in stage one


def test_each_state_partition_gets_its_share_of_the_hourly_capacity_rounded_up(tmp_path):
    from pathlib import Path

    text = Path("rules/default.toml").read_text()
    text = text.replace('reference = "reference"', f'reference = "{Path("rules/reference").resolve()}"')
    (tmp_path / "cap.toml").write_text(text + "\n[capacity]\nyellow_per_hour = 7\nred_per_hour = 4\n")
    capped = load_pack_screener(tmp_path / "cap.toml")
    assert StatefulScreener(capped).capacity.tolist()[1:] == [7, 4]
    assert StatefulScreener(capped, capacity_shares=3).capacity.tolist()[1:] == [3, 2]
