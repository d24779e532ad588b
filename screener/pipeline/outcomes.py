"""Decodes and validates inspection outcomes (topic `inspections`, schema screener/schemas/inspection.schema.json).

One message is one outcome: `{"parcel_id", "inspected_at", "illicit", ...}`. The rules are those of a parcel
where they overlap: `inspected_at` is read by the parcels' `event_time_ms` (ISO 8601 or epoch milliseconds),
ids are at most 128 characters, booleans and numbers are JSON booleans and numbers, never coerced. Optional
fields may be absent or null; unknown fields are ignored. A `parcel_id` is kept exactly as sent: outcomes are
matched to decided parcels by the exact id, not by a normalised form. Nothing here raises on input.

`screener inspect` runs the same `decode_outcome` on every record before it publishes anything, so the worker
never sees an outcome the command would have refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from screener.pipeline.columns import MAX_ID_LENGTH, MAX_STRING_LENGTH, event_time_ms
from screener.pipeline.decode import SUPPORTED_SCHEMA_VERSIONS, RawMessage, Rejection, _json_type

DEFAULT_MAX_BYTES = 1 << 20  # Settings.max_message_bytes
MAX_FINDING_CODE_LENGTH = 64
LANES = ("green", "yellow", "red")
REQUIRED_FIELDS = ("parcel_id", "inspected_at", "illicit")
OPTIONAL_FIELDS = ("lane", "revenue", "finding_code", "note", "manifest_id")
FIELDS = ("schema_version",) + REQUIRED_FIELDS + OPTIONAL_FIELDS

# Reason codes of an outcome set aside (dead-letter `reason`).
OUTCOME_REASONS = {
    "empty_message": "the message has no value",
    "too_large": "the message is over the size limit",
    "not_json": "the message is not valid JSON",
    "not_object": "the message is not a JSON object",
    "unknown_schema_version": "schema_version is not 1",
    "missing_field": "a required field is absent, null or empty",
    "wrong_type": "a field has the wrong JSON type",
    "negative_value": "revenue is negative or not finite",
    "bad_format": "a string is too long or not one of the allowed values",
    "bad_event_time": "inspected_at is not an ISO 8601 time or epoch milliseconds",
    # Used by the joiner, not here: a valid outcome whose parcel the screener does not know (never decided,
    # or decided longer ago than the outcome retention).
    "unknown_parcel": "no decided parcel with this parcel_id is kept",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One valid inspection outcome. `parcel_id` is exactly as sent (not normalised)."""

    parcel_id: str
    inspected_ms: int
    illicit: bool
    lane: str | None = None
    revenue: float | None = None
    finding_code: str | None = None
    note: str | None = None
    manifest_id: str | None = None


def _string(obj: dict, name: str, required: bool, max_length: int) -> str | Rejection | None:
    v = obj.get(name)
    if v is None:
        return Rejection("missing_field", f"`{name}` is required", name) if required else None
    if type(v) is not str:
        return Rejection("wrong_type", f"`{name}` must be a string, got {_json_type(v)} {v!r:.60}", name)
    if required and not v:
        return Rejection("missing_field", f"`{name}` must not be empty", name)
    if len(v) > max_length:
        return Rejection("bad_format", f"`{name}` is longer than {max_length} characters", name)
    return v


def validate_outcome(obj: object) -> Outcome | Rejection:
    """The outcome a decoded JSON value states, or the first thing wrong with it (field order of the schema)."""
    if type(obj) is not dict:
        return Rejection("not_object", f"expected a JSON object, got {_json_type(obj)}")
    version = obj.get("schema_version", 1)
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        return Rejection("unknown_schema_version",
                         f"schema_version {version!r:.60} is not one of {sorted(SUPPORTED_SCHEMA_VERSIONS)}",
                         "schema_version")
    pid = _string(obj, "parcel_id", True, MAX_ID_LENGTH)
    if type(pid) is Rejection:
        return pid
    when = obj.get("inspected_at")
    if when is None:
        return Rejection("missing_field", "`inspected_at` is required", "inspected_at")
    ms = event_time_ms(when)
    if type(ms) is str:
        return Rejection("bad_event_time", ms.replace("`event_time`", "`inspected_at`", 1), "inspected_at")
    illicit = obj.get("illicit")
    if illicit is None:
        return Rejection("missing_field", "`illicit` is required", "illicit")
    if type(illicit) is not bool:
        return Rejection("wrong_type", f"`illicit` must be true or false, got {_json_type(illicit)} {illicit!r:.60}",
                         "illicit")
    lane = obj.get("lane")
    if lane is not None:
        if type(lane) is not str:
            return Rejection("wrong_type", f"`lane` must be a string, got {_json_type(lane)} {lane!r:.60}", "lane")
        if lane not in LANES:
            return Rejection("bad_format", f"`lane` must be one of {', '.join(LANES)}, got {lane!r:.60}", "lane")
    revenue = obj.get("revenue")
    if revenue is not None:
        if type(revenue) not in (int, float):  # bool is not a number here
            return Rejection("wrong_type", f"`revenue` must be a number, got {_json_type(revenue)} {revenue!r:.60}",
                             "revenue")
        try:
            revenue = float(revenue)
        except OverflowError:  # an int past float range (a Python caller's; orjson never gives one)
            revenue = math.inf
        if not (math.isfinite(revenue) and revenue >= 0):
            return Rejection("negative_value", f"`revenue` must be zero or more, got {revenue!r}", "revenue")
    finding = _string(obj, "finding_code", False, MAX_FINDING_CODE_LENGTH)
    if type(finding) is Rejection:
        return finding
    note = _string(obj, "note", False, MAX_STRING_LENGTH)
    if type(note) is Rejection:
        return note
    manifest_id = _string(obj, "manifest_id", False, MAX_ID_LENGTH)
    if type(manifest_id) is Rejection:
        return manifest_id
    return Outcome(pid, ms, illicit, lane, revenue, finding, note, manifest_id)


def decode_outcome(value: bytes | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Outcome | Rejection:
    """One message value as an outcome, or why it is not one; never raises."""
    if value is None or len(value) == 0:
        return Rejection("empty_message", "message has no value (tombstone or empty bytes)")
    if len(value) > max_bytes:
        return Rejection("too_large", f"message is {len(value)} bytes, over the {max_bytes}-byte limit")
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"not valid JSON: {exc}")
    return validate_outcome(parsed)


def decode_outcomes(raws: list[RawMessage], max_bytes: int = DEFAULT_MAX_BYTES
                    ) -> tuple[list[Outcome], list[tuple[RawMessage, Rejection]]]:
    """Split messages into valid outcomes and rejections, both in input order; every message is in exactly one."""
    outcomes: list[Outcome] = []
    rejected: list[tuple[RawMessage, Rejection]] = []
    for raw in raws:
        result = decode_outcome(raw.value, max_bytes)
        if type(result) is Outcome:
            outcomes.append(result)
        else:
            rejected.append((raw, result))
    return outcomes, rejected
