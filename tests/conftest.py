"""Shared fixtures: one embedded broker per test session (real Kafka protocol, free port, stopped at the end);
the hypothesis settings every test runs with."""

from __future__ import annotations

import pytest
from hypothesis import settings

from screener.kafka.broker import EmbeddedBroker

# No per-example deadline: on two shared cores an example can take seconds (a first Numba compile, a
# neighbour's load), and these tests check what the code computes, never how fast.
settings.register_profile("screener", deadline=None)
settings.load_profile("screener")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A running embedded broker for the whole session."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    b = EmbeddedBroker.start(log_path=str(log))
    yield b
    b.stop()
