"""The column block of re-keyed records: equal to scanning their documents, and harmless when damaged."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.kafka.state_shards import Shard
from screener.kernels.json_scan import scan
from screener.pipeline.decode import RawMessage
from screener.pipeline.processor import DECISIONS, BatchProcessor
from screener.rules import load_pack_screener
from screener.state.route import PARCELS, Router, segments, segments_and_columns
from screener.state.segment_columns import decode_block

PACK = "rules/stateful.toml"


@pytest.fixture(scope="module")
def rules():
    return load_pack_screener(PACK)


def traffic(seed: int, manifests: int = 6, bare: int = 2) -> list[RawMessage]:
    """Valid manifests (some parcels inheriting the manifest's carrier_code) and bare parcels."""
    gen = ManifestGenerator(GeneratorConfig(manifests=manifests, parcels_per_manifest=30, seed=seed, consignees=40))
    docs = list(gen.manifests())
    for m in docs[::2]:
        m["carrier_code"] = "CARRIER-OF-MANIFEST"
        for p in m["parcels"][::3]:
            p.pop("carrier_code", None)
    singles = [dict(p, parcel_id=f"{p['parcel_id']}-bare") for p in docs[-1]["parcels"][:bare]]
    return [RawMessage(orjson.dumps(d), "manifests", 0, k) for k, d in enumerate(docs + singles)]


def re_keyed(rules, raws, partitions: int, limit: int = 1_000_000) -> list[tuple]:
    """Stage one's records, uncompressed: these tests read and damage the layout itself."""
    router = Router(partitions, limit, compression="none")
    return [r for r in BatchProcessor(rules, router=router).process(raws).records if r[0] == PARCELS]


def _meaningful(s, name: str) -> np.ndarray:
    """A scan field with the starts of absent strings (left unset by the scanner) zeroed."""
    a = getattr(s, name)
    if name in ("str_start", "item_str_start"):
        return np.where(getattr(s, name.replace("start", "len")) >= 0, a, 0)
    if name == "manifest_fields":
        return np.where(np.repeat(a[:, 1::2], 2, axis=1) >= 0, a, 0)
    return a


def decisions(records) -> dict[str, dict]:
    return {d["parcel_id"]: d for r in records if r[0] == DECISIONS for d in orjson.loads(r[2])["decisions"]}


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10_000), st.integers(1, 5), st.sampled_from([1_000_000, 30_000]))
def test_a_records_column_block_is_what_scanning_its_documents_gives(rules, seed, partitions, limit):
    records = re_keyed(rules, traffic(seed), partitions, limit)
    assert records and all(len(r[2]) <= limit for r in records)
    for _, _, value, partition in records:
        messages, scanned = segments_and_columns(value, PARCELS, partition, 0)
        assert scanned is not None
        values = [m.value for m in messages]
        bounds = np.cumsum([0] + [len(v) for v in values])
        scanned_again = scan(np.frombuffer(b"".join(values), np.uint8), bounds)
        assert scanned_again.ok.all()
        for name in scanned_again._fields:
            mine, theirs = _meaningful(scanned, name), _meaningful(scanned_again, name)
            assert mine.shape == theirs.shape and np.array_equal(mine, theirs, equal_nan=True), name


def test_stage_two_decides_the_same_from_the_block_as_from_scanning_the_documents(rules):
    records = re_keyed(rules, traffic(7, manifests=10), 3)
    with_block, scanning = Shard(rules, {}), Shard(rules, {})
    for offset, (_, _, value, p) in enumerate(records):
        raw = RawMessage(value, PARCELS, p, offset)
        got = decisions(with_block.screen(p, [raw]).records)
        want = decisions(scanning.processor.process(segments(value, PARCELS, p, offset)).records)
        assert got == want and got
    assert with_block.store.live_entities == scanning.store.live_entities > 0


def test_a_batch_the_reference_path_decoded_carries_no_block_and_stage_two_scans_it(rules):
    raws = traffic(3)
    bad = orjson.loads(raws[0].value)
    bad["parcels"][0]["declared_value"] = "lots"       # the fast path refuses the message: the batch goes the
    raws[0] = RawMessage(orjson.dumps(bad), "manifests", 0, 0)   # reference way, its records without columns
    records = re_keyed(rules, raws, 2)
    assert all(b'"columns"' not in r[2][:r[2].index(b"\n")] for r in records)
    shard = Shard(rules, {})
    decided = {}
    for offset, (_, _, value, p) in enumerate(records):
        assert segments_and_columns(value, PARCELS, p, offset)[1] is None
        decided |= decisions(shard.screen(p, [RawMessage(value, PARCELS, p, offset)]).records)
    assert len(decided) == sum(len(orjson.loads(r.value).get("parcels", [None])) for r in raws) - 1


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_damaged_block_is_never_read_outside_its_documents_and_every_parcel_is_still_decided(rules, data):
    records = re_keyed(rules, traffic(11, manifests=2, bare=1), 1)
    value = records[0][2]
    newline = value.index(b"\n")
    header = orjson.loads(value[:newline])
    docs_end = newline + 1 + sum(s["size"] for s in header["segments"])
    block = bytearray(value[docs_end:])
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(block) - 1))
        block[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([len(block), len(block) - 1, 40]))
    damaged = value[:docs_end] + bytes(block[:cut])
    header["columns"] = cut
    damaged = orjson.dumps(header) + damaged[newline:]
    messages, scanned = segments_and_columns(damaged, PARCELS, 0, 0)
    if scanned is not None:        # it passed the checks: every span it holds is inside the documents
        size = sum(len(m.value) for m in messages)
        for start, length in ((scanned.str_start, scanned.str_len), (scanned.item_str_start, scanned.item_str_len)):
            present = length >= 0
            assert (start[present] >= 0).all() and (start[present] + length[present] <= size).all()
    result = Shard(rules, {}).screen(0, [RawMessage(damaged, PARCELS, 0, 0)])
    parcels = sum(len(orjson.loads(m.value)["parcels"]) for m in messages)
    assert len(decisions(result.records)) + result.outcome.dead_letters.total() >= parcels


def test_a_block_for_other_documents_is_refused():
    value = re_keyed(load_pack_screener(PACK), traffic(5, manifests=2, bare=0), 1)[0][2]
    newline = value.index(b"\n")
    header = orjson.loads(value[:newline])
    docs_end = newline + 1 + sum(s["size"] for s in header["segments"])
    block = value[docs_end:]
    sizes = [s["size"] for s in header["segments"]]
    bounds = np.cumsum([0] + sizes)
    assert decode_block(block, bounds) is not None
    assert decode_block(block, bounds[:-1]) is None                 # one segment fewer
    assert decode_block(block, bounds - np.append(0, np.full(len(sizes), 50))) is None   # shorter documents
    assert decode_block(block[:-8], bounds) is None


def test_a_parcel_too_large_with_its_block_goes_without_one_and_is_still_decided(rules):
    raws = traffic(13, manifests=1, bare=0)
    doc = orjson.loads(raws[0].value)
    big = doc["parcels"][0]
    big["items"] = [dict(big["items"][0], description=f"item {i}") for i in range(150)]
    raws[0] = RawMessage(orjson.dumps(doc), "manifests", 0, 0)
    limit = len(orjson.dumps(big)) + 6_000       # room for the parcel alone, not with its ~9 KB of columns
    records = re_keyed(rules, raws, 1, limit)
    assert all(len(r[2]) <= limit for r in records)
    alone = [r for r in records if big["parcel_id"].encode() in r[2]]
    assert len(alone) == 1 and segments_and_columns(alone[0][2], PARCELS, 0, 0)[1] is None
    assert any(segments_and_columns(r[2], PARCELS, 0, 0)[1] is not None for r in records)
    decided = decisions(Shard(rules, {}).screen(0, [RawMessage(r[2], PARCELS, 0, k) for k, r in enumerate(records)]).records)
    assert big["parcel_id"] in decided and len(decided) == len(doc["parcels"])


def test_a_block_that_leaves_out_a_parcel_is_refused_and_the_parcel_still_decided(rules):
    from screener.state.segment_columns import encode_block

    value = re_keyed(rules, traffic(9, manifests=1, bare=0), 1)[0][2]
    messages, scanned = segments_and_columns(value, PARCELS, 0, 0)
    last = scanned.message.shape[0] - 1          # drop the last row (and its items): spans still fit
    items = scanned.item_parent < last
    fewer = scanned._replace(
        message=scanned.message[:last], parcel_span=scanned.parcel_span[:, :last],
        str_start=scanned.str_start[:, :last], str_len=scanned.str_len[:, :last],
        numbers=scanned.numbers[:, :last], event_ms=scanned.event_ms[:last], item_parent=scanned.item_parent[items],
        item_str_start=scanned.item_str_start[:, items], item_str_len=scanned.item_str_len[:, items],
        item_numbers=scanned.item_numbers[:, items])
    newline = value.index(b"\n")
    header = orjson.loads(value[:newline])
    docs = value[newline + 1:newline + 1 + sum(s["size"] for s in header["segments"])]
    block = encode_block(fewer)
    header["columns"] = len(block)
    damaged = orjson.dumps(header) + b"\n" + docs + block
    assert segments_and_columns(damaged, PARCELS, 0, 0)[1] is None
    decided = decisions(Shard(rules, {}).screen(0, [RawMessage(damaged, PARCELS, 0, 0)]).records)
    assert len(decided) == sum(len(orjson.loads(m.value)["parcels"]) for m in messages)
