"""Test helpers: write packs and reference tables, and build ParcelBatches without validation.

`make_batch` fills columns directly (NaN for absent numbers, code 0 for absent strings, zero
items allowed), so tests reach inputs the worker's validator would refuse.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import numpy as np

from screener.kernels.hashing import hash_ids
from screener.pipeline.batch import (
    ITEM_NUMBER_FIELDS,
    ITEM_STRING_FIELDS,
    PARCEL_NUMBER_FIELDS,
    PARCEL_STRING_FIELDS,
    ParcelBatch,
    Vocabularies,
)

REFERENCE = {
    "fx.csv": "currency,usd_per_unit\nUSD,1.0\nCNY,0.14\nEUR,1.08\n",
    "value_bands.csv": ("hs_prefix,origin_country,min_usd_per_kg,max_usd_per_kg,note\n"
                        "85,*,5,500,electrical\n8517,*,40,4000,phones\n8517,CN,20,3000,phones from CN\n"
                        "61,*,6,300,clothes\n61,VN,3,,clothes from VN (no max)\n"),
    "terms.csv": ("term,category,valid_from,valid_until\ncocaine,narcotics,,\nfake nike,counterfeit,2026-01-01,"
                  "2026-06-30\nfake nike,counterfeit,2026-09-01,\npistol,weapons,2027-01-01,2027-12-31\n"),
    "words.csv": "term\ngift\nsample\nspare parts\n",
    "routes.csv": "origin_country,departure_country,reason\n*,XA,hub\nAF,*,origin\nCN,TR,pair\n",
    "restricted_hs.csv": "hs_prefix,kind,reason\n9301,prohibited,arms\n3004,licensed,medicine\n",
    "watchlist.csv": ("field,value,reason,valid_from,valid_until\nconsignee_id,C1,r,2026-01-01,2026-03-31\n"
                      "consignee_id,C1,r,2026-06-01,2026-12-31\nconsignee_id,C2,r,,\nseller_id,S1,r,2026-05-01,\n"),
}


def write_reference(directory: Path) -> Path:
    """A reference directory with small tables covering every table feature."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in REFERENCE.items():
        (directory / name).write_text(text)
    return directory


def write_pack(directory: Path, rules: list[dict], *, yellow: float = 0.3, red: float = 0.7, rate: float = 0.0,
               seed: int = 7, extra: str = "", pack_id: str = "t") -> Path:
    """A pack file in `directory` (reference tables beside it) with the given rules."""
    write_reference(directory / "reference")
    out = [f'[pack]\nid = "{pack_id}"\nversion = "1"\n\n[lanes]\nyellow = {yellow}\nred = {red}\n\n'
           f'[random]\nrate = {rate}\nseed = {seed}\n' + extra]
    for r in rules:
        lines = ["[[rules]]"]
        for key, value in r.items():
            if isinstance(value, str) and not key.startswith("valid"):
                lines.append(f"{key} = {_toml_str(value)}")
            elif isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            else:
                lines.append(f"{key} = {value}")
        out.append("\n".join(lines))
    path = directory / "pack.toml"
    path.write_text("\n\n".join(out) + "\n")
    return path


def _toml_str(value: str) -> str:
    if "'''" not in value and "\n" not in value:
        return "'''" + value + "'''"
    return '"""' + value.replace("\\", "\\\\").replace('"""', '\\"""') + '"""'


def ms(text: str) -> int:
    """Epoch ms of an ISO time (UTC)."""
    d = dt.datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp() * 1000)


def make_batch(parcels: list[dict], vocab: Vocabularies | None = None) -> ParcelBatch:
    """A ParcelBatch straight from dicts: missing numbers are NaN, missing strings code 0, items may be empty."""
    vocab = vocab if vocab is not None else Vocabularies()
    n = len(parcels)
    items = [it for p in parcels for it in p.get("items", [])]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(p.get("items", [])) for p in parcels], out=offsets[1:])

    def num(rows, f):
        return np.array([np.nan if r.get(f) is None else float(r[f]) for r in rows], dtype=np.float64)

    pids = [p.get("parcel_id", f"P{k}") for k, p in enumerate(parcels)]
    return ParcelBatch(
        parcel_ids=pids,
        message_index=np.zeros(n, dtype=np.int32),
        parcel_hash=hash_ids(pids),
        event_time_ms=np.array([ms(p.get("event_time", "2026-11-11T00:00:00Z")) for p in parcels], dtype=np.int64),
        strings={f: vocab[f].intern_many([p.get(f) for p in parcels]) for f in PARCEL_STRING_FIELDS},
        numbers={f: num(parcels, f) for f in PARCEL_NUMBER_FIELDS},
        item_offsets=offsets,
        item_strings={f: vocab["item_" + f].intern_many([it.get(f) for it in items]) for f in ITEM_STRING_FIELDS},
        item_numbers={f: num(items, f) for f in ITEM_NUMBER_FIELDS},
        vocab=vocab,
    )


def dedent(text: str) -> str:
    """textwrap.dedent, for inline TOML."""
    return textwrap.dedent(text).lstrip()
