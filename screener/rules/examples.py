"""Runs a pack's rule examples through the compiled kernel and the reference interpreter side by side."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from screener.pipeline.batch import LANE_NAMES
from screener.rules.pack import Pack
from screener.rules.parcels import ParcelInputError, batch_from_parcels, example_parcel
from screener.rules.screener import PackScreener


@dataclass
class ExampleResult:
    """One example: what was expected, what kernel and interpreter said, and what went wrong."""

    rule_id: str
    index: int
    note: str
    expected_hit: bool
    expected_lane: str | None
    kernel_hit: bool | None = None
    kernel_lane: str | None = None
    score: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing went wrong."""
        return not self.failures


def run_examples(pack: Pack, screener: PackScreener) -> list[ExampleResult]:
    """Every example of every rule, checked against both implementations (random selection off)."""
    results, parcels = [], []
    bit = {r.id: k for k, r in enumerate(screener.rules)}
    for rule in pack.rules:
        for k, ex in enumerate(rule.examples):
            res = ExampleResult(rule.id, k, ex.note, ex.hit, ex.lane)
            results.append(res)
            if not rule.enabled:
                res.failures.append("rule is disabled: its examples cannot run")
                continue
            parcels.append((res, example_parcel(ex.parcel, f"{rule.id}#{k}")))
    if not parcels:
        return results
    try:
        batch = batch_from_parcels([p for _, p in parcels])
    except ParcelInputError as exc:
        for res, _ in parcels:
            res.failures.append(str(exc))
        return results
    for i, (res, _) in enumerate(parcels):     # state fields the example sets (NaN: no state)
        example = next(r for r in pack.rules if r.id == res.rule_id).examples[res.index]
        for name, value in example.state.items():
            batch.numbers[name][i] = value
    kernel = screener.screen(batch, random=False)
    oracle = screener.interpreter.screen(batch, random=False)
    for i, (res, _) in enumerate(parcels):
        r = bit[res.rule_id]
        word, shift = divmod(r, 64)
        res.kernel_hit = bool((int(kernel.hits[i, word]) >> shift) & 1)
        res.kernel_lane = LANE_NAMES[int(kernel.lane[i])]
        res.score = float(kernel.score[i])
        if not np.array_equal(kernel.hits[i], oracle.hits[i]):
            diff = [screener.rule_ids[b] for b in range(len(screener.rules))
                    if ((int(kernel.hits[i, b >> 6]) ^ int(oracle.hits[i, b >> 6])) >> (b & 63)) & 1]
            res.failures.append(f"kernel and interpreter disagree on rules {', '.join(diff)}")
        if kernel.score[i] != oracle.score[i]:
            res.failures.append(f"kernel score {kernel.score[i]!r} != interpreter score {oracle.score[i]!r}")
        if kernel.lane[i] != oracle.lane[i]:
            res.failures.append(f"kernel lane {res.kernel_lane} != interpreter lane "
                                f"{LANE_NAMES[int(oracle.lane[i])]}")
        if res.kernel_hit != res.expected_hit:
            res.failures.append(f"expected {'a hit' if res.expected_hit else 'no hit'}, got "
                                f"{'a hit' if res.kernel_hit else 'no hit'}")
        if res.expected_lane is not None and res.kernel_lane != res.expected_lane:
            res.failures.append(f"expected lane {res.expected_lane}, got {res.kernel_lane} (score {res.score:.4f})")
    return results
