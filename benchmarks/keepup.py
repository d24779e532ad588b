"""Keep-up: publish at a steady peak rate to a running worker; publish-to-decision latency and CPU used.

2,315 parcels/s is 20 million parcels a day at 10x the average rate. Latency of a message is
the time the harness's consumer sees its decisions message minus the input record's timestamp
(both stamped by this process's clock), so it includes the broker hop both ways.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np

from .endtoend import topics
from .kafka import Watched, create_topics, publish, watch
from .procs import MACHINE, Sampler, screener_worker
from .workload import Pool, manifest_id


async def run(bootstrap: str, broker_url: str, workdir: Path, pool: Pool, rate: float, seconds: float,
              partitions: int, broker_pid: int | None = None, prefix: str = "keepup-") -> dict:
    """Publish `rate` parcels/s for `seconds` to one worker; latency percentiles, CPU share, achieved rate."""
    await create_topics(bootstrap, topics(prefix), partitions)
    proc = screener_worker("screener-keepup", broker_url, prefix, partitions, workdir)
    done: dict[str, bool] = {}
    ready, seen = asyncio.Event(), Watched()
    watcher = asyncio.create_task(watch(bootstrap, prefix + "decisions", partitions, 1 << 62, seconds + 300,
                                        idle_timeout=seconds + 300, keep_keys=True, ready=ready, out=seen,
                                        stop=lambda: done.get("drained", False)))
    await ready.wait()
    proc.start()
    pids = {"worker": proc.pid, "harness": os.getpid(), "machine": MACHINE}
    if broker_pid:
        pids["broker"] = broker_pid
    sampler = Sampler(pids).start()
    try:
        # Warm-up: one manifest, wait for its decision, so the group join is not counted as latency.
        await publish(bootstrap, prefix + "manifests", pool.stream(1, tag=b"w"), partitions, pool.parcels_per_message)
        t_wait = time.monotonic()
        while not watcher.done() and seen.messages == 0 and time.monotonic() - t_wait < 120:
            if not proc.alive():
                raise RuntimeError(f"keep-up worker exited:\n{proc.log_tail()}")
            await asyncio.sleep(0.05)
        count = int(rate * seconds / pool.parcels_per_message)
        t0 = time.time()
        sent = await publish(bootstrap, prefix + "manifests", pool.stream(count), partitions,
                             pool.parcels_per_message, rate=rate, key_fn=manifest_id, record_times=True)
        t1 = time.time()
        # Let the last decisions arrive (bounded: a worker that cannot keep up shows as missing ones).
        deadline = time.monotonic() + 30
        while seen.messages < 1 + sent.messages and time.monotonic() < deadline and not watcher.done():
            await asyncio.sleep(0.1)
        done["drained"] = True
        await watcher
    finally:
        sampler.stop()
        proc.stop()
    lat = [s - sent.sent_ms[k] / 1000.0 for k, s in zip(seen.keys, seen.seen_s) if k in sent.sent_ms]
    ms = np.array(lat) * 1000.0
    decided = len(lat) * pool.parcels_per_message
    return {
        "rate_target": rate, "seconds": round(t1 - t0, 1), "parcels_per_message": pool.parcels_per_message,
        "published_parcels": sent.parcels, "decided_parcels": decided,
        "achieved_parcels_per_s": round(decided / max(t1 - t0, 1e-9), 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p90_ms": round(float(np.percentile(ms, 90)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "max_ms": round(float(ms.max()), 1) if len(ms) else None,
        "worker_cpu_cores": round(sampler.cpu_share("worker", t0, t1), 3),
        "broker_cpu_cores": round(sampler.cpu_share("broker", t0, t1), 3) if broker_pid else None,
        "harness_cpu_cores": round(sampler.cpu_share("harness", t0, t1), 3),
        "machine_cpu_cores": round(sampler.cpu_share("machine", t0, t1), 3),
        "worker_peak_rss_mb": round(max(proc.final_memory.get("peak_rss", 0), sampler.peak_rss("worker")) / 2**20, 1),
        "latencies_ms": [round(x, 2) for x in ms.tolist()],
    }

