"""Parcel dicts (rule examples, `rules explain` input) -> ParcelBatch, through the worker's own batch builder."""

from __future__ import annotations

import copy

import orjson

from screener.pipeline.batch import ParcelBatch, Vocabularies
from screener.pipeline.columns import BatchBuilder
from screener.pipeline.decode import DecodedMessage, RawMessage

# A clean parcel that no default rule flags; rule examples override only the fields they are about.
BASE_PARCEL = {
    "parcel_id": "EXAMPLE",
    "event_time": "2026-11-11T08:00:00.000Z",
    "declaration_type": "CN_9610",
    "order_no": "O-EXAMPLE",
    "carrier_code": "SF",
    "platform_id": "TMALL-G",
    "seller_id": "S-00001",
    "seller_country": "JP",
    "consignee_id": "C-0000001",
    "consignee_name": "name-0000001",
    "consignee_phone": "+86-13900000001",
    "consignee_address": "addr-0000001",
    "origin_country": "JP",
    "departure_country": "JP",
    "destination_office": "CN-HGH-2991",
    "gross_weight_kg": 0.5,
    "net_weight_kg": 0.4,
    "declared_value": 500.0,
    "currency": "CNY",
    "freight": 30.0,
    "paid_amount": 575.5,
    "tax_withheld": 45.5,
    "items": [{"hs_code": "3304990000", "description": "face cream 50ml", "quantity": 2, "unit": "pcs",
               "unit_price": 250.0, "line_value": 500.0, "origin_country": "JP"}],
}
BASE_ITEM = BASE_PARCEL["items"][0]


def example_parcel(overrides: dict, parcel_id: str) -> dict:
    """The base parcel with an example's fields on top (each example item on top of the base item)."""
    parcel = copy.deepcopy(BASE_PARCEL)
    for key, value in overrides.items():
        if key == "items" and isinstance(value, list):
            parcel["items"] = [{**BASE_ITEM, **it} if isinstance(it, dict) else it for it in value]
        else:
            parcel[key] = value
    parcel["parcel_id"] = parcel_id
    return parcel


class ParcelInputError(Exception):
    """Parcels that the worker would set aside as invalid, with the reasons."""


def batch_from_parcels(parcels: list[dict], vocab: Vocabularies | None = None) -> ParcelBatch:
    """A ParcelBatch of the parcels, validated as the worker validates them (raises on any invalid one)."""
    message = DecodedMessage(raw=RawMessage(b""), manifest_id="input", parcels=list(parcels))
    batch, rejected = BatchBuilder(vocab).build([message])
    if rejected:
        lines = [f"parcel {r.parcel_index} ({(r.parcel or {}).get('parcel_id', '?') if isinstance(r.parcel, dict) else '?'}):"
                 f" {r.rejection.field or ''} {r.rejection.message}" for r in rejected]
        raise ParcelInputError("invalid parcel(s):\n  " + "\n  ".join(lines))
    return batch


def parcels_from_text(text: str) -> list[dict]:
    """Parcels from JSON text: a parcel, a manifest ({"parcels": [...]}), a list of either, or JSON lines."""
    text = text.strip()
    try:
        docs = [orjson.loads(text)]
    except orjson.JSONDecodeError:
        docs = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    out: list[dict] = []
    for doc in docs:
        for d in doc if isinstance(doc, list) else [doc]:
            if isinstance(d, dict) and isinstance(d.get("parcels"), list):
                out += d["parcels"]
            else:
                out.append(d)
    return out
