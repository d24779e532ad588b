"""The default pack's rules written as plain Python, one parcel at a time: what the obvious contenders run.

The Faust agents (benchmarks/baseline.py) and the Quix Streams app (benchmarks/quix.py) call the
same `DefaultRules.decide`, each reading the parcel's fields the way its framework hands them over
(record attributes, dict keys). Rules: R1 value per kg below the HS band, R9 value per kg above it,
R4 prohibited / licensed HS prefixes, R5 prohibited words, R6 vague descriptions, R8 watchlists,
R9 gross below net, R10 risky routes, R13 paid amount mismatch, then the reproducible random
selection of the default pack; noisy-or score and the pack's lane thresholds.
"""

from __future__ import annotations

import re

from screener.generator import read_table
from screener.kernels.hashing import fnv1a64_reference, seeded_uniform_reference

YELLOW, RED, RANDOM_RATE, SEED = 0.3, 0.7, 0.01, 20261111


class DefaultRules:
    """The default pack's rules as plain Python over one parcel's fields."""

    def __init__(self) -> None:
        self.fx = {r["currency"]: float(r["usd_per_unit"]) for r in read_table("fx")}
        bands = [(r["hs_prefix"], float(r["min_usd_per_kg"]), float(r["max_usd_per_kg"]))
                 for r in read_table("value_bands") if r["origin_country"] == "*"]
        self.bands = sorted(bands, key=lambda b: -len(b[0]))
        hs = read_table("restricted_hs")
        self.prohibited_hs = tuple(r["hs_prefix"] for r in hs if r["kind"] == "prohibited")
        self.licensed_hs = tuple(r["hs_prefix"] for r in hs if r["kind"] == "licensed")
        terms = [r["term"] for r in read_table("prohibited_terms")]
        self.prohibited = re.compile(r"\b(" + "|".join(map(re.escape, terms)) + r")\b", re.IGNORECASE)
        self.vague = {r["term"].lower() for r in read_table("vague_terms")}
        self.routes = {(r["origin_country"], r["departure_country"]) for r in read_table("risky_routes")}
        self.watchlist = {(r["field"], r["value"]): (r["valid_from"], r["valid_until"])
                          for r in read_table("watchlist")}

    def band(self, hs: str) -> tuple[float, float] | None:
        """(min, max) USD per kg of the longest matching HS prefix."""
        for prefix, lo, hi in self.bands:
            if hs.startswith(prefix):
                return lo, hi
        return None

    def decide(self, parcel_id: str, event_time: str, net_weight_kg: float, gross_weight_kg: float,
               declared_value: float, currency: str, freight: float, tax_withheld: float, paid_amount: float,
               origin_country: str, departure_country: str, parties: tuple[tuple[str, str], ...],
               hs_codes: list[str], descriptions: list[str]) -> tuple[str, float, list[str]]:
        """(lane, score, reasons) of one parcel; `parties` are (field, value) pairs checked against the watchlist."""
        fired: list[tuple[str, float]] = []
        kg = net_weight_kg if net_weight_kg > 0 else gross_weight_kg
        vpk = declared_value * self.fx.get(currency, float("nan")) / kg
        bands = [b for b in (self.band(hs) for hs in hs_codes) if b]
        if bands and vpk < min(b[0] for b in bands):
            fired.append(("R1_UNDERVALUED_PER_KG", 0.6))
        if bands and vpk > 2 * max(b[1] for b in bands):
            fired.append(("R9_VALUE_PER_KG_ABOVE_BAND", 0.3))
        if any(hs.startswith(self.prohibited_hs) for hs in hs_codes):
            fired.append(("R4_PROHIBITED_HS", 0.9))
        if any(hs.startswith(self.licensed_hs) for hs in hs_codes):
            fired.append(("R4_LICENSED_HS", 0.5))
        if any(self.prohibited.search(d) for d in descriptions):
            fired.append(("R5_PROHIBITED_DESCRIPTION", 0.9))
        if any(len(d) < 4 or set(d.lower().split()) <= self.vague for d in descriptions):
            fired.append(("R6_VAGUE_DESCRIPTION", 0.35))
        day = event_time[:10]
        for party in parties:
            valid = self.watchlist.get(party)
            if valid and valid[0] <= day <= valid[1]:
                fired.append(("R8_WATCHLIST", 0.75))
                break
        if gross_weight_kg < net_weight_kg:
            fired.append(("R9_GROSS_BELOW_NET", 0.4))
        o, d = origin_country, departure_country or origin_country
        if (o, d) in self.routes or (o, "*") in self.routes or ("*", d) in self.routes:
            fired.append(("R10_RISKY_ROUTE", 0.5))
        expected = declared_value + max(freight, 0) + max(tax_withheld, 0)
        if abs(paid_amount - expected) > 0.05 * paid_amount:
            fired.append(("R13_PAID_AMOUNT_MISMATCH", 0.5))
        keep = 1.0
        for _, w in fired:
            keep *= 1.0 - w
        score = 1.0 - keep
        lane = "red" if score >= RED else "yellow" if score >= YELLOW else "green"
        reasons = [rid for rid, _ in fired]
        if seeded_uniform_reference(fnv1a64_reference(parcel_id), SEED) < RANDOM_RATE:
            lane = "red"
            reasons.append("random")
        return lane, round(score, 6), reasons
