"""`screener publish` and `screener replay-dead-letter` through the real CLI and the embedded broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import orjson
import pytest

from .helpers import WorkerProcess, consume_until, high_watermarks, produce


def screener(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run `screener ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "screener.cli", *args], capture_output=True, timeout=120,
                          env=dict(os.environ, COLUMNS="200"), **kw)


@pytest.mark.timeout(300)
def test_pretty_jsonl_and_streamed_input_are_published_and_a_bad_file_is_refused(broker, tmp_path):
    feed = screener("generate", "--manifests", "3", "--parcels-per-manifest", "10", "--seed", "31").stdout
    manifests = [orjson.loads(line) for line in feed.splitlines()]
    pretty = tmp_path / "manifest.json"
    pretty.write_text(json.dumps(manifests[0], indent=2))  # the way docs show a manifest
    worker = WorkerProcess(broker.url, tmp_path).start()
    common = ("--broker", broker.url, "--topic-prefix", worker.prefix)
    try:
        one = screener("publish", str(pretty), *common)
        err = one.stderr.decode()
        assert one.returncode == 0, err
        assert f"read a pretty-printed JSON document from {pretty}" in err
        assert "published 1 messages, 10 parcels" in err

        streamed = screener("publish", "-", *common, input=b"\n".join(feed.splitlines()[1:]) + b"\n")
        err = streamed.stderr.decode()
        assert streamed.returncode == 0, err
        assert "read JSONL (2 lines) from stdin" in err and "published 2 messages, 20 parcels" in err
        assert "None" not in err

        topic = worker.topic("decisions")
        out = asyncio.run(consume_until(broker.bootstrap, [topic],
                                        lambda o: sum(len(r["decisions"]) for r in o[topic]) >= 30, 120))
        assert sorted(d["parcel_id"] for r in out[topic] for d in r["decisions"]) == sorted(
            p["parcel_id"] for m in manifests for p in m["parcels"])

        before = asyncio.run(high_watermarks(broker.bootstrap, worker.topic("manifests")))
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(feed + b'{"schema_version": 1, "manifest_id": "M-cut",\n')
        refused = screener("publish", str(bad), *common)
        lines = refused.stderr.decode().strip().splitlines()
        assert refused.returncode == 1 and len(lines) == 1
        assert lines[0].startswith(f"Error: {bad}: line 4: not JSON (unexpected end of data")
        assert lines[0].endswith("; nothing was published")
        assert asyncio.run(high_watermarks(broker.bootstrap, worker.topic("manifests"))) == before

        missing = screener("publish", str(tmp_path / "nope.jsonl"), *common)
        assert missing.returncode == 2 and "does not exist" in missing.stderr.decode()
    finally:
        worker.stop()


@pytest.mark.timeout(300)
def test_replay_dead_letter_publishes_the_originals_again(broker, tmp_path):
    worker = WorkerProcess(broker.url, tmp_path).start()
    common = ("--broker", broker.url, "--topic-prefix", worker.prefix)
    dead = worker.topic("dead-letter")
    try:
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), [b"not json at all"]))
        first = asyncio.run(consume_until(broker.bootstrap, [dead], lambda o: len(o[dead]) >= 1, 120))[dead]
        assert [d["reason"] for d in first] == ["not_json"]

        dry = screener("replay-dead-letter", *common, "--reason", "not_json", "--dry-run")
        assert dry.returncode == 0 and "would replay 1 dead letters" in dry.stdout.decode()
        wrong = screener("replay-dead-letter", *common, "--reason", "too_large")
        assert wrong.returncode == 0 and "replayed 0 dead letters" in wrong.stdout.decode()
        assert "left alone (other reasons): not_json 1" in wrong.stdout.decode()
        run = screener("replay-dead-letter", *common, "--reason", "not_json")
        assert run.returncode == 0 and "replayed 1 dead letters" in run.stdout.decode(), run.stderr.decode()

        again = asyncio.run(consume_until(broker.bootstrap, [dead], lambda o: len(o[dead]) >= 2, 120))[dead]
        assert len(again) == 2 and again[1]["original"] == "not json at all"
        neither = screener("replay-dead-letter", *common)
        assert neither.returncode == 2 and "--reason CODE" in neither.stderr.decode()
    finally:
        worker.stop()
