"""Broker connectivity as a signal: probe the brokers, export it, log state changes, give up at startup.

The Kafka clients inside Faust retry forever and log every failed attempt (3,075 ERROR lines in 45 s
with the broker gone), while the worker still looks healthy. `BrokerWatch` runs in its own thread
with its own event loop, so it keeps answering when Faust's loop is stuck on the broker:

- every `interval_s` it asks the bootstrap servers for metadata (a real Kafka request, so a port
  that answers but does not speak Kafka, e.g. HTTP, counts as unreachable);
- it exports `screener_broker_up` and the time of the last successful contact;
- it logs one line per state change and, while the broker stays unreachable, one summary a minute;
  the Kafka clients' own connection errors are dropped (and counted) while the broker is down;
- a starting worker waits for a broker before it starts Faust (whose producer otherwise crashes
  with a traceback when nothing listens, and hangs silently on a port that is not Kafka), and
  gives up after `broker_wait_s` seconds with one line.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka.client import AIOKafkaClient

from screener.ops.metrics import PipelineMetrics

log = logging.getLogger("screener.broker")

WATCH_THREAD = "broker-watch"
PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 3.0
SUMMARY_EVERY_S = 60.0
# Loggers of the Kafka clients whose retry noise is dropped while the broker is known to be down.
CLIENT_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.client", "aiokafka.consumer.fetcher",
                  "aiokafka.consumer.group_coordinator", "aiokafka.consumer.consumer", "aiokafka.producer.sender",
                  "aiokafka.producer.producer", "faust.transport.drivers.aiokafka")


@dataclass(frozen=True)
class ProbeResult:
    """One probe: did a broker answer a Kafka request, and if not, why (in a few words)."""

    ok: bool
    problem: str = ""


def _tcp_problem(host: str, port: int, timeout_s: float) -> str:
    """Why host:port is no Kafka broker, as far as plain TCP can tell."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return "answers on TCP but not to Kafka requests (not a Kafka port, or a broker stopping or overloaded)"
    except socket.gaierror:
        return "host name does not resolve"
    except TimeoutError:
        return "connection timed out"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as exc:
        return exc.strerror or str(exc)


async def probe(bootstrap: list[str], timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Ask the bootstrap servers for cluster metadata; never raises."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s + 1.0)
        return ProbeResult(True)
    except Exception:  # any failure to bootstrap means: no broker answered
        pass
    finally:
        await client.close()
    problems = []
    for server in bootstrap:
        host, _, port = server.rpartition(":")
        problem = await asyncio.to_thread(_tcp_problem, host, int(port), timeout_s)
        problems.append(f"{server}: {problem}")
    return ProbeResult(False, "; ".join(problems))


async def unreachable_message(bootstrap: list[str]) -> str:
    """One line for a command that could not reach a broker: where, and why as far as a probe can tell."""
    result = await probe(bootstrap)
    return f"no Kafka broker reachable at {','.join(bootstrap)} ({result.problem or 'it answered a probe since'})"


def quiet_client_logs() -> None:
    """Silence the Kafka clients' own retry messages in one-shot commands, which report failures themselves."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def fmt_seconds(s: float) -> str:
    """12 -> '12s', 125 -> '2m 05s'."""
    s = int(round(s))
    return f"{s}s" if s < 60 else f"{s // 60}m {s % 60:02d}s"


class BrokerState:
    """Broker reachability over time, and the few log lines it deserves (pure, clock passed in)."""

    def __init__(self, bootstrap: list[str], started: float, summary_every_s: float = SUMMARY_EVERY_S) -> None:
        self.bootstrap = ",".join(bootstrap)
        self.summary_every_s = summary_every_s
        self.up: bool | None = None  # None until the first probe
        self.since = started  # when the current state began
        self.last_contact: float | None = None
        self.ever_up = False
        self.failed_probes = 0
        self.suppressed = 0  # client log lines dropped while down
        self.problem = ""
        self._last_summary = started

    def record(self, result: ProbeResult, now: float) -> list[tuple[int, str]]:
        """Fold one probe in; returns (level, line) to log: only on a change, or a summary while down."""
        lines: list[tuple[int, str]] = []
        if result.ok:
            self.last_contact = now
            if self.up is not True:
                if self.up is False:
                    lines.append((logging.WARNING, f"broker {self.bootstrap} reachable again after "
                                                   f"{fmt_seconds(now - self.since)} unreachable "
                                                   f"({self.suppressed} client errors not logged)"))
                else:
                    lines.append((logging.INFO, f"broker {self.bootstrap} reachable"))
                self.up, self.since, self.ever_up = True, now, True
                self.failed_probes = self.suppressed = 0
            return lines
        self.failed_probes += 1
        self.problem = result.problem
        if self.up is not False:
            self.up, self.since, self._last_summary = False, now, now
            lines.append((logging.ERROR, f"broker unreachable: {result.problem}"))
        elif now - self._last_summary >= self.summary_every_s:
            self._last_summary = now
            lines.append((logging.ERROR, f"broker still unreachable after {fmt_seconds(now - self.since)} "
                                         f"({self.failed_probes} failed probes, {self.suppressed} client errors "
                                         f"not logged): {result.problem}"))
        return lines


class ClientNoiseFilter(logging.Filter):
    """Drops the Kafka clients' warnings and errors while the broker is known to be down, counting them."""

    def __init__(self, state: BrokerState) -> None:
        super().__init__()
        self.state = state

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for a client WARNING or above unless the broker is known to be up.

        The probe's own client (on the watch thread) is never logged: the probe reports its result.
        """
        if record.threadName == WATCH_THREAD:
            return False
        if self.state.up is not True and record.levelno >= logging.WARNING:
            self.state.suppressed += 1
            return False
        return True


class BrokerUnreachable(RuntimeError):
    """No broker answered within the time a starting worker waits for one."""


class BrokerWatch:
    """A daemon thread that probes the brokers, logs and exports the result; a starting worker waits on it."""

    def __init__(self, bootstrap: list[str], metrics: PipelineMetrics | None = None, *,
                 interval_s: float = PROBE_INTERVAL_S, clock: Callable[[], float] = time.time) -> None:
        self.bootstrap = bootstrap
        self.metrics = metrics
        self.interval_s = interval_s
        self.clock = clock
        self.state = BrokerState(bootstrap, clock())
        # Until a broker answers, a starting worker reports the outcome itself, once (wait_until_reachable).
        self.waiting = True
        self._reachable = threading.Event()
        self._filter = ClientNoiseFilter(self.state)
        if metrics is not None:
            metrics.set_broker(self.state.bootstrap, up=None, last_contact=None, down_since=None)

    def start(self) -> BrokerWatch:
        """Install the log filter and start probing in the background."""
        for name in CLIENT_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)
        threading.Thread(target=lambda: asyncio.run(self._run()), name=WATCH_THREAD, daemon=True).start()
        return self

    def wait_until_reachable(self, wait_s: float) -> None:
        """Block until a broker answered; raise BrokerUnreachable after wait_s seconds (0 = wait forever)."""
        self.waiting = wait_s > 0
        if not self.waiting and self.state.up is False:
            log.error("broker unreachable, waiting for it: %s", self.state.problem)
        try:
            if not self._reachable.wait(wait_s if wait_s > 0 else None):
                s = self.state
                raise BrokerUnreachable(f"no Kafka broker reachable at {s.bootstrap} within {fmt_seconds(wait_s)} "
                                        f"({s.problem or 'no answer'}); --broker-wait 0 or "
                                        "SCREENER_BROKER_WAIT_S=0 waits forever")
        finally:
            self.waiting = False

    async def _run(self) -> None:
        while True:  # for the life of the process (a daemon thread)
            self.observe(await probe(self.bootstrap, min(PROBE_TIMEOUT_S, self.interval_s * 2)))
            await asyncio.sleep(self.interval_s)

    def observe(self, result: ProbeResult) -> None:
        """Record one probe: log state changes, export the metrics, wake a waiting worker."""
        s = self.state
        lines = s.record(result, self.clock())
        if s.ever_up or not self.waiting:
            for level, line in lines:
                log.log(level, line)
        if s.up:
            self._reachable.set()
        if self.metrics is not None:
            self.metrics.set_broker(s.bootstrap, up=s.up, last_contact=s.last_contact,
                                    down_since=s.since if s.up is False else None)
