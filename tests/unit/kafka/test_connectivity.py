"""Broker connectivity: the probe tells a dead port from a port that is not Kafka; logs are one line per change."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import pytest

from screener.kafka.broker import free_port
from screener.kafka.connectivity import (
    WATCH_THREAD,
    BrokerState,
    BrokerUnreachable,
    BrokerWatch,
    ClientNoiseFilter,
    ProbeResult,
    probe,
)
from screener.ops.metrics import PipelineMetrics

DOWN = ProbeResult(False, "127.0.0.1:9: connection refused")
UP = ProbeResult(True)


def test_one_line_per_state_change_and_one_summary_a_minute_while_down():
    state = BrokerState(["127.0.0.1:9092"], started=0.0, summary_every_s=60.0)
    assert state.record(UP, 1.0) == [(logging.INFO, "broker 127.0.0.1:9092 reachable")]
    assert state.record(UP, 3.0) == []
    lines = [state.record(DOWN, t) for t in range(5, 200, 2)]  # 98 failed probes over 195 s
    said = [line for batch in lines for line in batch]
    assert said[0] == (logging.ERROR, "broker unreachable: 127.0.0.1:9: connection refused")
    assert [text for _, text in said[1:]] == [
        "broker still unreachable after 1m 00s (31 failed probes, 0 client errors not logged): "
        "127.0.0.1:9: connection refused",
        "broker still unreachable after 2m 00s (61 failed probes, 0 client errors not logged): "
        "127.0.0.1:9: connection refused",
        "broker still unreachable after 3m 00s (91 failed probes, 0 client errors not logged): "
        "127.0.0.1:9: connection refused",
    ]
    state.suppressed = 3075
    assert state.record(UP, 205.0) == [
        (logging.WARNING, "broker 127.0.0.1:9092 reachable again after 3m 20s unreachable "
                          "(3075 client errors not logged)")]


def test_client_errors_are_dropped_and_counted_unless_the_broker_is_up():
    state = BrokerState(["b:9092"], started=0.0)
    noise = ClientNoiseFilter(state)
    error = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "Unable connect to node", None, None)
    info = logging.LogRecord("aiokafka", logging.INFO, __file__, 1, "hello", None, None)
    state.record(DOWN, 1.0)
    assert not noise.filter(error) and noise.filter(info) and state.suppressed == 1
    state.record(UP, 2.0)
    assert noise.filter(error)
    error.threadName = WATCH_THREAD  # the probe's own client: its result is reported, not its log lines
    assert not noise.filter(error)


def test_probe_names_a_refused_port_and_a_port_that_does_not_speak_kafka():
    refused = asyncio.run(probe([f"127.0.0.1:{free_port()}"], timeout_s=1.0))
    assert not refused.ok and refused.problem.endswith("connection refused")
    with socket.socket() as server:  # accepts connections, never answers: like an HTTP port
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        silent = asyncio.run(probe([f"127.0.0.1:{port}"], timeout_s=1.0))
    assert not silent.ok and "answers on TCP but not to Kafka requests" in silent.problem


def test_watch_exports_the_broker_metrics_and_a_starting_worker_gives_up_with_one_line(caplog):
    metrics = PipelineMetrics()
    watch = BrokerWatch(["127.0.0.1:1"], metrics, clock=lambda: 1_000.0)
    assert metrics.registry.get_sample_value("screener_broker_up", {"bootstrap": "127.0.0.1:1"}) != 0  # NaN
    with caplog.at_level(logging.INFO, logger="screener.broker"):
        watch.observe(DOWN)  # a starting worker does not log: it reports once, when it gives up
    assert caplog.records == []
    sample = metrics.registry.get_sample_value
    assert sample("screener_broker_up", {"bootstrap": "127.0.0.1:1"}) == 0
    assert sample("screener_broker_down_since_timestamp_seconds", {"bootstrap": "127.0.0.1:1"}) == 1_000.0
    with pytest.raises(BrokerUnreachable, match=r"no Kafka broker reachable at 127.0.0.1:1 within 0s \(127.0.0.1:9: "
                                                 r"connection refused\)"):
        watch.wait_until_reachable(0.01)
    waiter = threading.Thread(target=watch.wait_until_reachable, args=(0,))
    waiter.start()
    watch.observe(UP)
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert sample("screener_broker_up", {"bootstrap": "127.0.0.1:1"}) == 1
    assert sample("screener_broker_last_contact_timestamp_seconds", {"bootstrap": "127.0.0.1:1"}) == 1_000.0
