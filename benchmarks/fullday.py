"""A full day: a backlog of 20 million parcels (manifests of 500) drained by one worker, then by two.

The day's input is ~16 GB of JSON, more than this machine's memory-only broker can hold next to
its outputs, so it is published gzip-compressed (level 6, ~10x); the workers pay the decompression,
as they would against a Kafka fed by compressing producers. Between the two runs the output topics
are deleted and recreated, and the two-worker group reads the same input again from the start.
"""

from __future__ import annotations

import time
from pathlib import Path

from .endtoend import OUTPUTS, topics
from .kafka import create_topics, delete_topics, publish
from .measure import drain
from .procs import memory, screener_worker
from .workload import Pool


async def run(bootstrap: str, broker_url: str, workdir: Path, pool: Pool, parcels: int, partitions: int,
              worker_counts: tuple[int, ...] = (1, 2), broker_pid: int | None = None,
              prefix: str = "day-", log=print) -> dict:
    """Publish the day once, then drain it with each worker count; wall time first to last decision, peak RSS."""
    await create_topics(bootstrap, topics(prefix), partitions)
    messages = pool.messages_for(parcels)
    t0 = time.monotonic()
    sent = await publish(bootstrap, prefix + "manifests", pool.stream(messages, tag=b"d"), partitions,
                         pool.parcels_per_message, compression="gzip")
    out: dict = {"parcels": sent.parcels, "messages": sent.messages, "publish_s": round(time.monotonic() - t0, 1),
                 "compression": "gzip-6", "partitions": partitions,
                 "broker_rss_after_publish_mb": round(memory(broker_pid)["rss"] / 2**20, 1) if broker_pid else None,
                 "runs": {}}
    log(f"  day: published {sent.parcels:,} parcels in {out['publish_s']} s")
    try:
        for i, n in enumerate(worker_counts):
            if i:
                outputs = [prefix + name for name in OUTPUTS]
                await delete_topics(bootstrap, outputs)
                await create_topics(bootstrap, outputs, partitions)
            app_id = f"{prefix}group-{n}-{int(time.time() * 1000)}"
            procs = [screener_worker(f"day-{n}w-{k}", broker_url, prefix, partitions, workdir, app_id=app_id)
                     for k in range(n)]
            extra = {"broker": broker_pid} if broker_pid else None
            res = await drain(procs, bootstrap, prefix + "decisions", partitions, sent.parcels,
                              timeout=max(600.0, sent.parcels / 2000.0), extra_pids=extra)
            res["workers"] = n
            out["runs"][str(n)] = res
            log(f"  day: {n} worker(s): {res['span_s']} s, {res['parcels_per_s']:,.0f} parcels/s")
    finally:
        await delete_topics(bootstrap, topics(prefix))
    return out
