"""Shared fixtures: one embedded broker per test session (real Kafka protocol, free port, stopped at the end)."""

from __future__ import annotations

import pytest

from screener.kafka.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A running embedded broker for the whole session."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    b = EmbeddedBroker.start(log_path=str(log))
    yield b
    b.stop()
