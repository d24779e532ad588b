import orjson
import pytest

from screener.pipeline.decode import DecodedMessage, RawMessage, Rejection, decode


def _decode(value: bytes, max_bytes: int = 1 << 20):
    return decode(RawMessage(value, "manifests", 0, 5), max_bytes)


@pytest.mark.parametrize("value, reason", [
    (b"", "empty_message"),
    (b"{not json", "not_json"),
    (b"\xff\xfe\x00", "not_json"),
    (b"[1, 2]", "not_object"),
    (b'"a string"', "not_object"),
    (b'{"schema_version": 2, "manifest_id": "M", "parcels": []}', "unknown_schema_version"),
    (b'{"schema_version": "1", "manifest_id": "M", "parcels": []}', "unknown_schema_version"),
    (b'{"manifest_id": "M", "parcels": []}', "unknown_schema_version"),
    (b'{"schema_version": 1, "manifest_id": "M", "parcels": {}}', "bad_manifest"),
    (b'{"schema_version": 1, "parcels": []}', "bad_manifest"),
])
def test_message_level_rejections(value, reason):
    out = _decode(value)
    assert isinstance(out, Rejection)
    assert out.reason == reason
    assert out.message


def test_size_limit_is_checked_before_parsing():
    out = _decode(b'{"schema_version": 1, "manifest_id": "M", "parcels": []}', max_bytes=10)
    assert isinstance(out, Rejection) and out.reason == "too_large" and "10-byte" in out.message


def test_bare_parcel_is_a_manifest_of_one():
    out = _decode(orjson.dumps({"parcel_id": "P1", "event_time": "2026-01-01T00:00:00Z"}))
    assert isinstance(out, DecodedMessage)
    assert out.bare and out.manifest_id == "single:P1" and len(out.parcels) == 1


def test_manifest_fields_are_kept_beside_parcels_left_as_received():
    value = orjson.dumps({"schema_version": 1, "manifest_id": "M1", "carrier_code": "SF", "master_bill_no": "1-2",
                          "parcels": [{"parcel_id": "A"}, {"parcel_id": "B", "carrier_code": "DHL"}]})
    out = _decode(value)
    assert out.meta == {"carrier_code": "SF", "master_bill_no": "1-2"}
    # Inheritance happens when columns are built (test_columns), so flagged records show the parcel as sent.
    assert out.parcels == [{"parcel_id": "A"}, {"parcel_id": "B", "carrier_code": "DHL"}]
