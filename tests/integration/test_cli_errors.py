"""Every CLI error is one `Error:` line and a non-zero exit code, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from screener.kafka.broker import free_port


def screener(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `screener ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "screener.cli", *args], capture_output=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def one_error(run: subprocess.CompletedProcess, code: int) -> str:
    """The single `Error:` line of a failed command, after checking the exit code and the absence of a traceback."""
    err = run.stderr.decode()
    assert run.returncode == code, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.timeout(200)
def test_bad_input_to_commands_is_one_line(tmp_path):
    nobody = f"kafka://127.0.0.1:{free_port()}"
    assert "rule pack nosuch.toml refused: " in one_error(
        screener("worker", "--pack", "nosuch.toml", "--broker", nobody, "--data-dir", str(tmp_path),
                 env={"SCREENER_PROCESSES": "1"}), 1)
    assert "SCREENER_PARTITIONS='abc': expected int" in one_error(
        screener("worker", env={"SCREENER_PARTITIONS": "abc"}), 2)
    assert "'--partitions': 0 is not in the range x>=1" in one_error(screener("worker", "--partitions", "0"), 2)
    assert "'--partitions': 0 is not in the range x>=1" in one_error(screener("demo", "--partitions", "0"), 2)
    assert "does not exist" in one_error(screener("publish", str(tmp_path / "missing.jsonl")), 2)
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"schema_version": 1, "manifest_id": "M1", "parcels": []}\n')
    line = one_error(screener("publish", str(feed), "--broker", nobody), 1)
    assert line.startswith(f"Error: no Kafka broker reachable at {nobody[8:]}") and "connection refused" in line


@pytest.mark.timeout(60)
def test_broker_on_a_busy_port_exits_non_zero():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error(screener("broker", "--port", str(port)), 1)
    assert line == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
