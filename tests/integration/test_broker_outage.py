"""Broker outages through the real CLI: `status` names a lost broker, workers stop on SIGTERM within 10 s,
and a worker pointed at no broker (or at a port that is not Kafka) exits with one line.

Each test starts its own EmbeddedBroker: killing the session broker would break the other tests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from screener.kafka.broker import EmbeddedBroker, free_port

from .helpers import WorkerProcess, produce


def screener(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run `screener ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "screener.cli", *args], capture_output=True, timeout=timeout,
                          env=dict(os.environ, COLUMNS="120"), **kw)


def wait_for(check, timeout: float, every: float = 0.5):
    """Poll check() until it returns something truthy; returns it, or the last falsy value at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)


def stop_within(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> float:
    """Send sig and return the seconds until the process exited (at most 30, then it is killed)."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - t0


@pytest.mark.timeout(240)
def test_status_names_a_lost_broker_within_30s_and_sigterm_stops_a_busy_worker_within_10s(tmp_path):
    broker = EmbeddedBroker.start(log_path=str(tmp_path / "broker.log"))
    port = free_port()
    worker = WorkerProcess(broker.url, tmp_path, extra_env={"SCREENER_METRICS_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        worker.start()
        up = wait_for(lambda: "up" in (r := screener("status", "--metrics-url", url)).stdout.decode() and r, 90)
        assert up and up.returncode != 3, worker.log()[-3000:]

        # Busy when the broker goes: a backlog fetched into the worker's buffers, its output unsendable.
        feed = screener("generate", "--manifests", "200", "--parcels-per-manifest", "200", "--seed", "3").stdout
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), feed.splitlines()))
        time.sleep(1)
        broker.stop()
        lost_at = time.monotonic()
        down = wait_for(lambda: (r := screener("status", "--metrics-url", url)).returncode == 3 and r, 30)
        assert down, worker.log()[-3000:]
        assert time.monotonic() - lost_at <= 30
        text = " ".join(down.stdout.decode().split())
        assert "broker unreachable since" in text and broker.bootstrap in text and "DOWN" in text

        time.sleep(5)  # the clients retry meanwhile; their errors are not logged line by line
        assert worker.proc.poll() is None
        assert stop_within(worker.proc) <= 10
        log = worker.log()
        assert "broker unreachable" in log
        assert log.count("Unable connect to node") < 5, log[-3000:]
    finally:
        worker.kill()
        broker.stop()


@pytest.mark.timeout(180)
def test_sigterm_stops_a_busy_worker_within_10s_and_a_restart_loses_nothing(broker, tmp_path):
    import asyncio

    from .helpers import consume_until, produce

    # Enough parcels that the first worker is still busy when stopped (it screens over 100k parcels/s).
    gen = screener("generate", "--manifests", "1000", "--parcels-per-manifest", "100", "--seed", "11")
    feed = gen.stdout.splitlines()
    worker = WorkerProcess(broker.url, tmp_path).start()
    try:
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), feed))
        topic = worker.topic("decisions")
        first = asyncio.run(consume_until(broker.bootstrap, [topic], lambda o: len(o[topic]) >= 20, 90))
        assert len(first[topic]) >= 20  # busy: screening is under way
        assert stop_within(worker.proc) <= 10
        worker.start()
        done = asyncio.run(consume_until(
            broker.bootstrap, [topic], lambda o: len({d["parcel_id"] for r in o[topic] for d in r["decisions"]})
            >= 100_000, 150))
        assert len({d["parcel_id"] for r in done[topic] for d in r["decisions"]}) == 100_000
        # A signal sent before the restarted worker installs handlers would be lost when the test runs in the
        # background (SIGINT inherited ignored): the worker may have nothing left to do, so wait for it.
        worker.wait_ready()
        assert stop_within(worker.proc, signal.SIGINT) <= 10
    finally:
        worker.kill()


@pytest.mark.timeout(120)
def test_a_worker_without_a_kafka_broker_exits_with_one_line(tmp_path):
    http_port = free_port()
    http = subprocess.Popen([sys.executable, "-m", "http.server", str(http_port), "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for address, problem in ((f"127.0.0.1:{free_port()}", "connection refused"),
                                 (f"127.0.0.1:{http_port}", "answers on TCP but not to Kafka requests")):
            t0 = time.monotonic()
            run = screener("worker", "--broker", f"kafka://{address}", "--broker-wait", "5", "--processes", "1",
                           "--data-dir", str(tmp_path / "data"), timeout=60)
            assert time.monotonic() - t0 <= 30
            assert run.returncode == 1
            errors = [line for line in run.stderr.decode().splitlines() if line.startswith("Error:")]
            assert len(errors) == 1 and address in errors[0] and problem in errors[0], run.stderr.decode()
            assert "Traceback" not in run.stderr.decode()
    finally:
        http.kill()
        http.wait()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_worker_started_with_signals_ignored_still_stops_on_one_during_its_warm_up(tmp_path, sig):
    # A non-interactive shell starts background jobs with SIGINT ignored, and the child inherits that:
    # a SIGINT sent during the warm-up was lost and the worker went on (a CI run of the test above).
    def ignore_stop_signals():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-m", "screener.cli", "worker", "--broker", f"kafka://127.0.0.1:{free_port()}",
                             "--broker-wait", "40", "--processes", "1", "--data-dir", str(tmp_path / "data")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=ignore_stop_signals)
    try:
        time.sleep(0.5)   # Python is up, the rule compiler and Faust are still importing or warming up
        assert stop_within(proc, sig) <= 5
        assert proc.returncode == 128 + sig
        assert f"{signal.Signals(sig).name} before the worker started" in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
