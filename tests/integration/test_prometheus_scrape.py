"""The real Prometheus server scrapes a real worker screening real traffic on the embedded broker.

Prometheus (Debian's package) loads the repository's recording rules and alerts; the test asks its
HTTP API for headroom and lag, checks the high-water marks against the records published, and
checks that every series a dashboard panel or an alert reads is on the worker's /metrics page.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from screener.generator import GeneratorConfig, ManifestGenerator
from screener.kafka.broker import free_port, wait_for_port

from ..unit.deploy.promql import RULE_FILES, SCRAPE_SERIES, WORKER_JOB, queried_names, rule_groups
from .helpers import WorkerProcess, produce

MANIFESTS = 40
PARCELS_PER_MANIFEST = 250


def prometheus_binary() -> str:
    """Path of the Prometheus server; fails with the install line when it is missing."""
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("prometheus not found: apt-get install -y --no-install-recommends prometheus")
    return path


class Prometheus:
    """A Prometheus server on a free port scraping one worker every second, with the repo's rules."""

    def __init__(self, tmp_path, worker_port: int) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(f) for f in RULE_FILES],
            "scrape_configs": [{"job_name": WORKER_JOB,
                                "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}],
        }
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config))
        self.log = open(tmp_path / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port("127.0.0.1", self.port, timeout=30)

    def api(self, path: str, **params: str) -> dict:
        """GET one HTTP API endpoint and return its `data`."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[tuple, float]:
        """Instant query: {label items: value}."""
        return {tuple(sorted(r["metric"].items())): float(r["value"][1])
                for r in self.api("query", query=expr)["result"]}

    def stop(self) -> None:
        """Terminate the server."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_until(probe, deadline_s: float = 90.0, every_s: float = 0.5):
    """Call probe until it returns something truthy or the deadline passes; return its last result."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = probe()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every_s)


def one(values: dict[tuple, float]) -> float:
    """The value of a single-series query result (NaN when there is none)."""
    return next(iter(values.values())) if len(values) == 1 else math.nan


@pytest.mark.timeout(240)
def test_prometheus_scrapes_headroom_and_lag_of_a_screening_worker(broker, tmp_path):
    metrics_port = free_port()
    worker = WorkerProcess(broker.url, tmp_path, partitions=2,
                           extra_env={"SCREENER_METRICS_PORT": str(metrics_port)}).start()
    prom = None
    try:
        wait_for_port("127.0.0.1", metrics_port, timeout=120)
        prom = Prometheus(tmp_path, metrics_port)
        gen = ManifestGenerator(GeneratorConfig(manifests=MANIFESTS, parcels_per_manifest=PARCELS_PER_MANIFEST,
                                                seed=5))
        values = [orjson.dumps(m) for m in gen.manifests()]
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), values))
        job = f'job="{WORKER_JOB}"'

        def drained():
            hw = one(prom.query(f"sum(screener_consumer_highwater{{{job}}})"))
            lag = one(prom.query(f"job:screener_consumer_lag:sum{{{job}}}"))
            headroom = one(prom.query(f"job:screener_headroom:ratio{{{job}}}"))
            screened = one(prom.query(f"sum(screener_parcels_total{{{job}}})"))
            drain = one(prom.query(f"screener_drain_seconds{{{job}}}"))
            done = hw == len(values) and lag == 0 and headroom > 0 and drain == 0
            return (hw, lag, headroom, screened) if done else None

        state = wait_until(drained)
        assert state, (f"not drained: highwater={prom.query('screener_consumer_highwater')} "
                       f"lag={prom.query('screener_consumer_lag')} "
                       f"headroom={prom.query('screener_headroom_ratio')}\n{worker.log()[-3000:]}")
        highwater, lag, headroom, screened = state
        # The high-water marks the worker reads from fetch responses add up to the records published.
        assert highwater == MANIFESTS
        assert screened == MANIFESTS * PARCELS_PER_MANIFEST
        assert one(prom.query(f"sum(screener_consumer_committed_offset{{{job}}})")) == MANIFESTS
        # Headroom as recorded by the rules equals the worker's capacity over the 20M/day x 10 peak rate.
        capacity = one(prom.query(f"screener_capacity_parcels_per_second{{{job}}}"))
        assert headroom == pytest.approx(capacity / (20_000_000 * 10 / 86_400), rel=1e-6)
        assert math.isfinite(headroom)
        assert one(prom.query(f'up{{{job}}}')) == 1.0

        # Every recording rule and alert evaluates without error against real series.
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == sum(len(g["rules"]) for g in rule_groups())
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not bad, bad

        # Every series an alert or a dashboard panel reads is on the real worker's page.
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
            page = resp.read().decode()
        exported = {s.name for fam in text_string_to_metric_families(page) for s in fam.samples} | SCRAPE_SERIES
        missing = {where: names - exported for where, names in queried_names().items() if names - exported}
        assert not missing, missing
    finally:
        if prom is not None:
            prom.stop()
        worker.stop()
