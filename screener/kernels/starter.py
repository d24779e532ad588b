"""The starter rule set: value-per-kg below the HS band (R1) plus reproducible random selection (R14).

A small real kernel that the compiled rule packs (screener/rules) replace; it stays as the
fallback when no pack compiler is installed and as a second implementation for tests.
"""

from __future__ import annotations

import hashlib

import numba as nb
import numpy as np

from ..batch import LANE_GREEN, LANE_RED, LANE_YELLOW, ParcelBatch, Reason, ScreenResult
from ..reference import read_table
from .hashing import seeded_uniform

RULE_UNDERVALUED = 0


@nb.njit(cache=True, nogil=True)
def starter_kernel(declared_value, net_weight, gross_weight, currency, fx_by_currency,
                   item_offsets, item_hs, item_line_value, band_min_by_hs, parcel_hash,
                   seed, random_rate, weight, yellow, red, lane, score, hits, random, value_per_kg, band_min):
    """Score every parcel: undervaluation against the band of its highest-value item, then random picks."""
    n = declared_value.shape[0]
    for i in range(n):
        best = -1.0
        bmin = np.nan
        for j in range(item_offsets[i], item_offsets[i + 1]):
            if item_line_value[j] > best:
                best = item_line_value[j]
                bmin = band_min_by_hs[item_hs[j]]
        kg = net_weight[i]
        if not (kg > 0):
            kg = gross_weight[i]
        vpk = declared_value[i] * fx_by_currency[currency[i]] / kg
        value_per_kg[i] = vpk
        band_min[i] = bmin
        s = 0.0
        h = np.uint64(0)
        if vpk < bmin:  # NaN band or unknown currency: comparison is False, rule cannot fire
            s = weight
            h |= np.uint64(1) << np.uint64(RULE_UNDERVALUED)
        ln = LANE_GREEN
        if s >= red:
            ln = LANE_RED
        elif s >= yellow:
            ln = LANE_YELLOW
        rnd = False
        if ln == LANE_GREEN and seeded_uniform(parcel_hash[i], seed) < random_rate:
            ln = LANE_YELLOW
            rnd = True
        lane[i] = ln
        score[i] = s
        hits[i, 0] = h
        random[i] = rnd


class StarterScreener:
    """Screener protocol over starter_kernel with lookups grown as vocabularies grow."""

    ruleset_id = "starter"
    rule_ids = ["R1_UNDERVALUED"]
    version = "1"

    def __init__(self, reference_dir: str | None = None, seed: int = 20261111, random_rate: float = 0.01,
                 weight: float = 0.6, yellow: float = 0.5, red: float = 0.9) -> None:
        self.fx = {r["currency"]: float(r["usd_per_unit"]) for r in read_table("fx", reference_dir)}
        self.bands = [(r["hs_prefix"], float(r["min_usd_per_kg"]))
                      for r in read_table("value_bands", reference_dir) if r["origin_country"] == "*"]
        self.bands.sort(key=lambda b: -len(b[0]))  # longest prefix wins
        self.seed, self.random_rate = np.uint64(seed), random_rate
        self.weight, self.yellow, self.red = weight, yellow, red
        digest = hashlib.sha256(repr((sorted(self.fx.items()), self.bands, seed, random_rate, weight, yellow,
                                      red)).encode()).hexdigest()
        self.hash = digest[:16]
        self._fx = np.full(1, np.nan)
        self._band = np.full(1, np.nan)
        self._last: dict = {}
        self._vocab = None

    def _grow(self, table: np.ndarray, strings: list[str], fn) -> np.ndarray:
        if len(table) < len(strings):
            extra = np.array([fn(s) for s in strings[len(table):]], dtype=np.float64)
            table = np.concatenate([table, extra])
        return table

    def _band_of(self, hs: str) -> float:
        for prefix, lo in self.bands:
            if hs.startswith(prefix):
                return lo
        return np.nan

    def screen(self, batch: ParcelBatch) -> ScreenResult:
        """Run the kernel over the batch."""
        if batch.vocab is not self._vocab:
            # Lookups are indexed by the codes of one vocabulary; another one (the warm-up's, a
            # test's) numbers strings differently, so start over rather than misread codes.
            self._vocab = batch.vocab
            self._fx = np.full(1, np.nan)
            self._band = np.full(1, np.nan)
        self._fx = self._grow(self._fx, batch.vocab["currency"].strings, lambda c: self.fx.get(c, np.nan))
        self._band = self._grow(self._band, batch.vocab["item_hs_code"].strings, self._band_of)
        n = batch.n
        res = ScreenResult(np.zeros(n, np.uint8), np.zeros(n), np.zeros((n, 1), np.uint64), np.zeros(n, bool))
        vpk, bmin = np.empty(n), np.empty(n)
        num = batch.numbers
        starter_kernel(num["declared_value"], num["net_weight_kg"], num["gross_weight_kg"],
                       batch.strings["currency"], self._fx, batch.item_offsets, batch.item_strings["hs_code"],
                       batch.item_numbers["line_value"], self._band, batch.parcel_hash, self.seed,
                       self.random_rate, self.weight, self.yellow, self.red,
                       res.lane, res.score, res.hits, res.random, vpk, bmin)
        self._last = {"batch": id(batch), "value_per_kg": vpk, "band_min": bmin}
        return res

    def explain(self, batch: ParcelBatch, result: ScreenResult, i: int) -> list[Reason]:
        """Reasons for parcel i with the values that triggered them."""
        reasons = []
        if int(result.hits[i, 0]) & (1 << RULE_UNDERVALUED):
            vpk = float(self._last["value_per_kg"][i])
            lo = float(self._last["band_min"][i])
            reasons.append(Reason("R1_UNDERVALUED", self.weight,
                                  {"value_per_kg": round(vpk, 4), "band_min": lo,
                                   "condition": f"value_per_kg={vpk:.2f} < band_min={lo:.2f}"},
                                  "declared value per kg below the HS band"))
        if result.random[i]:
            reasons.append(Reason("random", 0.0, {"rate": self.random_rate}, "reproducible random selection"))
        return reasons
