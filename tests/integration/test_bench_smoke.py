"""The benchmark harness runs end to end at tiny sizes and reports every headline figure (no speed asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Issues 9's and 10's keys of results-quick.json, and the figures they come from.
HEADLINE = ("ceiling_parcels_per_s", "baseline_manifests_parcels_per_s", "quix_manifests_parcels_per_s",
            "screener_parcels_per_s", "ratio_to_ceiling", "speedup_vs_baseline_manifests", "speedup_vs_quix",
            "hit_rate_100_ratio", "screener_single_over_bare_faust", "ceiling_librdkafka_parcels_per_s",
            "baseline_parcels_per_s", "keepup_p99_ms", "stateful_ratio")
CONTENDERS = {"ceiling_500": "parcels_500", "ceiling_librdkafka_500": "parcels_500", "screener_500": "parcels_500",
              "baseline_manifests": "parcels_500", "quix_manifests": "parcels_500",
              "screener_500_hit50": "parcels_hit", "screener_500_hit100": "parcels_hit", "screener_500_stateful": "parcels_500",
              "ceiling_1": "parcels_1", "bare_faust_1": "parcels_1", "screener_1": "parcels_1",
              "baseline": "baseline_parcels"}


def test_bench_smoke(tmp_path):
    out, report = tmp_path / "results-smoke.json", tmp_path / "RESULTS-smoke.md"
    # A subprocess: the harness starts its own broker and workers and patches aiokafka's gzip level.
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--smoke", "--json", str(out),
                           "--report", str(report)], cwd=REPO, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    for key in HEADLINE:
        assert isinstance(results.get(key), (int, float)), key
        assert results[key] > 0, key
    for key, size in CONTENDERS.items():
        assert results[key]["parcels"] >= results["sizes"][size] - results["sizes"][size] % 100, key
    # The hit-rate packs do what they are for: every parcel flagged at 100%, about half at 50%.
    assert results["hit_rates"]["hit100"]["flagged"] == 1.0
    assert 0.3 < results["hit_rates"]["hit50"]["flagged"] < 0.7
    assert results["keepup"]["decided_parcels"] > 0
    assert results["day"]["run"]["parcels"] == results["day"]["parcels"]
    assert results["entities"]["points"][-1]["parcels_per_s"] > 0
    assert "## Headline" in report.read_text()


def test_recovery_benchmark_rebuilds_every_entity_from_the_broker_with_identical_columns():
    done = subprocess.run([sys.executable, "-m", "benchmarks.recovery", "--entities", "3000"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(done.stdout)
    assert results["recovered_entities"] == 3000 and results["recovered_columns_identical"] is True


def test_worker_memory_benchmark_renews_vocabularies_so_strings_stay_bounded(tmp_path):
    out = tmp_path / "worker_memory.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.worker_memory", "--parcels", "160000",
                           "--max-strings", "100000", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    trace = results["trace"]
    assert results["parcels"] == 160000 and results["generations"] >= 2
    # The bound is checked between batches: a generation holds at most the bound plus one batch's strings.
    assert max(s["strings"] for s in trace) <= 100000 + 2 * trace[0]["strings"]
    assert trace[-1]["entities"] > trace[0]["entities"] and results["stores_mb"] > 0
