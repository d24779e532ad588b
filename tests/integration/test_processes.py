"""`screener worker --processes 2`: two members of one group share the partitions and stop on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from screener.generator import GeneratorConfig, ManifestGenerator

from .helpers import WorkerProcess, committed_offsets, consume_until, produce


def children(pid: int) -> list[int]:
    """Live child process ids of pid (from /proc)."""
    out = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(status.parent.name))
    return out


@pytest.mark.timeout(240)
def test_two_processes_of_one_group_decide_every_parcel_once_and_stop_on_sigterm(broker, tmp_path):
    gen = ManifestGenerator(GeneratorConfig(manifests=12, parcels_per_manifest=50, seed=23))
    values = [orjson.dumps(m) for m in gen.manifests()]
    ids = {p["parcel_id"] for v in values for p in orjson.loads(v)["parcels"]}
    worker = WorkerProcess(broker.url, tmp_path, partitions=4, extra_env={"SCREENER_PROCESSES": "2"}).start()
    try:
        deadline = time.monotonic() + 60
        while len(children(worker.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        members = children(worker.proc.pid)
        assert len(members) == 2, worker.log()
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), values))

        def done(out):
            return len(out[worker.topic("decisions")]) >= len(values)

        out = asyncio.run(consume_until(broker.bootstrap, [worker.topic("decisions")], done, timeout=150))
        decided = [d["parcel_id"] for rec in out[worker.topic("decisions")] for d in rec["decisions"]]
        assert set(decided) == ids, worker.log()
        # At-least-once may repeat a message after a rebalance; never a parcel missing.
        assert len(decided) >= len(ids)
        committed = asyncio.run(committed_offsets(broker.bootstrap, worker.app_id, worker.topic("manifests")))
        assert committed, "the group committed nothing"

        t0 = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(timeout=15)
        assert time.monotonic() - t0 < 10
        assert all(not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
                   for pid in members)
    finally:
        worker.kill()
        for pid in children(worker.proc.pid) if worker.proc else []:
            subprocess.run(["kill", "-9", str(pid)], check=False)
