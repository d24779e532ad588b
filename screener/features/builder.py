"""The model's input matrix for a batch: the parcel's own fields, derived ratios, categoricals, extra fields
carried beside the parcel record, and online entity statistics. Training and serving both call
`FeatureBuilder.build`, so the features a model was trained on are the features it is served.
"""

from __future__ import annotations

import numpy as np

from screener.features.entity import EntityStats
from screener.features.extras import ExtraColumns
from screener.generator import read_table
from screener.pipeline.batch import PARCEL_NUMBER_FIELDS, ParcelBatch
from screener.pipeline.normalise import normalise

DERIVED_FIELDS = ("value_usd", "value_per_kg_usd", "gross_over_net", "paid_over_expected", "tax_over_value",
                  "freight_over_value", "item_count", "total_quantity", "max_line_share", "origin_is_departure")
CATEGORICAL_FIELDS = ("declaration_type", "carrier_code", "platform_id", "seller_country", "origin_country",
                      "departure_country", "destination_office", "currency", "hs2", "hs4")
# Fields a parcel record lacks but some sources carry (KCS import declarations), see docs/backtest.md.
EXTRA_CATEGORICAL_FIELDS = ("process_type", "import_type", "import_use", "payment_type", "transport_mode",
                            "tax_type", "origin_indicator")
EXTRA_NUMBER_FIELDS = ("tax_rate",)
RULE_PREFIX = "rule_"
ENTITY_SOURCES = ("consignee_id", "seller_id", "origin_country", "destination_office")


class CategoryMap:
    """String -> category number of one categorical feature; numbers are assigned in first-seen order while
    training and frozen for serving (an unseen string is then NaN, which the trees send right)."""

    def __init__(self, values: list[str] | None = None) -> None:
        self.values: list[str] = list(values or [])
        self.ids = {v: i for i, v in enumerate(self.values)}
        self.frozen = values is not None

    def encode(self, strings: list[str | None]) -> np.ndarray:
        """Category numbers as float64 (NaN for missing or, once frozen, unseen)."""
        if not self.frozen:
            for s in strings:
                if s is not None and s not in self.ids:
                    self.ids[s] = len(self.values)
                    self.values.append(s)
        nan = float("nan")
        get = self.ids.get
        return np.array([nan if s is None else get(s, nan) for s in strings], dtype=np.float64)


def _per_code(codes: np.ndarray, vocabulary, fn) -> list:
    """fn(string) for each code, computed once per distinct code; fn's None means missing.

    Codes are read before the vocabulary's strings: columns may intern lazily, on first read.
    """
    uniq, inv = np.unique(codes, return_inverse=True)
    strings = vocabulary.strings
    vals = [fn(strings[c]) if c else None for c in uniq.tolist()]
    return [vals[i] for i in inv.tolist()]


def _key(s: str) -> str | None:
    return normalise(s) or None


class FeatureBuilder:
    """Builds the feature matrix of a batch and keeps the online state it needs (categories, entity statistics)."""

    def __init__(self, categories: dict[str, list[str]] | None = None, stats: EntityStats | None = None,
                 rule_features: list[str] | None = None, reference_dir: str | None = None) -> None:
        cats = categories or {}
        self.rule_features = list(rule_features or [])  # rule ids whose hit (0/1) is a feature
        self.categories = {f: CategoryMap(cats.get(f) if categories is not None else None)
                           for f in CATEGORICAL_FIELDS + EXTRA_CATEGORICAL_FIELDS}
        self.stats = stats if stats is not None else EntityStats()
        self.usd_per_unit = {normalise(r["currency"]): float(r["usd_per_unit"])
                             for r in read_table("fx", reference_dir)}
        self.extras: ExtraColumns | None = None  # fields carried beside the parcel records, when a source has them

    @property
    def feature_names(self) -> list[str]:
        """Column names of the matrix `build` returns."""
        return [*PARCEL_NUMBER_FIELDS, *DERIVED_FIELDS, *CATEGORICAL_FIELDS, *EXTRA_CATEGORICAL_FIELDS,
                *EXTRA_NUMBER_FIELDS, *self.stats.feature_names, *(RULE_PREFIX + r for r in self.rule_features)]

    @property
    def categorical_features(self) -> list[str]:
        """Columns holding category numbers."""
        return [*CATEGORICAL_FIELDS, *EXTRA_CATEGORICAL_FIELDS]

    def freeze(self) -> None:
        """Stop assigning category numbers (after training)."""
        for c in self.categories.values():
            c.frozen = True

    def category_values(self) -> dict[str, list[str]]:
        """Category strings by feature, in number order (saved with a model)."""
        return {f: list(c.values) for f, c in self.categories.items()}

    def build(self, batch: ParcelBatch, hits: np.ndarray | None = None, rule_ids: list[str] | None = None) -> np.ndarray:
        """Feature matrix [n, features] (float64, NaN = missing) of the batch; counts the batch in the statistics.

        `hits` (uint64 [n, words], bit r = rule_ids[r] fired) feeds the rule features; a rule the
        screener does not have is missing (NaN).
        """
        n = batch.n
        num = batch.numbers
        off = batch.item_offsets
        first_item = off[:-1]
        cols: list[np.ndarray] = [num[f] for f in PARCEL_NUMBER_FIELDS]

        rate = np.array(_per_code(batch.strings["currency"], batch.vocab["currency"],
                                  lambda s: self.usd_per_unit.get(normalise(s))), dtype=np.float64)
        value = num["declared_value"]
        weight = np.where(num["net_weight_kg"] > 0, num["net_weight_kg"], num["gross_weight_kg"])
        with np.errstate(divide="ignore", invalid="ignore"):
            value_usd = value * rate
            expected = value + np.nan_to_num(num["freight"]) + np.nan_to_num(num["tax_withheld"])
            item_count = np.diff(off).astype(np.float64)
            qty = np.add.reduceat(batch.item_numbers["quantity"], first_item) if n else np.zeros(0)
            max_line = np.maximum.reduceat(batch.item_numbers["line_value"], first_item) if n else np.zeros(0)
            origin = batch.strings["origin_country"]
            derived = [value_usd, value_usd / weight, num["gross_weight_kg"] / num["net_weight_kg"],
                       num["paid_amount"] / expected, num["tax_withheld"] / value, num["freight"] / value,
                       item_count, qty, max_line / value,
                       np.where(batch.strings["departure_country"] > 0,
                                (origin == batch.strings["departure_country"]).astype(np.float64), np.nan)]
        cols += [np.where(np.isfinite(c), c, np.nan) for c in derived]

        hs_vocab = batch.vocab["item_hs_code"]
        hs_codes = batch.item_strings["hs_code"][first_item] if n else np.zeros(0, dtype=np.int32)
        text = {f: _per_code(batch.strings[f], batch.vocab[f], _key)
                for f in CATEGORICAL_FIELDS if f in batch.strings}
        text["hs2"] = _per_code(hs_codes, hs_vocab, lambda s: s[:2] or None)
        text["hs4"] = _per_code(hs_codes, hs_vocab, lambda s: s[:4] or None)
        extras = self.extras.rows_for(batch.parcel_ids) if self.extras is not None else None
        for f in EXTRA_CATEGORICAL_FIELDS:
            text[f] = extras.strings(f) if extras is not None else [None] * n
        cols += [self.categories[f].encode(text[f]) for f in CATEGORICAL_FIELDS + EXTRA_CATEGORICAL_FIELDS]
        cols += [extras.numbers(f) if extras is not None else np.full(n, np.nan) for f in EXTRA_NUMBER_FIELDS]

        sources = {f: text[f] if f in text else _per_code(batch.strings[f], batch.vocab[f], _key)
                   for f in ENTITY_SOURCES}
        sources["hs6"] = _per_code(hs_codes, hs_vocab, lambda s: s[:6] or None)
        sources["declarant_id"] = extras.strings("declarant_id") if extras is not None else [None] * n
        cols.append(self.stats.read_and_count(batch.parcel_ids, sources))
        cols += self._rule_columns(n, hits, rule_ids or [])
        return np.ascontiguousarray(np.column_stack(cols) if n else np.zeros((0, len(self.feature_names))))

    def _rule_columns(self, n: int, hits: np.ndarray | None, rule_ids: list[str]) -> list[np.ndarray]:
        position = {r: k for k, r in enumerate(rule_ids)}
        out = []
        for rule in self.rule_features:
            k = position.get(rule)
            if hits is None or k is None:
                out.append(np.full(n, np.nan))
            else:
                out.append(((hits[:, k >> 6] >> np.uint64(k & 63)) & np.uint64(1)).astype(np.float64))
        return out
