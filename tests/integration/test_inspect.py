"""`screener inspect` through the embedded broker: CSV, JSONL and one outcome from flags, read back exactly."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from click.testing import CliRunner

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.kafka.broker import free_port
from screener.kafka.inspect_cli import inspect

from .helpers import high_watermarks

CSV = """parcel_id,inspected_at,illicit,lane,revenue,finding_code,note
P-1,2026-11-12T10:00:00Z,yes,red,12.5,UNDERVALUATION,"said ""gift"", was not"
P-2,1795459629652,0,,,,
P-3,2026-11-12 11:30,TRUE,yellow,0,NONE,
"""
CSV_PUBLISHED = [
    {"parcel_id": "P-1", "inspected_at": "2026-11-12T10:00:00Z", "illicit": True, "lane": "red", "revenue": 12.5,
     "finding_code": "UNDERVALUATION", "note": 'said "gift", was not'},
    {"parcel_id": "P-2", "inspected_at": 1795459629652, "illicit": False},
    {"parcel_id": "P-3", "inspected_at": "2026-11-12 11:30", "illicit": True, "lane": "yellow", "revenue": 0.0,
     "finding_code": "NONE"},
]


async def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list[tuple[bytes, bytes]]:
    """(key, value) of the first `count` records of topic, partition by partition in offset order."""
    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await c.start()
    out: dict[int, list] = {}
    deadline = time.monotonic() + timeout
    try:
        while sum(map(len, out.values())) < count and time.monotonic() < deadline:
            for tp, msgs in (await c.getmany(timeout_ms=300)).items():
                out.setdefault(tp.partition, []).extend((m.key, m.value) for m in msgs)
    finally:
        await c.stop()
    return [r for p in sorted(out) for r in out[p]]


def run(*args: str, **kw):
    return CliRunner().invoke(inspect, list(args), catch_exceptions=False, **kw)


@pytest.mark.timeout(300)
def test_csv_jsonl_and_flags_are_published_keyed_by_parcel_id_and_a_bad_file_sends_nothing(broker, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    topic = prefix + "inspections"
    common = ("--broker", broker.url, "--topic-prefix", prefix)

    gen = ManifestGenerator(GeneratorConfig(manifests=1, parcels_per_manifest=40, seed=5))
    list(gen.manifests())
    labels = tmp_path / "labels.jsonl"
    lines = [orjson.dumps(o) for o in gen.outcomes(inspected_at=gen.config.start.isoformat())]
    labels.write_bytes(b"\n".join(lines) + b"\n")  # what `screener generate --labels` writes
    result = run(str(labels), *common)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"published 40 outcomes (JSONL) to {topic}\n"

    csv = tmp_path / "outcomes.csv"
    csv.write_text(CSV)
    result = run(str(csv), *common)
    assert result.exit_code == 0 and result.stdout == f"published 3 outcomes (CSV) to {topic}\n", result.output

    result = run("--parcel-id", "P-9", "--clean", "--inspected-at", "2026-11-13T09:00:00Z", "--lane", "green",
                 "--note", "checked at the counter", *common)
    assert result.exit_code == 0 and result.stdout == f"published 1 outcome to {topic}\n", result.output

    records = asyncio.run(read_topic(broker.bootstrap, topic, 44))
    assert len(records) == 44
    # One partition per key, in publish order within it: compare per key.
    by_key = {}
    for key, value in records:
        by_key.setdefault(key, []).append(value)
    expected = {}
    for line in lines:
        expected.setdefault(orjson.loads(line)["parcel_id"].encode(), []).append(line)  # the bytes as written
    for obj in CSV_PUBLISHED:
        expected.setdefault(obj["parcel_id"].encode(), []).append(orjson.dumps(obj))
    expected[b"P-9"] = [orjson.dumps({"parcel_id": "P-9", "inspected_at": "2026-11-13T09:00:00Z", "illicit": False,
                                      "lane": "green", "note": "checked at the counter"})]
    assert by_key == expected

    before = asyncio.run(high_watermarks(broker.bootstrap, topic))
    assert sum(before.values()) == 44
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV + "P-4,2026-11-12T12:00:00Z,maybe,red,,,\n")
    result = run(str(bad), *common)
    assert result.exit_code == 1
    assert result.output == (f"Error: {bad}: line 5: `illicit` must be one of true/false/1/0/yes/no, got 'maybe'; "
                             "nothing was published\n")
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_bytes(b"\n".join(lines[:3] + [b'{"parcel_id": "P-5", "inspected_at": "soon", "illicit": true}'])
                          + b"\n")
    result = run(str(bad_jsonl), *common)
    assert result.exit_code == 1
    assert result.output == (f"Error: {bad_jsonl}: line 4: `inspected_at` 'soon' is not ISO 8601 (bad_event_time); "
                             "nothing was published\n")
    result = run("-", *common, input="parcel_id,illicit\nP-6,true\n")
    assert result.exit_code == 1
    assert result.output == "Error: stdin: line 1: the header has no 'inspected_at' column; nothing was published\n"
    result = run("--parcel-id", "P-7", "--illicit", "--revenue", "-3", *common)
    assert result.exit_code == 1
    assert result.output == "Error: `revenue` must be zero or more, got -3.0 (negative_value); nothing was published\n"
    assert asyncio.run(high_watermarks(broker.bootstrap, topic)) == before


@pytest.mark.timeout(120)
def test_stdin_jsonl_and_an_unreachable_broker_is_one_line(broker, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    line = b'{"parcel_id": "P-1", "inspected_at": 1795459629652, "illicit": true, "revenue": 3}'
    result = run("-", "--broker", broker.url, "--topic-prefix", prefix, input=line + b"\n")
    assert result.exit_code == 0 and result.stdout == f"published 1 outcome (JSONL) to {prefix}inspections\n"
    assert asyncio.run(read_topic(broker.bootstrap, prefix + "inspections", 1)) == [(b"P-1", line)]

    port = free_port()
    result = run("--parcel-id", "P-1", "--illicit", "--broker", f"kafka://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert result.output == (f"Error: no Kafka broker reachable at 127.0.0.1:{port} (127.0.0.1:{port}: connection "
                             "refused); nothing was published\n")
