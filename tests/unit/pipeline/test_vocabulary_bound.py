"""Vocabularies are bounded: generations are swapped between batches without changing any decision."""

import orjson
import pytest

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.pipeline.batch import Vocabulary
from screener.pipeline.decode import RawMessage
from screener.pipeline.processor import BatchProcessor
from screener.pipeline.screening import load_screener


def batches(n_batches: int, per_batch: int = 4, parcels: int = 100):
    gen = ManifestGenerator(GeneratorConfig(manifests=n_batches * per_batch, parcels_per_manifest=parcels, seed=41))
    values = [orjson.dumps(m) for m in gen.manifests()]
    # Fresh consignees in every manifest: the entity growth that made memory grow without bound.
    values = [v.replace(b'"C-', b'"C%04d-' % i) for i, v in enumerate(values)]
    raws = [RawMessage(v, "manifests", 0, i) for i, v in enumerate(values)]
    return [raws[i:i + per_batch] for i in range(0, len(raws), per_batch)]


def decisions(processor: BatchProcessor, work) -> list[bytes]:
    out = []
    for raws in work:
        for kind, _key, value in processor.process(raws).records:
            if kind == "decisions":
                record = orjson.loads(value)
                out.append(orjson.dumps(record["decisions"]))
    return out


def test_a_small_bound_swaps_generations_and_decides_exactly_as_an_unbounded_worker():
    screener = load_screener("rules/default.toml")
    work = batches(6)
    bounded = BatchProcessor(screener, vocabulary_max_strings=500)
    unbounded = BatchProcessor(screener, vocabulary_max_strings=10**9)
    assert decisions(bounded, work) == decisions(unbounded, work)
    assert bounded.generations >= 4 and unbounded.generations == 1
    # What a generation holds is at most the bound plus one batch's new strings.
    assert sum(bounded.vocab.sizes().values()) < 500 + 4 * 100 * 8


def test_interning_is_exact_and_dense_even_for_colliding_looking_input():
    v = Vocabulary("x")
    words = ["", "a", "b", "a", "é", "a\u200b", "A", "b"]
    codes = v.intern_many(words).tolist()
    assert codes == [0, 1, 2, 1, 3, 4, 5, 2]
    assert v.strings == ["", "a", "b", "é", "a\u200b", "A"]
    many = [f"id-{i}" for i in range(5000)]
    first = v.intern_many(many)
    assert (v.intern_many(many) == first).all() and len(set(first.tolist())) == 5000


def test_a_vocabulary_refuses_more_strings_than_its_slots_can_code(monkeypatch):
    # A slot holds a 27-bit code beside its hash tag; past MAX_CODES a code would spill into the tag.
    monkeypatch.setattr("screener.pipeline.batch.MAX_CODES", 10)
    v = Vocabulary("small")
    assert v.intern_many([f"k{i}" for i in range(9)]).tolist() == list(range(1, 10))
    with pytest.raises(OverflowError, match="small cannot hold over 10 strings"):
        v.intern_many(["k9", "k10"])


def test_a_vocabularys_normalised_forms_follow_its_strings_as_they_grow():
    from screener.pipeline.normalise import normalise

    vocab = Vocabulary("consignee_id")
    vocab.intern_many(["C-1", "c\u200b-1", "\uff23-2"])
    assert vocab.normalised == [normalise(s) for s in vocab.strings] == ["", "c-1", "c-1", "c-2"]
    vocab.intern_many([" C-3 ", "C-1"])
    assert vocab.normalised == [normalise(s) for s in vocab.strings] and len(vocab.normalised) == 5
