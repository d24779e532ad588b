"""docker-compose.yml and Dockerfile, checked without a Docker engine: services, images, ports, mounts."""

from __future__ import annotations

import dataclasses
import re
import shlex

import pytest
import yaml

from screener.settings import ENV_PREFIX, Settings

from .promql import PROM_DIR, ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def host_ports(service: dict) -> set[str]:
    """Host side of every published port."""
    return {str(p).split(":")[0] for p in service.get("ports", [])}


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount (named volumes left out)."""
    out = []
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith((".", "/")):
            out.append((src, dst))
    return out


def test_the_five_services_exist():
    assert set(SERVICES) == {"kafka", "kafka-init", "worker", "prometheus", "grafana"}


def test_kafka_is_the_official_image_in_kraft_mode():
    kafka = SERVICES["kafka"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"])
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].endswith("@kafka:9093")
    assert not any("ZOOKEEPER" in k for k in env)
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert host_ports(kafka) == {"29092"} and "HOST://localhost:29092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "healthcheck" in kafka


def test_topic_init_creates_every_topic_after_kafka_is_healthy():
    init = SERVICES["kafka-init"]
    assert init["image"] == SERVICES["kafka"]["image"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = " ".join(init["command"])
    assert "kafka-topics.sh" in script and "--if-not-exists" in script
    for topic in ("manifests", "decisions", "flagged", "dead-letter", "state-requests", "state-answers",
                  "state-changelog", "inspections", "parcel-facts", "outcomes-joined"):
        assert topic in re.split(r"[\s;]+", script) or f'"$${{PREFIX}}{topic}"' in script, topic   # looped or alone


def test_worker_is_a_scalable_service_running_the_screener():
    worker = SERVICES["worker"]
    assert shlex.split(worker["command"]) == ["screener", "worker", "--broker", "kafka://kafka:9092",
                                              "--metrics-port", "9100"]
    assert worker["build"]["dockerfile"] == "Dockerfile" and (ROOT / "Dockerfile").is_file()
    # `--scale worker=4` fails with a fixed container name or a fixed host port.
    assert "container_name" not in worker and "ports" not in worker
    assert "9100" in [str(p) for p in worker["expose"]]
    assert worker["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_worker_environment_names_real_settings():
    fields = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    env = SERVICES["worker"]["environment"]
    assert set(env) <= fields, set(env) - fields
    assert env["SCREENER_BROKER"] == "kafka://kafka:9092"


def test_prometheus_and_grafana_publish_their_ports_and_mount_existing_files():
    assert host_ports(SERVICES["prometheus"]) == {"9090"}
    assert host_ports(SERVICES["grafana"]) == {"3000"}
    assert SERVICES["prometheus"]["image"].startswith("prom/prometheus:")
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana:")
    prom_mounts = dict(bind_mounts(SERVICES["prometheus"]))
    assert prom_mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    # prometheus.yml names its rule files relative to itself: they must be mounted beside it.
    assert prom_mounts["./deploy/prometheus/rules"] == "/etc/prometheus/rules"
    rule_files = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())["rule_files"]
    assert all(f.startswith("rules/") for f in rule_files)
    graf_mounts = dict(bind_mounts(SERVICES["grafana"]))
    assert graf_mounts["./deploy/grafana/dashboards"] == "/var/lib/grafana/dashboards"
    assert "/etc/grafana/provisioning/datasources" in graf_mounts.values()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_bind_mounted_path_exists(service):
    for src, _ in bind_mounts(SERVICES[service]):
        assert (ROOT / src).exists(), f"{service} mounts missing {src}"


def test_every_file_the_dockerfile_copies_exists():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
