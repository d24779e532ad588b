"""A record the producer or broker refuses for its size becomes a valid, small dead letter naming its input."""

import orjson
from aiokafka.errors import MessageSizeTooLargeError

from screener.kafka.worker import refused_record
from screener.schemas import validator


def test_a_refused_decisions_record_becomes_a_dead_letter_naming_the_manifest_and_its_source():
    decisions = orjson.dumps({"manifest_id": "M1", "source": {"topic": "manifests", "partition": 1, "offset": 5},
                              "decisions": [{"parcel_id": f"P{i}", "reasons": ["x" * 100]} for i in range(500)]})
    kind, key, value = refused_record(("decisions", b"M1", decisions), MessageSizeTooLargeError("too big"))
    record = orjson.loads(value)
    validator("dead-letter")(record)
    assert kind == "dead-letter" and key == b"M1"
    assert record["reason"] == "output_refused" and record["refused_topic_kind"] == "decisions"
    assert record["manifest_id"] == "M1" and record["source"]["offset"] == 5
    assert record["refused_size"] == len(decisions) and record["original_truncated"]
    assert len(value) < 4096   # the dead letter itself must be producible


def test_a_refused_flagged_record_keeps_its_parcel_id():
    flagged = orjson.dumps({"parcel_id": "P9", "manifest_id": "M2", "source": {"topic": "manifests",
                                                                              "partition": 0, "offset": 1}})
    _, key, value = refused_record(("flagged", b"P9", flagged), MessageSizeTooLargeError("too big"))
    assert key == b"P9" and orjson.loads(value)["parcel_id"] == "P9"
