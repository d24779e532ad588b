"""Helpers for deploy tests: where the deploy files are, the PromQL they hold, and the names it reads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROM_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
ALERT_TESTS = PROM_DIR / "tests" / "screener-alerts.test.yml"
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
WORKER_JOB = "screener-worker"

# Words of PromQL that look like names but are not series.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan", "start", "end"}
# Series Prometheus makes itself for every scrape target.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def promtool() -> str:
    """Path of promtool; fails with the install line when it is missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install -y --no-install-recommends prometheus")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    """Run promtool in the Prometheus deploy directory and return the finished process."""
    return subprocess.run([promtool(), *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120)


def rule_groups() -> list[dict]:
    """Every rule group of every rule file."""
    return [g for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]]


def alerts() -> list[dict]:
    """Every alerting rule."""
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def recording_rules() -> dict[str, list[str]]:
    """Recorded name -> the expressions that produce it (a name may be recorded with several label sets)."""
    out: dict[str, list[str]] = {}
    for g in rule_groups():
        for r in g["rules"]:
            if "record" in r:
                out.setdefault(r["record"], []).append(r["expr"])
    return out


def dashboards() -> list[dict]:
    """Every provisioned dashboard."""
    return [json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))]


def dashboard_exprs(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expression) for every query of every panel, rows included, and of every annotation."""
    out = [(f"annotation {a['name']}", a["expr"]) for a in dashboard.get("annotations", {}).get("list", [])
           if "expr" in a]

    def walk(panels: list[dict]) -> None:
        for p in panels:
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
            walk(p.get("panels", []))

    walk(dashboard["panels"])
    return out


def grafana_to_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced, so that Prometheus can parse it."""
    return expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$job", ".*")


def metric_names(expr: str) -> set[str]:
    """Series names an expression reads (functions, keywords, labels and durations left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        before = expr[m.start() - 1] if m.start() else " "
        if before.isdigit() or before == ".":
            continue  # exponent of a number such as 1e3
        if expr[m.end():].lstrip().startswith("("):
            continue  # function or aggregation
        if m.group().lower() in KEYWORDS:
            continue
        names.add(m.group())
    return names


def base_names(names: set[str], recorded: dict[str, list[str]]) -> set[str]:
    """Replace recorded names by the series their rules read, until only scraped names remain."""
    out: set[str] = set()
    todo = list(names)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in recorded:
            for e in recorded[name]:
                todo.extend(metric_names(e))
        else:
            out.add(name)
    return out


def queried_names() -> dict[str, set[str]]:
    """Scraped series each recording rule, alert and dashboard panel reads, recording rules resolved."""
    recorded = recording_rules()
    out = {f"rule {name}": base_names({name}, recorded) for name in recorded}
    out.update({f"alert {a['alert']}": base_names(metric_names(a["expr"]), recorded) for a in alerts()})
    for d in dashboards():
        for title, expr in dashboard_exprs(d):
            out.setdefault(f"panel {title!r}", set()).update(base_names(metric_names(grafana_to_promql(expr)),
                                                                        recorded))
    return out
