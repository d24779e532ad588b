"""PerCode: a value per vocabulary code, computed once per code while the vocabulary and its owner live."""

from __future__ import annotations

import numpy as np

from screener.pipeline.batch import PerCode, Vocabulary


def test_each_code_is_computed_once_and_a_new_vocabulary_or_owner_starts_afresh():
    asked: list[list[int]] = []

    def lengths(vocab, codes):
        asked.append(codes.tolist())
        return np.array([len(vocab.strings[c]) for c in codes.tolist()], dtype=np.int32)

    per_code, vocab = PerCode(lengths), Vocabulary("v")
    codes = vocab.intern_many(["a", "bbb", "a", ""])
    assert per_code(vocab, codes).tolist() == [1, 3, 1, 0]
    more = vocab.intern_many(["cc", "bbb"])
    assert per_code(vocab, more).tolist() == [2, 3]
    assert asked == [[0, 1, 2], [3]]                       # only the new code the second time
    owner = object()
    assert per_code(vocab, more, owner).tolist() == [2, 3] and asked[-1] == [2, 3]
    other = Vocabulary("v")
    assert per_code(other, other.intern_many(["dddd"])).tolist() == [4] and asked[-1] == [1]
