"""Synthetic manifests with realistic distributions and planted fraud, plus ground-truth labels.

Distributions: declaration types and origins by weight, lognormal value per kg around each
product's typical price, 1-4 items per parcel, Zipf-distributed sellers. Consignees are buyers: most
are drawn uniformly from a large pool (a buyer gets a parcel or two a day), a `repeat_share` of parcels goes
to a small Zipf-distributed set of frequent buyers (whose split shipments and yearly totals R2/R3 see), and
one in `offender_every` frequent buyers (the second most frequent first) is a repeat offender, most of
whose parcels carry fraud (what R11 learns from outcomes). A share
of parcels carries one planted fraud pattern that the default rule pack is meant to catch; the
labels file records it as an inspection outcome.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1

# (hs_code, description, typical USD per kg, typical kg per unit)
CATALOGUE = [
    ("8517130000", "smartphone 128GB", 450.0, 0.35),
    ("8517620090", "wireless router", 120.0, 0.5),
    ("8471300000", "laptop computer 14 inch", 400.0, 1.6),
    ("8518300000", "bluetooth earphones", 150.0, 0.08),
    ("8504403090", "usb-c charger 65W", 60.0, 0.15),
    ("8507600090", "power bank 10000mAh", 45.0, 0.25),
    ("6109100000", "cotton t-shirt", 35.0, 0.2),
    ("6204430000", "women's synthetic dress", 60.0, 0.35),
    ("6403990000", "leather sneakers", 70.0, 0.9),
    ("4202210000", "leather handbag", 180.0, 0.8),
    ("9102110000", "quartz wrist watch", 900.0, 0.12),
    ("3304990000", "face cream 50ml", 180.0, 0.1),
    ("3304200000", "eye shadow palette", 220.0, 0.08),
    ("9503008900", "plastic building blocks toy", 30.0, 0.6),
    ("3926909090", "phone case silicone", 25.0, 0.05),
    ("2106909090", "vitamin supplement tablets", 60.0, 0.3),
    ("7117190000", "fashion necklace", 150.0, 0.05),
]
DECLARATION_TYPES = (["CN_9610", "CN_1210", "EU_H7", "US_T86"], [0.6, 0.25, 0.1, 0.05])
ORIGINS = (["US", "JP", "KR", "DE", "FR", "AU", "GB", "IT", "NZ", "CA", "TH", "VN", "CN"],
           [0.18, 0.16, 0.14, 0.09, 0.07, 0.07, 0.06, 0.05, 0.04, 0.04, 0.04, 0.03, 0.03])
CURRENCIES = {"CN_9610": "CNY", "CN_1210": "CNY", "EU_H7": "EUR", "US_T86": "USD"}
CARRIERS = ["SF", "EMS", "DHL", "FDX", "UPS", "YTO", "ZTO", "CNE"]
PLATFORMS = ["TMALL-G", "JD-INTL", "KAOLA", "PDD-INTL", "AMZ-GLB", "SHEIN"]
OFFICES = ["CN-HGH-2991", "CN-CAN-5141", "CN-SZX-5316", "CN-SHA-2244", "CN-NGB-3105", "CN-ZHE-5701"]
UNITS = ["pcs", "pcs", "pcs", "set", "pair", "box"]

# Planted fraud kinds and their share of all parcels; each maps to the rule meant to catch it.
FRAUD_KINDS = {
    "UNDERVALUATION": 0.012,        # R1/R9: value per kg far below the band
    "RESTRICTED_HS": 0.003,         # R4
    "PROHIBITED_DESCRIPTION": 0.003,  # R5
    "VAGUE_DESCRIPTION": 0.004,     # R6
    "WATCHLIST": 0.003,             # R8
    "WEIGHT_INCONSISTENT": 0.003,   # R9: gross weight below net weight
    "RISKY_ROUTE": 0.003,           # R10
    "AMOUNT_MISMATCH": 0.004,       # R13: paid amount disagrees with value + freight + tax
}
CN_TAX_RATE = 0.091  # 70% of 13% VAT on cross-border retail imports


@dataclass
class GeneratorConfig:
    """Sizes and seed of a synthetic run."""

    manifests: int = 200
    parcels_per_manifest: int = 500
    seed: int = 1
    consignees: int = 2_000_000
    repeat_buyers: int = 5_000        # frequent buyers: the first ids of the pool, Zipf-distributed
    repeat_share: float = 0.05        # share of parcels that go to a frequent buyer
    offender_every: int = 40          # frequent buyers 1, 41, 81, ... are repeat offenders (0: none) ...
    offender_fraud: float = 0.6       # ... whose parcels carry planted fraud this often (what R11 learns)
    sellers: int = 5_000
    zipf_a: float = 1.3
    fraud_scale: float = 1.0
    start: dt.datetime = dt.datetime(2026, 11, 11, tzinfo=dt.UTC)


class ManifestGenerator:
    """Yields manifests (dicts) and keeps the ground truth of every parcel it made."""

    def __init__(self, config: GeneratorConfig, reference_dir: str | None = None) -> None:
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.fx = {r["currency"]: float(r["usd_per_unit"]) for r in read_table("fx", reference_dir)}
        self.prohibited_terms = [r["term"] for r in read_table("prohibited_terms", reference_dir)]
        self.vague_terms = [r["term"] for r in read_table("vague_terms", reference_dir)]
        self.restricted_hs = [r["hs_prefix"] for r in read_table("restricted_hs", reference_dir)]
        today = config.start.date().isoformat()
        self.watchlist = [r for r in read_table("watchlist", reference_dir)
                          if r["valid_from"] <= today <= r["valid_until"]]
        self.risky = [r for r in read_table("risky_routes", reference_dir)]
        kinds = list(FRAUD_KINDS)
        probs = np.array([FRAUD_KINDS[k] for k in kinds]) * config.fraud_scale
        self.fraud_kinds = ["NONE"] + kinds
        self.fraud_probs = np.concatenate([[1.0 - probs.sum()], probs])
        self.labels: list[dict] = []

    def _zipf_ids(self, prefix: str, n: int, size: int, width: int) -> list[str]:
        ranks = self.rng.zipf(self.config.zipf_a, size=size)
        ranks = (ranks - 1) % n
        return [f"{prefix}{r:0{width}d}" for r in ranks]

    def _consignee_ids(self, size: int) -> tuple[list[str], np.ndarray]:
        """Consignee ids of `size` parcels, and which of them are repeat offenders."""
        cfg, rng = self.config, self.rng
        frequent = min(cfg.repeat_buyers, cfg.consignees)
        ranks = (rng.zipf(cfg.zipf_a, size=size) - 1) % max(frequent, 1)
        if cfg.consignees > frequent:
            occasional = rng.integers(frequent, cfg.consignees, size=size)
            ranks = np.where(rng.random(size) < cfg.repeat_share, ranks, occasional)
        offender = ((ranks < frequent) & (ranks % cfg.offender_every == 1)
                    if cfg.offender_every > 0 else np.zeros(size, dtype=bool))
        return [f"C-{r:07d}" for r in ranks.tolist()], offender

    def manifests(self) -> Iterator[dict]:
        """Generate config.manifests manifests."""
        for m in range(self.config.manifests):
            yield self.manifest(m)

    def manifest(self, m: int) -> dict:
        """One manifest of config.parcels_per_manifest parcels."""
        cfg, rng = self.config, self.rng
        n = cfg.parcels_per_manifest
        base = cfg.start + dt.timedelta(seconds=int(m * 30))
        carrier = CARRIERS[int(rng.integers(len(CARRIERS)))]
        mawb = f"{rng.integers(100, 999)}-{rng.integers(10_000_000, 99_999_999)}"
        consignees, offender = self._consignee_ids(n)
        sellers = self._zipf_ids("S-", cfg.sellers, n, 5)
        decl = rng.choice(DECLARATION_TYPES[0], size=n, p=DECLARATION_TYPES[1])
        origin = rng.choice(ORIGINS[0], size=n, p=ORIGINS[1])
        kinds = rng.choice(len(self.fraud_kinds), size=n, p=self.fraud_probs)
        if offender.any():   # an offender's parcels: fraud of the same kinds, far more often
            fraud = self.fraud_probs[1:] / self.fraud_probs[1:].sum()
            planted = rng.choice(np.arange(1, len(self.fraud_kinds)), size=n, p=fraud)
            kinds = np.where(offender & (rng.random(n) < cfg.offender_fraud), planted, kinds)
        n_items = np.minimum(rng.geometric(0.55, size=n), 4)
        parcels = []
        for i in range(n):
            pid = f"P{cfg.seed:03d}-{m:07d}-{i:04d}"
            kind = self.fraud_kinds[int(kinds[i])]
            parcel = self._parcel(pid, base + dt.timedelta(milliseconds=int(i * 50)), str(decl[i]),
                                  str(origin[i]), consignees[i], sellers[i], int(n_items[i]))
            revenue = self._plant(parcel, kind)
            parcels.append(parcel)
            self.labels.append({"parcel_id": pid, "illicit": kind != "NONE", "finding_code": kind,
                                "revenue": round(revenue, 2)})
        return {"schema_version": SCHEMA_VERSION, "manifest_id": f"M{cfg.seed:03d}-{m:07d}",
                "carrier_code": carrier, "master_bill_no": mawb,
                "created_at": base.isoformat().replace("+00:00", "Z"), "parcels": parcels}

    def _parcel(self, pid: str, t: dt.datetime, decl: str, origin: str, consignee: str, seller: str,
                n_items: int) -> dict:
        rng = self.rng
        currency = CURRENCIES[decl]
        rate = self.fx[currency]
        items, net, value = [], 0.0, 0.0
        for _ in range(n_items):
            hs, desc, usd_per_kg, unit_kg = CATALOGUE[int(rng.integers(len(CATALOGUE)))]
            qty = int(min(rng.geometric(0.6), 6))
            kg = unit_kg * qty * float(rng.uniform(0.8, 1.2))
            usd = kg * usd_per_kg * float(rng.lognormal(0.0, 0.35))
            line = round(usd / rate, 2)
            items.append({"hs_code": hs, "description": desc, "quantity": qty, "unit": UNITS[qty % len(UNITS)],
                          "unit_price": round(line / qty, 2), "line_value": line, "origin_country": origin})
            net += kg
            value += line
        freight = round(float(rng.uniform(2, 15)) / rate, 2)
        tax = round(value * CN_TAX_RATE, 2) if decl.startswith("CN_") else 0.0
        return {
            "parcel_id": pid, "event_time": t.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "declaration_type": decl, "order_no": "O" + pid[1:],
            "platform_id": PLATFORMS[int(rng.integers(len(PLATFORMS)))],
            "seller_id": seller, "seller_country": origin, "consignee_id": consignee,
            "consignee_name": f"name-{consignee[2:]}", "consignee_phone": f"+86-139{consignee[2:]:0>8}",
            "consignee_address": f"addr-{consignee[2:]}", "origin_country": origin,
            "departure_country": "HK" if rng.random() < 0.1 else origin,
            "destination_office": OFFICES[int(rng.integers(len(OFFICES)))],
            "gross_weight_kg": round(net * float(rng.uniform(1.05, 1.3)) + 0.05, 3),
            "net_weight_kg": round(net, 3), "declared_value": round(value, 2), "currency": currency,
            "freight": freight, "paid_amount": round(value + freight + tax, 2), "tax_withheld": tax,
            "items": items,
        }

    def _plant(self, p: dict, kind: str) -> float:
        """Turn a clean parcel into fraud of `kind`; returns the duty revenue an inspection recovers."""
        rng = self.rng
        if kind == "UNDERVALUATION":
            factor = float(rng.uniform(15, 60))
            true_value = p["declared_value"]
            for it in p["items"]:
                it["line_value"] = round(it["line_value"] / factor, 2)
                it["unit_price"] = round(it["line_value"] / it["quantity"], 2)
            p["declared_value"] = round(sum(it["line_value"] for it in p["items"]), 2)
            p["tax_withheld"] = round(p["declared_value"] * CN_TAX_RATE, 2) if p["tax_withheld"] else 0.0
            p["paid_amount"] = round(p["declared_value"] + p["freight"] + p["tax_withheld"], 2)
            return (true_value - p["declared_value"]) * CN_TAX_RATE
        if kind == "RESTRICTED_HS":
            prefix = self.restricted_hs[int(rng.integers(len(self.restricted_hs)))]
            p["items"][0]["hs_code"] = (prefix + "000000")[:10]
        elif kind == "PROHIBITED_DESCRIPTION":
            term = self.prohibited_terms[int(rng.integers(len(self.prohibited_terms)))]
            p["items"][0]["description"] = f"{p['items'][0]['description']} {term}"
        elif kind == "VAGUE_DESCRIPTION":
            p["items"][0]["description"] = self.vague_terms[int(rng.integers(len(self.vague_terms)))]
        elif kind == "WATCHLIST" and self.watchlist:
            entry = self.watchlist[int(rng.integers(len(self.watchlist)))]
            p[entry["field"]] = entry["value"]
        elif kind == "WEIGHT_INCONSISTENT":
            p["gross_weight_kg"] = round(p["net_weight_kg"] * float(rng.uniform(0.3, 0.7)), 3)
        elif kind == "RISKY_ROUTE":
            route = self.risky[int(rng.integers(len(self.risky)))]
            if route["origin_country"] != "*":
                p["origin_country"] = route["origin_country"]
                for it in p["items"]:
                    it["origin_country"] = route["origin_country"]
            if route["departure_country"] != "*":
                p["departure_country"] = route["departure_country"]
        elif kind == "AMOUNT_MISMATCH":
            p["paid_amount"] = round(p["paid_amount"] * float(rng.uniform(0.3, 0.7)), 2)
            return (p["declared_value"] + p["freight"]) * 0.5 * CN_TAX_RATE
        return 0.0

    def outcomes(self, inspected_at: str) -> Iterator[dict]:
        """Ground truth as inspection outcomes (DOMAIN.md: parcel_id, inspected_at, illicit, ...)."""
        for label in self.labels:
            yield {"parcel_id": label["parcel_id"], "inspected_at": inspected_at, "lane": "red",
                   "illicit": label["illicit"], "revenue": label["revenue"],
                   "finding_code": label["finding_code"], "note": "synthetic ground truth"}


# Ways a sender gets a parcel wrong, with the dead-letter reason each must produce.
PARCEL_DEFECTS = {
    "missing_consignee": ("missing_field", lambda p: p.pop("consignee_id")),
    "negative_weight": ("non_positive_value", lambda p: p.update(gross_weight_kg=-1.5)),
    "value_as_text": ("wrong_type", lambda p: p.update(declared_value="12.50")),
    "bad_hs_code": ("bad_format", lambda p: p["items"][0].update(hs_code="85A7")),
    "bad_country": ("bad_format", lambda p: p.update(origin_country="China")),
    "no_items": ("no_items", lambda p: p.update(items=[])),
}
# Whole messages that are not manifests, with the reason each must produce.
BAD_MESSAGES = {
    "not_json": (b'{"schema_version": 1, "manifest_id": "M-broken", "parcels": [', "not_json"),
    "not_object": (b'[{"parcel_id": "X"}]', "not_object"),
    "binary": (b"\x00\x9f\x92\x96 not text", "not_json"),
    "future_schema": (b'{"schema_version": 99, "manifest_id": "M-future", "parcels": []}', "unknown_schema_version"),
}


def break_parcel(parcel: dict, defect: str) -> str:
    """Damage a parcel in place with the named defect; returns the dead-letter reason it must get."""
    reason, damage = PARCEL_DEFECTS[defect]
    damage(parcel)
    return reason

DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parent.parent / "rules" / "reference"


def read_table(name: str, directory: str | Path | None = None) -> list[dict[str, str]]:
    """Rows of reference table `name` (file name without .csv) as dicts."""
    path = Path(directory or DEFAULT_REFERENCE_DIR) / f"{name}.csv"
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
