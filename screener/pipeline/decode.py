"""Decodes raw Kafka message values into manifests: one orjson.loads per message, message-level checks.

A message is a manifest (`{"schema_version", "manifest_id", ..., "parcels": [...]}`) or a bare
parcel record, which is treated as a manifest of one. Anything else becomes a dead-letter entry;
nothing here raises on input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
# Manifest-level fields copied into parcels that do not carry their own.
INHERITED_FIELDS = ("carrier_code", "master_bill_no")


@dataclass(slots=True)
class RawMessage:
    """One input message as it came off the broker."""

    value: bytes | None
    topic: str = ""
    partition: int = -1
    offset: int = -1
    timestamp_ms: int = 0
    key: bytes | None = None

    def source(self) -> dict:
        """Where the message came from, for decisions and dead letters."""
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(slots=True)
class Rejection:
    """Why something was set aside: a reason code, a human message, and optionally the field."""

    reason: str
    message: str
    field: str | None = None


@dataclass(slots=True)
class DecodedMessage:
    """A message that decoded into a manifest; parcels are not validated yet."""

    raw: RawMessage
    manifest_id: str
    parcels: list
    bare: bool = False
    meta: dict = field(default_factory=dict)


def decode(raw: RawMessage, max_bytes: int, parsed: object = None) -> DecodedMessage | Rejection:
    """Decode one message into a manifest, or say why it cannot be one.

    `parsed` lets the caller pass a value already decoded as part of a joined batch.
    """
    value = raw.value
    if value is None or len(value) == 0:
        return Rejection("empty_message", "message has no value (tombstone or empty bytes)")
    if len(value) > max_bytes:
        return Rejection("too_large", f"message is {len(value)} bytes, over the {max_bytes}-byte limit")
    if parsed is None:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return Rejection("not_json", f"not valid JSON: {exc}")
    if type(parsed) is not dict:
        return Rejection("not_object", f"expected a JSON object, got {_json_type(parsed)}")
    version = parsed.get("schema_version", 1 if "parcels" not in parsed else None)
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        return Rejection("unknown_schema_version",
                         f"schema_version {version!r} is not one of {sorted(SUPPORTED_SCHEMA_VERSIONS)}",
                         "schema_version")
    if "parcels" not in parsed:
        # A bare parcel record: a manifest of one, named after the parcel when it has an id.
        pid = parsed.get("parcel_id")
        mid = parsed.get("manifest_id")
        manifest_id = mid if type(mid) is str and mid else (f"single:{pid}" if type(pid) is str else "single")
        return DecodedMessage(raw, manifest_id, [parsed], bare=True)
    parcels = parsed["parcels"]
    if type(parcels) is not list:
        return Rejection("bad_manifest", f"`parcels` must be an array, got {_json_type(parcels)}", "parcels")
    manifest_id = parsed.get("manifest_id")
    if type(manifest_id) is not str or not manifest_id:
        return Rejection("bad_manifest", "`manifest_id` must be a non-empty string", "manifest_id")
    # Manifest-level fields a parcel inherits when it lacks them (applied when columns are built, so
    # the parcel stays as received for the flagged record).
    meta = {k: parsed[k] for k in INHERITED_FIELDS if type(parsed.get(k)) is str}
    return DecodedMessage(raw, manifest_id, parcels, meta=meta)


def _json_type(v: object) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number",
            bool: "boolean", type(None): "null"}.get(type(v), type(v).__name__)
