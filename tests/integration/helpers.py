"""Integration helpers: run a real worker process, publish, and read topics back on the embedded broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families


class WorkerProcess:
    """A `screener worker` subprocess with its own topics (prefix) and consumer group."""

    def __init__(self, broker_url: str, workdir: Path, prefix: str | None = None, partitions: int = 2,
                 extra_env: dict | None = None) -> None:
        self.prefix = prefix or f"t{uuid.uuid4().hex[:8]}-"
        self.app_id = f"{self.prefix}screener"
        self.env = dict(os.environ, SCREENER_BROKER=broker_url, SCREENER_TOPIC_PREFIX=self.prefix,
                        SCREENER_APP_ID=self.app_id, SCREENER_PARTITIONS=str(partitions),
                        SCREENER_DATA_DIR=str(workdir / "faust-data"), SCREENER_LOG_LEVEL="INFO",
                        # One worker per process unless a test asks for more (SIGKILL must hit the worker itself).
                        **{"SCREENER_PROCESSES": "1", **(extra_env or {})})
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        """Start (or restart) the worker process."""
        self.starts += 1
        log = open(self.workdir / f"worker-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "screener.cli", "worker"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until this run of the worker logs that it is ready (its own signal handlers are installed)."""
        deadline = time.monotonic() + timeout
        path = self.workdir / f"worker-{self.starts}.log"
        while "]: Ready" not in path.read_text(errors="replace"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"worker run {self.starts} not ready within {timeout} s")
            time.sleep(0.1)

    def log(self) -> str:
        """All logs of this worker's runs."""
        return "\n".join((self.workdir / f"worker-{i}.log").read_text(errors="replace")
                         for i in range(1, self.starts + 1))

    def topic(self, name: str) -> str:
        """Full name of one of this worker's topics."""
        return self.prefix + name


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Publish values and wait for every acknowledgement."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 << 20)
    await p.start()
    try:
        futs = [await p.send(topic, v) for v in values]
        await asyncio.gather(*futs)
    finally:
        await p.stop()


async def consume_until(bootstrap: str, topics: list[str], done, timeout: float) -> dict[str, list]:
    """Read topics from the beginning until done(records_by_topic) or timeout; values JSON-decoded."""
    c = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                         fetch_max_bytes=32 << 20, max_partition_fetch_bytes=16 << 20)
    await c.start()
    out: dict[str, list] = {t: [] for t in topics}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=300)
            for tp, msgs in batch.items():
                out[tp.topic].extend(orjson.loads(m.value) for m in msgs)
            if done(out):
                break
    finally:
        await c.stop()
    return out


async def _partitions(c: AIOKafkaConsumer, topic: str) -> list[int]:
    """Partition numbers of topic from metadata: a topic auto-created on first publish has the broker's default."""
    await c.topics()  # refreshes metadata for all topics
    return sorted(c.partitions_for_topic(topic) or ())


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """The group's committed offset per partition of topic."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        parts = await _partitions(c, topic)
        return {p: await c.committed(TopicPartition(topic, p)) for p in parts}
    finally:
        await c.stop()


async def high_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    """High-water mark per partition, read from fetch responses (ListOffsets is wrong on Tansu)."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await c.start()
    try:
        parts = await _partitions(c, topic)
        tps = [TopicPartition(topic, p) for p in parts]
        c.assign(tps)
        for _ in range(20):
            await c.getmany(timeout_ms=200)
            if all(c.highwater(tp) is not None for tp in tps):
                break
        return {tp.partition: c.highwater(tp) for tp in tps}
    finally:
        await c.stop()


def metrics_until(port: int, check, timeout: float) -> bool:
    """Whether check({(sample name, labels as sorted tuple): value}) holds for a worker's /metrics within
    `timeout` seconds (scraped every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            text = ""
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        if check(samples):
            return True
        time.sleep(0.2)
    return False
