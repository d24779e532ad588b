"""The benchmark harness runs end to end at tiny sizes and reports every headline figure (no speed asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEADLINE = ("ceiling_parcels_per_s", "baseline_parcels_per_s", "screener_parcels_per_s",
            "screener_single_parcels_per_s", "ratio_to_ceiling", "speedup_vs_baseline",
            "keepup_p50_ms", "keepup_p99_ms")


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
    for key in ("screener_1", "screener_100", "screener_500", "baseline"):
        assert results[key]["parcels"] >= results["sizes"]["baseline_parcels" if key == "baseline" else
                                                             {"screener_1": "parcels_1", "screener_100": "parcels_100",
                                                              "screener_500": "parcels_500"}[key]], key
    assert results["keepup"]["decided_parcels"] > 0
    assert results["day"]["runs"]["1"]["parcels"] == results["day"]["parcels"]
    assert results["entities"]["points"][-1]["parcels_per_s"] > 0
    assert "## Headline" in report.read_text()
