"""`screener tail` like kcat, through the real CLI and the embedded broker: the unit is the parcel."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import orjson
import pytest

from screener.kafka.broker import free_port

from .helpers import WorkerProcess, consume_until, produce


def screener(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run `screener ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "screener.cli", *args], capture_output=True, timeout=120,
                          env=dict(os.environ, COLUMNS="200"), **kw)


def json_lines(run: subprocess.CompletedProcess) -> list[dict]:
    """The JSON objects printed by `tail --json`."""
    assert run.returncode == 0, run.stderr.decode()
    return [orjson.loads(line) for line in run.stdout.splitlines() if line.strip()]


def decided(broker, topic: str, n: int) -> list[dict]:
    """Wait until n decisions are on topic; returns them."""
    out = asyncio.run(consume_until(broker.bootstrap, [topic],
                                    lambda o: sum(len(r["decisions"]) for r in o[topic]) >= n, 120))
    return [d for r in out[topic] for d in r["decisions"]]


@pytest.fixture(scope="module")
def screened(broker, tmp_path_factory):
    """Three manifests of 20 parcels, published one after another: A, then B, then C."""
    feed = screener("generate", "--manifests", "4", "--parcels-per-manifest", "20", "--seed", "21").stdout.splitlines()
    worker = WorkerProcess(broker.url, tmp_path_factory.mktemp("tail")).start()
    manifests = [orjson.loads(line) for line in feed]
    try:
        for i, line in enumerate(feed[:3]):
            asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), [line]))
            decided(broker, worker.topic("decisions"), 20 * (i + 1))
            time.sleep(0.05)  # distinct message timestamps
        yield worker, manifests
    finally:
        worker.stop()


def ids(manifest: dict) -> list[str]:
    return [p["parcel_id"] for p in manifest["parcels"]]


@pytest.mark.timeout(300)
def test_last_n_is_the_most_recent_parcels_not_the_oldest_messages(broker, screened):
    worker, manifests = screened
    common = ("--broker", broker.url, "--topic-prefix", worker.prefix)
    last5 = json_lines(screener("tail", "decisions", *common, "-n", "5", "--json"))
    assert [d["parcel_id"] for d in last5] == ids(manifests[2])[-5:]
    text = screener("tail", "decisions", *common, "-n", "2").stdout.decode()
    assert sum(line[:6].strip() in ("GREEN", "YELLOW", "RED") for line in text.splitlines()) == 2

    green = json_lines(screener("tail", "decisions", *common, "-n", "2", "--lane", "green", "--json"))
    assert len(green) == 2 and {d["lane"] for d in green} == {"green"}

    everything = json_lines(screener("tail", "decisions", *common, "--from-beginning", "--json"))
    assert sorted(d["parcel_id"] for d in everything) == sorted(ids(manifests[0]) + ids(manifests[1])
                                                                 + ids(manifests[2]))
    one = ids(manifests[1])[7]
    by_key = json_lines(screener("tail", "decisions", *common, "--from-beginning", "--key", one, "--json"))
    assert [d["parcel_id"] for d in by_key] == [one]
    by_manifest = json_lines(screener("tail", "decisions", *common, "--from-beginning", "--json",
                                      "--key", manifests[0]["manifest_id"]))
    assert [d["parcel_id"] for d in by_manifest] == ids(manifests[0])
    last_message = json_lines(screener("tail", "decisions", *common, "--offset", "-1", "--json"))
    assert ids(manifests[2])[-1] in {d["parcel_id"] for d in last_message} and len(last_message) <= 40
    future = json_lines(screener("tail", "decisions", *common, "--since", "2100-01-01"))
    assert future == []
    flagged = json_lines(screener("tail", "flagged", *common, "-n", "1", "--json"))
    assert len(flagged) <= 1 and all(f["lane"] in ("yellow", "red") for f in flagged)


@pytest.mark.timeout(300)
def test_follow_starts_at_the_end_without_replaying_the_topic(broker, screened):
    worker, manifests = screened
    follow = subprocess.Popen([sys.executable, "-m", "screener.cli", "tail", "decisions", "-f", "-n", "0", "--json",
                               "--broker", broker.url, "--topic-prefix", worker.prefix],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(8)  # tail has read the high-water marks and waits at the end
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), [orjson.dumps(manifests[3])]))
        seen: list[str] = []
        while len(seen) < 20:
            line = follow.stdout.readline()
            assert line, follow.stderr.read().decode()
            seen.append(orjson.loads(line)["parcel_id"])
        assert seen == ids(manifests[3])
    finally:
        follow.terminate()
        follow.wait(timeout=10)


@pytest.mark.timeout(120)
def test_a_missing_topic_and_an_unreachable_broker_are_one_line_errors(broker):
    missing = screener("tail", "decisions", "--broker", broker.url, "--topic-prefix", "no-such-prefix-")
    assert missing.returncode == 1
    assert missing.stderr.decode().strip() == ("Error: topic 'no-such-prefix-decisions' does not exist on "
                                               f"{broker.bootstrap} (no worker has run with this --topic-prefix yet?)")
    nobody = screener("tail", "decisions", "--broker", f"kafka://127.0.0.1:{free_port()}")
    assert nobody.returncode == 1
    err = nobody.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: no Kafka broker reachable at 127.0.0.1:"), err
    both = screener("tail", "decisions", "-f", "-e")
    assert both.returncode == 2 and "contradict" in both.stderr.decode()
