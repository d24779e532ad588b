"""Dead-letter records: the reason, a human message, the original bytes and where they came from."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import orjson

from screener.pipeline.decode import RawMessage, Rejection

DEAD_LETTER_SCHEMA_VERSION = 1
# Kafka's default message limit is 1 MiB: an oversized input cannot be copied whole. The input
# itself stays on its topic at the recorded offset, so the copy is cut and fingerprinted instead.
MAX_ORIGINAL_BYTES = 256 * 1024


def encode_original(data: bytes) -> dict:
    """The original bytes as UTF-8 text when they are, else base64; truncated when huge."""
    truncated = len(data) > MAX_ORIGINAL_BYTES
    body = data[:MAX_ORIGINAL_BYTES] if truncated else data
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode("ascii"), "base64"
    out = {"original": text, "original_encoding": encoding, "original_size": len(data)}
    if truncated:
        out["original_truncated"] = True
        out["original_sha256"] = hashlib.sha256(data).hexdigest()
    return out


def now_iso() -> str:
    """Current UTC time, ISO 8601 with milliseconds and Z."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter(raw: RawMessage, rejection: Rejection, original: bytes, *, manifest_id: str | None = None,
                parcel_index: int | None = None, parcel_id: str | None = None,
                at: str | None = None) -> tuple[bytes | None, bytes]:
    """Key and value of one dead-letter message."""
    record = {
        "schema_version": DEAD_LETTER_SCHEMA_VERSION,
        "reason": rejection.reason,
        "message": rejection.message,
        "field": rejection.field,
        "manifest_id": manifest_id,
        "parcel_index": parcel_index,
        "parcel_id": parcel_id,
        "source": {**raw.source(), "timestamp_ms": raw.timestamp_ms},
        "dead_lettered_at": at or now_iso(),
        **encode_original(original),
    }
    key = parcel_id or manifest_id
    return (key.encode() if key else None), orjson.dumps(record)


# How many of a message's bad parcels a summary dead letter lists in full.
SUMMARY_FIRST_ERRORS = 10


def summary_dead_letter(message, rejected: list, at: str) -> tuple[bytes | None, bytes]:
    """One dead letter standing for all bad parcels of a message: counts per reason and the first errors.

    Bounds dead-letter output by the input: a 1 MB message of half a million bad parcels yields one
    record of at most ~300 KB (the original is cut like any other), not half a million records.
    """
    counts: dict[str, int] = {}
    for r in rejected:
        counts[r.rejection.reason] = counts.get(r.rejection.reason, 0) + 1
    first = [{"parcel_index": r.parcel_index, "reason": r.rejection.reason, "field": r.rejection.field,
              "message": r.rejection.message} for r in rejected[:SUMMARY_FIRST_ERRORS]]
    raw = message.raw
    summary = Rejection("too_many_bad_parcels",
                        f"{len(rejected)} of {len(message.parcels)} parcels are invalid; counts per reason and "
                        f"the first {len(first)} errors are in `bad_parcels`")
    key, value = dead_letter(raw, summary, raw.value or b"", manifest_id=message.manifest_id, at=at)
    record = orjson.loads(value)
    record["bad_parcels"] = {"count": len(rejected), "by_reason": counts, "first": first}
    return key, orjson.dumps(record)
