"""Prometheus config, recording rules and alerts: promtool checks them and runs their unit tests."""

from __future__ import annotations

import yaml

from .promql import ALERT_TESTS, PROM_DIR, ROOT, RULE_FILES, WORKER_JOB, alerts, run_promtool


def test_promtool_check_config_accepts_the_compose_prometheus_config():
    result = run_promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The config loads every rule file of the directory, so no rule file is dead.
    loaded = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())["rule_files"]
    assert sorted(PROM_DIR / f for f in loaded) == RULE_FILES


def test_promtool_check_rules_accepts_every_rule_file():
    result = run_promtool("check", "rules", *[str(f) for f in RULE_FILES])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alerts_pass():
    result = run_promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_not_firing():
    cases = [case for t in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in t.get("alert_rule_test", [])]
    for alert in alerts():
        name = alert["alert"]
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no test where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no test where it stays quiet"


def test_every_alert_has_a_summary_a_runbook_url_to_an_existing_page_a_severity_and_a_for_clause():
    index = (ROOT / "docs" / "runbooks" / "README.md").read_text()
    for alert in alerts():
        ann = alert.get("annotations", {})
        assert ann.get("summary") and "runbook" not in ann, alert["alert"]
        page = ROOT / ann["runbook_url"]
        assert ann["runbook_url"].startswith("docs/runbooks/") and page.is_file(), alert["alert"]
        assert page.read_text().startswith(f"# {alert['alert']}\n"), page
        assert f"| {alert['alert']} | [{page.name}]({page.name}) |" in index, alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert alert.get("for"), f"{alert['alert']} fires on a single evaluation"


def test_the_issue_alerts_exist():
    names = {a["alert"] for a in alerts()}
    assert {"ScreenerHeadroomLow", "ScreenerLagGrowing", "ScreenerDrainTimeHigh", "ScreenerDeadLetterRateHigh",
            "ScreenerWorkerDown", "ScreenerLaneRateOutOfBand", "ScreenerBrokerUnreachable",
            "ScreenerLatencyObjectiveMissed"} <= names
    by_name = {a["alert"]: a for a in alerts()}
    assert "< 1.5" in by_name["ScreenerHeadroomLow"]["expr"] and by_name["ScreenerHeadroomLow"]["for"] == "10m"
    assert "> 900" in by_name["ScreenerDrainTimeHigh"]["expr"]  # 15 minutes
    assert "screener_broker_up" in by_name["ScreenerBrokerUnreachable"]["expr"]
    assert "> 0.25" in by_name["ScreenerLatencyObjectiveMissed"]["expr"]  # the 250 ms p99 objective


def test_the_scrape_job_is_the_one_the_alerts_watch():
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert WORKER_JOB in jobs
    sd = jobs[WORKER_JOB]["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["port"] == 9100  # compose service name and --metrics-port
    assert all(f'job="{WORKER_JOB}"' in a["expr"] for a in alerts() if "up{" in a["expr"])
