"""Dashboards and rules query only what a worker exports, in PromQL that Prometheus parses."""

from __future__ import annotations

import asyncio

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from screener.ops.metrics import PipelineMetrics
from screener.ops.observability import KeepUpSampler
from screener.pipeline.batch import Vocabularies
from screener.pipeline.processor import BatchOutcome

from .promql import (
    ROOT,
    SCRAPE_SERIES,
    base_names,
    dashboard_exprs,
    dashboards,
    grafana_to_promql,
    metric_names,
    queried_names,
    recording_rules,
    run_promtool,
)


def exported_names() -> set[str]:
    """Sample names a worker exports once it has screened a batch and sampled its offsets."""
    m = PipelineMetrics()
    o = BatchOutcome()
    o.parcels = 10
    o.lanes.update(green=8, yellow=1, red=1)
    o.messages.update(ok=2, dead_letter=1)
    o.dead_letters.update(not_json=1)
    o.rule_hits.update(R1=1)
    m.observe_batch(o, 0.01, [1])
    sampler = KeepUpSampler(m, required_peak=2315.0, full_batch_messages=256, state=Vocabularies())
    m.set_targets(20e6, 10, 2315.0)
    m.set_offsets({("manifests", 0): (10, 5)})
    m.set_build_info(version="0.1.0", ruleset="default", ruleset_version="1")
    m.set_broker("kafka-1:9092", up=True, last_contact=1.0, down_since=None)
    asyncio.run(sampler.sample())
    text = generate_latest(m.registry).decode()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_every_series_queried_by_an_alert_or_a_panel_is_exported_by_a_worker():
    exported = exported_names() | SCRAPE_SERIES
    queried = queried_names()
    assert len(queried) > 20  # alerts and panels were found at all
    missing = {where: names - exported for where, names in queried.items() if names - exported}
    assert not missing, missing


def test_the_name_check_catches_a_typo():
    recorded = recording_rules()
    names = base_names(metric_names("job:screener_headroom:ratio / screener_capacity_parcel_per_second"), recorded)
    assert "screener_capacity_parcel_per_second" in names - exported_names()
    assert "screener_capacity_parcels_per_second" in names  # reached through the recording rules


def test_the_dashboard_shows_what_the_issue_asks_for():
    (dash,) = dashboards()
    text = " ".join(expr for _, expr in dashboard_exprs(dash))
    for needle in ("job:screener_headroom:ratio", "job:screener_required_peak_parcels_per_second:max",
                   "job:screener_parcels:rate1m", "screener_consumer_lag", "screener_drain_seconds",
                   "screener_publish_to_decision_seconds_bucket", "screener_parcels_total",
                   "screener_rule_hits_total", "screener_dead_letter_total", "screener_state_entries",
                   "screener_consumer_lag_parcels", "screener_broker_up", "screener_build_info"):
        assert needle in text, needle
    workers_up = next(p for p in dash["panels"] if p["title"] == "Workers up")
    assert all(t["expr"].endswith(" or vector(0)") for t in workers_up["targets"])  # 0, not "No data"
    annotations = {a["name"]: a["expr"] for a in dash["annotations"]["list"] if "expr" in a}
    assert "screener_build_info" in annotations["Deploys (screener version, rule pack)"]
    assert "screener_broker_up" in annotations["Broker unreachable"]
    assert all(p["datasource"]["uid"] == "prometheus" for p in dash["panels"] if p["type"] != "row")


def test_every_dashboard_query_is_valid_promql(tmp_path):
    exprs = [grafana_to_promql(e) for d in dashboards() for _, e in dashboard_exprs(d)]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e}
                                                        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus():
    prov = ROOT / "deploy" / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert ds["uid"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((prov / "dashboards" / "screener.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_panels_have_unique_ids_and_do_not_overlap():
    (dash,) = dashboards()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
