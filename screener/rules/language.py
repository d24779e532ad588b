"""What a condition may name: parcel and item fields, derived fields and functions, with their docs."""

from __future__ import annotations

from screener.pipeline.batch import ITEM_NUMBER_FIELDS, PARCEL_NUMBER_FIELDS, PARCEL_STRING_FIELDS, STATE_NUMBER_FIELDS

# State fields (stateful rules, docs/state.md): what the worker's entity state says about the parcel's
# consignee, seller, origin and HS codes when the parcel is screened. Read like parcel numbers.
STATE = {
    "consignee_24h_count": "parcels to the consignee with event times in the 24 h up to this one's, itself included",
    "consignee_24h_value_usd": "their declared value, USD",
    "consignee_year_value_usd": "the consignee's declared value in this parcel's calendar year (UTC) so far, USD",
    "consignee_parcels_before": "parcels of the consignee seen before this one (0: a new consignee)",
    "consignee_days_known": "days since the consignee's first parcel (0 for a new consignee)",
    "consignee_late": "1 when the parcel came later than the allowed lateness (not counted in windows), else 0",
    "consignee_illicit_rate": "smoothed past illicit rate of the consignee's inspected parcels (Beta prior)",
    "consignee_inspections": "inspection outcomes of the consignee's parcels so far",
    "seller_illicit_rate": "smoothed past illicit rate of the seller's inspected parcels",
    "seller_inspections": "inspection outcomes of the seller's parcels so far",
    "origin_illicit_rate": "smoothed past illicit rate of parcels from the origin country",
    "hs6_illicit_rate": "highest smoothed past illicit rate of the parcel's items' HS6 codes",
    "origin_hs6_illicit_rate": "highest smoothed past illicit rate of (origin, item HS6) pairs",
}
assert tuple(STATE) == STATE_NUMBER_FIELDS

# Parcel-level fields: name -> column in ParcelBatch.numbers / .strings (same name).
PARCEL_NUMBERS = {f: f for f in PARCEL_NUMBER_FIELDS + STATE_NUMBER_FIELDS}
PARCEL_STRINGS = {f: f for f in PARCEL_STRING_FIELDS}

# Item-level fields (only inside an item quantifier): language name -> (batch column, vocabulary).
# The item origin gets its own name so it never shadows the parcel's origin_country.
ITEM_NUMBERS = {f: f for f in ITEM_NUMBER_FIELDS}
ITEM_STRINGS = {
    "hs_code": ("hs_code", "item_hs_code"),
    "description": ("description", "item_description"),
    "unit": ("unit", "item_unit"),
    "item_origin_country": ("origin_country", "item_origin_country"),
}

# Derived fields: name -> (level, what it is). Definitions live in parser.derived_field.
DERIVED = {
    "fx_usd": ("parcel", "USD per unit of the parcel's currency (fx.csv); NaN for an unknown currency"),
    "value_usd": ("parcel", "declared_value * fx_usd"),
    "freight_usd": ("parcel", "freight * fx_usd"),
    "paid_usd": ("parcel", "paid_amount * fx_usd"),
    "tax_usd": ("parcel", "tax_withheld * fx_usd"),
    "weight_kg": ("parcel", "net_weight_kg when above 0, else gross_weight_kg"),
    "value_per_kg": ("parcel", "value_usd / weight_kg (USD per kg)"),
    "item_count": ("parcel", "number of item lines"),
    "total_quantity": ("parcel", "sum of item quantities"),
    "items_value": ("parcel", "sum of item line values (declared currency)"),
    "items_value_usd": ("parcel", "items_value * fx_usd"),
    "value_cny": ("parcel", "value_usd in CNY (fx.csv)"),
    "consignee_24h_value_cny": ("parcel", "consignee_24h_value_usd in CNY (fx.csv)"),
    "consignee_year_value_cny": ("parcel", "consignee_year_value_usd in CNY (fx.csv)"),
    "unit_price_usd": ("item", "unit_price * fx_usd"),
    "line_value_usd": ("item", "line_value * fx_usd"),
}

# Functions: name -> signature shown in errors and docs.
FUNCTIONS = {
    "abs": "abs(number) -> number",
    "min": "min(number, number, ...) -> number (NaN arguments ignored)",
    "max": "max(number, number, ...) -> number (NaN arguments ignored)",
    "missing": "missing(field) -> boolean: number is NaN / string is empty",
    "present": "present(field) -> boolean: not missing(field)",
    "startswith": "startswith(string_field, LIST) -> boolean: starts with any prefix of the list",
    "contains_any": "contains_any(string_field, LIST) -> boolean: contains any term as whole words, any case",
    "only_terms": "only_terms(string_field, LIST) -> boolean: every word is a word of the list's terms",
    "length": "length(string_field) -> number of characters",
    "word_count": "word_count(string_field) -> number of words",
    "watchlisted": "watchlisted(string_field) -> boolean: on watchlist.csv for that field, on the event date",
    "band_min": "band_min(hs_code[, origin_field]) -> USD/kg lower bound from value_bands.csv (NaN if none)",
    "band_max": "band_max(hs_code[, origin_field]) -> USD/kg upper bound from value_bands.csv (NaN if none)",
    "table": 'table("name", "column"[, "column2"][, column=value ...]) -> LIST (or pair table)',
    "any_item": "any_item(boolean over item fields) -> boolean",
    "all_items": "all_items(boolean over item fields) -> boolean (true when there are no items)",
    "count_items": "count_items(boolean over item fields) -> number",
    "sum_items": "sum_items(number over item fields) -> number",
    "min_item": "min_item(number over item fields) -> number (NaN values ignored)",
    "max_item": "max_item(number over item fields) -> number (NaN values ignored)",
}

LIST_FORMS = 'a string "x", a list of strings ["x", "y"] or table("name", "column", ...)'


def all_names() -> list[str]:
    """Every name a condition may use (for "did you mean" suggestions)."""
    return sorted(set(PARCEL_NUMBERS) | set(PARCEL_STRINGS) | set(ITEM_NUMBERS) | set(ITEM_STRINGS)
                  | set(DERIVED) | set(FUNCTIONS))
