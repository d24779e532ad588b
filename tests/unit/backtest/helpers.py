"""Small histories for backtest tests: generator manifests spread over days, and a few KCS rows."""

from __future__ import annotations

import datetime as dt

import orjson

from screener.backtest.sources import Outcome, Source, SourceMessage, parse_time_ms
from screener.generator import GeneratorConfig, ManifestGenerator


def generated_history(manifests: int = 40, parcels: int = 50, seed: int = 5, hours_apart: float = 12.0,
                      consignees: int = 60, sellers: int = 20) -> Source:
    """Generator manifests, one every `hours_apart` hours, few entities (so statistics matter), with outcomes."""
    gen = ManifestGenerator(GeneratorConfig(manifests=manifests, parcels_per_manifest=parcels, seed=seed,
                                            consignees=consignees, sellers=sellers, fraud_scale=5.0))
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    messages = []
    for m, manifest in enumerate(gen.manifests()):
        base = start + dt.timedelta(hours=hours_apart * m)
        times = {}
        for i, p in enumerate(manifest["parcels"]):
            t = base + dt.timedelta(seconds=i)
            p["event_time"] = t.isoformat().replace("+00:00", "Z")
            times[p["parcel_id"]] = parse_time_ms(p["event_time"])
        messages.append(SourceMessage(orjson.dumps(manifest), min(times.values()), times))
    outcomes = {o["parcel_id"]: Outcome(o["illicit"], o["revenue"]) for o in gen.outcomes(start.isoformat())}
    return Source(messages, outcomes)


KCS_HEADER = ("Declaration ID,Date,Office ID,Process Type,Import Type,Import Use,Payment Type,Mode of Transport,"
              "Declarant ID,Importer ID,Seller ID,Courier ID,HS6 Code,Country of Departure,Country of Origin,Tax Rate,"
              "Tax Type,Country of Origin Indicator,Net Mass,Item Price,Fraud,Critical Fraud")
KCS_ROWS = [
    "97061800,2020-01-02,30,B,11,21,11,10,ZZR1LT6,QLRUBN9,0VKY2BR,,440890,BE,BE,0.0,FEU1,G,108.0,372254.4,0,0",
    "85945189,2020-01-01,40,B,11,21,11,40,SWF9S4X,7JD1S2X,8WDKMC6,,690722,CN,CN,8.0,A,Y,0.0,375751.2,1,2",
    "85945190,2020-01-01,40,B,11,21,11,40,SWF9S4X,7JD1S2X,,MWIDNS,71080,CN,CN,8.0,A,Y,5.5,0.0,0,0",
]


def write_kcs(path, rows=KCS_ROWS) -> str:
    """A small KCS CSV file."""
    path.write_text("\n".join([KCS_HEADER, *rows]) + "\n")
    return str(path)
