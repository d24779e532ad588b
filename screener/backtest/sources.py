"""Historical records for replay: parcel messages in event-time order, inspection outcomes, extra fields.

`jsonl`: manifests or bare parcels as the worker reads them (e.g. `screener generate`), outcomes from
`--labels` (JSONL of parcel_id, illicit, revenue, as `screener generate --labels` writes).
`kcs`: the KCS synthetic import declarations (CSV), mapped to parcel records as docs/backtest.md says;
Fraud is the outcome; fields a parcel record lacks are carried as extra fields.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass, field
from itertools import groupby

import orjson

from screener.features.extras import ExtraColumns

KCS_MANIFEST_SIZE = 500
# KCS column -> extra field (fields the parcel record lacks; docs/backtest.md)
KCS_EXTRA_TEXT = {"Declarant ID": "declarant_id", "Process Type": "process_type", "Import Type": "import_type",
                  "Import Use": "import_use", "Payment Type": "payment_type", "Mode of Transport": "transport_mode",
                  "Tax Type": "tax_type", "Country of Origin Indicator": "origin_indicator"}
KCS_EXTRA_NUMBER = {"Tax Rate": "tax_rate"}
KCS_MIN_WEIGHT_KG = 0.001


class SourceError(Exception):
    """A data or labels file that cannot be read (says which file and line)."""


@dataclass(slots=True)
class Outcome:
    """An inspection outcome of one parcel."""

    illicit: bool
    revenue: float = math.nan


@dataclass(slots=True)
class SourceMessage:
    """One message to replay: its bytes, and the parcel ids and event times it holds."""

    value: bytes
    time_ms: int
    parcel_times: dict[str, int]


@dataclass
class Source:
    """Everything a replay needs: messages in event-time order, outcomes by parcel_id, extra fields."""

    messages: list[SourceMessage]
    outcomes: dict[str, Outcome]
    extras: ExtraColumns | None = None
    files: list[str] = field(default_factory=list)


def parse_time_ms(value) -> int | None:
    """Epoch milliseconds of an ISO 8601 string (UTC when naive) or an epoch-ms integer; None if neither."""
    if type(value) is int:
        return value
    if type(value) is not str:
        return None
    try:
        d = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp() * 1000)


def _sorted(messages: list[SourceMessage]) -> list[SourceMessage]:
    return sorted(messages, key=lambda m: m.time_ms)  # stable: equal times keep file order


def read_labels(path: str) -> dict[str, Outcome]:
    """Outcomes (JSONL: parcel_id, illicit, optional revenue) by parcel_id; the last one of a parcel wins."""
    out: dict[str, Outcome] = {}
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                o = orjson.loads(line)
                rev = o.get("revenue")
                out[str(o["parcel_id"])] = Outcome(bool(o["illicit"]), float(rev) if rev is not None else math.nan)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise SourceError(f"{path}:{n}: not an outcome ({type(exc).__name__}: {exc})") from None
    return out


def read_jsonl(paths: list[str], labels: str | None) -> Source:
    """Messages of JSONL files (manifests or bare parcels) in event-time order; outcomes from `labels`."""
    messages: list[SourceMessage] = []
    last = 0
    for path in paths:
        with open(path, "rb") as f:
            for line in f:
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                times: dict[str, int] = {}
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    doc = None  # replayed as is: the worker dead-letters it
                parcels = doc.get("parcels", [doc]) if type(doc) is dict else []
                for p in parcels if type(parcels) is list else []:
                    if type(p) is dict and type(p.get("parcel_id")) is str:
                        t = parse_time_ms(p.get("event_time"))
                        if t is not None:
                            times[p["parcel_id"]] = t
                last = min(times.values()) if times else last
                messages.append(SourceMessage(line, last, times))
    return Source(_sorted(messages), read_labels(labels) if labels else {}, None, list(paths))


def _number(row: dict, column: str, path: str, n: int) -> float:
    try:
        return float(row[column]) if row[column] != "" else math.nan
    except (KeyError, ValueError):
        raise SourceError(f"{path}:{n}: column {column!r} is missing or not a number") from None


def kcs_parcel(row: dict, path: str = "", n: int = 0) -> dict:
    """The parcel record of one KCS declaration row (docs/backtest.md has the mapping)."""
    # Rounded (0.01 KRW, 1 mg): the synthetic values carry float noise such as 4897.0999999999985, which
    # the worker's fast decoder leaves to the slower reference path.
    mass = round(_number(row, "Net Mass", path, n), 6)
    price = round(_number(row, "Item Price", path, n), 2)
    hs6 = row["HS6 Code"].strip().zfill(6)
    origin = row["Country of Origin"].strip()
    parcel = {
        "parcel_id": f"KCS-{row['Declaration ID']}",
        "event_time": f"{row['Date']}T00:00:00Z",
        "declaration_type": "KR_IMPORT",
        "consignee_id": row["Importer ID"],
        "seller_id": row["Seller ID"] or "UNKNOWN",
        "carrier_code": row["Courier ID"] or None,
        "destination_office": row["Office ID"],
        "origin_country": origin,
        "departure_country": row["Country of Departure"].strip() or None,
        "net_weight_kg": mass,
        # The record needs a positive gross weight; KCS has net mass only (sometimes 0).
        "gross_weight_kg": max(mass, KCS_MIN_WEIGHT_KG),
        "declared_value": price,
        "currency": "KRW",
        "items": [{"hs_code": hs6, "description": f"HS {hs6}", "quantity": 1, "line_value": price,
                   "unit_price": price, "origin_country": origin}],
    }
    return {k: v for k, v in parcel.items() if v is not None}


def read_kcs(paths: list[str]) -> Source:
    """KCS CSV rows as manifests (up to KCS_MANIFEST_SIZE declarations of one date each), Fraud as the outcome."""
    rows: list[tuple[dict, str, int]] = []
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            need = {"Declaration ID", "Date", "Importer ID", "HS6 Code", "Fraud"}
            if not need <= set(reader.fieldnames or ()):
                raise SourceError(f"{path}: not a KCS file (needs columns {', '.join(sorted(need))})")
            rows.extend((r, path, n) for n, r in enumerate(reader, 2))
    rows.sort(key=lambda x: x[0]["Date"])
    extras = ExtraColumns()
    outcomes: dict[str, Outcome] = {}
    messages: list[SourceMessage] = []
    for date, group in groupby(rows, key=lambda x: x[0]["Date"]):
        day = list(group)
        t = parse_time_ms(f"{date}T00:00:00Z")
        if t is None:
            raise SourceError(f"{day[0][1]}:{day[0][2]}: Date {date!r} is not a date")
        for k in range(0, len(day), KCS_MANIFEST_SIZE):
            chunk = day[k:k + KCS_MANIFEST_SIZE]
            parcels = [kcs_parcel(r, path, n) for r, path, n in chunk]
            pids = [p["parcel_id"] for p in parcels]
            for (r, path, n), pid in zip(chunk, pids):
                outcomes[pid] = Outcome(_number(r, "Fraud", path, n) == 1.0)
            extras.add(pids, {name: [r[0].get(col, "") for r in chunk] for col, name in KCS_EXTRA_TEXT.items()},
                       {name: [_number(r, col, path, n) for r, path, n in chunk] for col, name in KCS_EXTRA_NUMBER.items()})
            manifest = {"schema_version": 1, "manifest_id": f"KCS-{date}-{k // KCS_MANIFEST_SIZE}", "parcels": parcels}
            messages.append(SourceMessage(orjson.dumps(manifest), t, dict.fromkeys(pids, t)))
    return Source(messages, outcomes, extras, list(paths))


def merge_sources(first: Source, second: Source) -> Source:
    """Both sources as one history in event-time order (as if their files had been read together)."""
    extras = None
    if first.extras is not None or second.extras is not None:
        extras = ExtraColumns()
        for src in (first, second):
            if src.extras is not None:
                extras.merge(src.extras)
    return Source(_sorted(first.messages + second.messages), {**first.outcomes, **second.outcomes}, extras,
                  first.files + second.files)


def read_source(paths: list[str], fmt: str, labels: str | None = None) -> Source:
    """Read `paths` in format `jsonl` or `kcs` (KCS files carry their own outcomes; `labels` overrides them)."""
    if fmt == "kcs":
        source = read_kcs(paths)
        if labels:
            source.outcomes = read_labels(labels)
        return source
    if fmt == "jsonl":
        return read_jsonl(paths, labels)
    raise SourceError(f"unknown format {fmt!r} (jsonl or kcs)")
