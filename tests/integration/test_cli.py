"""The command line against the embedded broker: generate | publish, tail; and a non-aiokafka publisher."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import orjson
import pytest

from .helpers import WorkerProcess, consume_until


def screener(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run `screener ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "screener.cli", *args], capture_output=True, timeout=120, **kw)


@pytest.mark.timeout(200)
def test_generate_publish_tail_round_trip_and_confluent_kafka_publisher(broker, tmp_path):
    labels = tmp_path / "labels.jsonl"
    gen = screener("generate", "--manifests", "4", "--parcels-per-manifest", "50", "--seed", "5",
                   "--labels", str(labels))
    assert gen.returncode == 0
    lines = gen.stdout.splitlines()
    assert len(lines) == 4 and len(labels.read_text().splitlines()) == 200
    assert all(orjson.loads(line)["parcels"] for line in lines)

    worker = WorkerProcess(broker.url, tmp_path).start()
    try:
        pub = screener("publish", "-", "--broker", broker.url, "--topic-prefix", worker.prefix, input=gen.stdout)
        assert pub.returncode == 0, pub.stderr
        assert b"published 4 messages, 200 parcels" in pub.stderr
        topic = worker.topic("decisions")
        # The manifests are decided before the bare parcels are sent, so "most recent" below is well defined
        # (records of one batch share a timestamp).
        asyncio.run(consume_until(broker.bootstrap, [topic],
                                  lambda o: sum(len(r["decisions"]) for r in o[topic]) >= 200, 120))

        # librdkafka (confluent-kafka) publishes bare parcels: any Kafka client can feed the screener.
        from confluent_kafka import Producer

        bare = screener("generate", "--manifests", "1", "--parcels-per-manifest", "5", "--seed", "6", "--bare")
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for line in bare.stdout.splitlines():
            producer.produce(worker.topic("manifests"), line)
        assert producer.flush(30) == 0

        out = asyncio.run(consume_until(broker.bootstrap, [topic],
                                        lambda o: sum(len(r["decisions"]) for r in o[topic]) >= 205, 120))
        assert sum(len(r["decisions"]) for r in out[topic]) == 205
    finally:
        worker.stop()

    # The three most recent parcels are the bare ones published last, not the oldest messages.
    tail = screener("tail", "decisions", "--broker", broker.url, "--topic-prefix", worker.prefix, "-n", "3")
    assert tail.returncode == 0
    parcels = [line.split()[1] for line in tail.stdout.decode().splitlines()
               if line[:6].strip() in ("GREEN", "YELLOW", "RED")]
    assert len(parcels) == 3 and all(p.startswith("P006-") for p in parcels)


@pytest.mark.timeout(400)
def test_demo_finishes_by_itself_with_the_same_recall_on_identical_runs(tmp_path):
    summaries = []
    for _ in range(2):
        demo = screener("demo", "--parcels", "3000", "--parcels-per-manifest", "100", "--metrics-port", "0",
                        cwd=tmp_path, env=dict(os.environ, COLUMNS="100"))
        out = demo.stdout.decode()
        assert demo.returncode == 0, out[-3000:] + demo.stderr.decode()[-3000:]
        assert "demo summary" in out and "valid parcels decided (distinct)" in out
        summaries.append({line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines()
                          if line.count("│") == 3})
    first, second = summaries
    recall = "planted fraud flagged (recall)"
    assert first[recall] == second[recall] and not first[recall].startswith("0 of")
    # A short run cannot claim a million parcels/s.
    rate = first["throughput (first to last decision)"]
    assert rate.startswith("run too short") or int(rate.split()[0].replace(",", "")) < 200_000
