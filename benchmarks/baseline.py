"""The baseline: the idiomatic Faust design the screener is measured against.

One parcel per event deserialised into a `faust.Record`, the default rules written as plain
Python over that record, one `Decision` record sent per parcel. Nothing here is deliberately
slow; it is how the Faust documentation suggests writing such an agent. Rules: R1 value per kg
below the HS band, R4 prohibited / licensed HS prefixes, R5 prohibited words, R6 vague
descriptions, R9 gross below net, R10 risky routes, R13 paid amount mismatch, then the
reproducible random selection of the default pack; noisy-or score and the pack's lane thresholds.

Run as a worker: `python -m benchmarks.baseline --broker kafka://h:p --in-topic T --out-topic U --app-id A`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re

import faust

from screener.generator import read_table
from screener.kernels.hashing import fnv1a64_reference, seeded_uniform_reference

YELLOW, RED, RANDOM_RATE, SEED = 0.3, 0.7, 0.01, 20261111


class Item(faust.Record, serializer="json"):
    """One line of a parcel."""

    hs_code: str
    description: str
    quantity: float
    line_value: float
    unit: str = ""
    unit_price: float = 0.0
    origin_country: str = ""


class Parcel(faust.Record, serializer="json"):
    """One parcel event (a bare parcel record on the wire)."""

    parcel_id: str
    declaration_type: str
    seller_id: str
    consignee_id: str
    origin_country: str
    currency: str
    gross_weight_kg: float
    declared_value: float
    items: list[Item]
    event_time: str = ""
    departure_country: str = ""
    net_weight_kg: float = 0.0
    freight: float = 0.0
    paid_amount: float = 0.0
    tax_withheld: float = 0.0
    consignee_phone: str = ""
    manifest_id: str = ""


class Decision(faust.Record, serializer="json"):
    """One decision per parcel."""

    parcel_id: str
    lane: str
    score: float
    reasons: list[str]
    decided_at: str


class DefaultRules:
    """The default pack's rules as plain Python over one Parcel."""

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

    def screen(self, p: Parcel) -> Decision:
        """Decide one parcel."""
        fired: list[tuple[str, float]] = []
        kg = p.net_weight_kg if p.net_weight_kg > 0 else p.gross_weight_kg
        vpk = p.declared_value * self.fx.get(p.currency, float("nan")) / kg
        bands = [b for b in (self.band(it.hs_code) for it in p.items) if b]
        if bands and vpk < min(b[0] for b in bands):
            fired.append(("R1_UNDERVALUED_PER_KG", 0.6))
        if bands and vpk > 2 * max(b[1] for b in bands):
            fired.append(("R9_VALUE_PER_KG_ABOVE_BAND", 0.3))
        if any(it.hs_code.startswith(self.prohibited_hs) for it in p.items):
            fired.append(("R4_PROHIBITED_HS", 0.9))
        if any(it.hs_code.startswith(self.licensed_hs) for it in p.items):
            fired.append(("R4_LICENSED_HS", 0.5))
        if any(self.prohibited.search(it.description) for it in p.items):
            fired.append(("R5_PROHIBITED_DESCRIPTION", 0.9))
        if any(len(it.description) < 4 or set(it.description.lower().split()) <= self.vague for it in p.items):
            fired.append(("R6_VAGUE_DESCRIPTION", 0.35))
        day = p.event_time[:10]
        for field in ("consignee_id", "consignee_phone", "seller_id"):
            valid = self.watchlist.get((field, getattr(p, field)))
            if valid and valid[0] <= day <= valid[1]:
                fired.append(("R8_WATCHLIST", 0.75))
                break
        if p.gross_weight_kg < p.net_weight_kg:
            fired.append(("R9_GROSS_BELOW_NET", 0.4))
        o, d = p.origin_country, p.departure_country or p.origin_country
        if (o, d) in self.routes or (o, "*") in self.routes or ("*", d) in self.routes:
            fired.append(("R10_RISKY_ROUTE", 0.5))
        expected = p.declared_value + max(p.freight, 0) + max(p.tax_withheld, 0)
        if abs(p.paid_amount - expected) > 0.05 * p.paid_amount:
            fired.append(("R13_PAID_AMOUNT_MISMATCH", 0.5))
        keep = 1.0
        for _, w in fired:
            keep *= 1.0 - w
        score = 1.0 - keep
        lane = "red" if score >= RED else "yellow" if score >= YELLOW else "green"
        reasons = [rid for rid, _ in fired]
        if seeded_uniform_reference(fnv1a64_reference(p.parcel_id), SEED) < RANDOM_RATE:
            lane = "red"
            reasons.append("random")
        return Decision(parcel_id=p.parcel_id, lane=lane, score=round(score, 6), reasons=reasons,
                        decided_at=dt.datetime.now(dt.UTC).isoformat())


def create_app(broker: str, in_topic: str, out_topic: str, app_id: str, partitions: int,
               data_dir: str = ".baseline-data") -> faust.App:
    """The baseline Faust app (group timings as the screener's, so start-up is comparable)."""
    app = faust.App(app_id, broker=broker, web_enabled=False, datadir=data_dir, topic_partitions=partitions,
                    consumer_auto_offset_reset="earliest", broker_session_timeout=6.0,
                    broker_heartbeat_interval=1.0, broker_rebalance_timeout=10.0)
    parcels = app.topic(in_topic, value_type=Parcel, partitions=partitions)
    decisions = app.topic(out_topic, value_type=Decision, partitions=partitions)
    rules = DefaultRules()

    @app.agent(parcels, name="baseline-screen")
    async def screen(stream: faust.StreamT[Parcel]) -> None:
        async for parcel in stream:
            await decisions.send(key=parcel.parcel_id, value=rules.screen(parcel))

    return app


def main(argv: list[str] | None = None) -> None:
    """Run the baseline worker until SIGTERM."""
    from faust.worker import Worker

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", required=True)
    ap.add_argument("--in-topic", required=True)
    ap.add_argument("--out-topic", required=True)
    ap.add_argument("--app-id", required=True)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--data-dir", default=".baseline-data")
    args = ap.parse_args(argv)
    app = create_app(args.broker, args.in_topic, args.out_topic, args.app_id, args.partitions, args.data_dir)
    app.finalize()
    Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
