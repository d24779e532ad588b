"""A full day: a backlog of 20 million parcels (manifests of 500) drained by `screener worker --processes 2`.

The day's input is ~16 GB of JSON, more than this machine's memory-only broker can hold next to
its outputs, so it is published gzip-compressed (level 6, ~10x); the workers pay the decompression,
as they would against a Kafka fed by compressing producers. Entities grow as on a real day: every
copy of the generated pool brings new consignees (id, name, phone, address), so a worker meets
millions of distinct consignees, not the pool's few thousand again and again. Two workers of one
group come from `procs.screener_group` (the `--processes` switch where the worker has it).
"""

from __future__ import annotations

import time
from pathlib import Path

from .endtoend import topics
from .kafka import create_topics, delete_topics, publish
from .measure import drain
from .procs import memory, screener_group
from .workload import Pool


async def run(bootstrap: str, broker_url: str, workdir: Path, pool: Pool, parcels: int, partitions: int,
              processes: int = 2, broker_pid: int | None = None, prefix: str = "day-", log=print) -> dict:
    """Publish the day, then drain it with `processes` workers; wall time first to last decision, peak RSS."""
    await create_topics(bootstrap, topics(prefix), partitions)
    messages = pool.messages_for(parcels)
    t0 = time.monotonic()
    sent = await publish(bootstrap, prefix + "manifests", pool.stream(messages, tag=b"d", fresh_consignees=True),
                         partitions, pool.parcels_per_message, compression="gzip")
    out: dict = {"parcels": sent.parcels, "messages": sent.messages, "publish_s": round(time.monotonic() - t0, 1),
                 "compression": "gzip-6", "partitions": partitions, "processes": processes,
                 "distinct_consignees_about": _distinct_consignees(pool, messages),
                 "broker_rss_after_publish_mb": round(memory(broker_pid)["rss"] / 2**20, 1) if broker_pid else None}
    log(f"  day: published {sent.parcels:,} parcels in {out['publish_s']} s")
    try:
        procs = screener_group(processes, f"day-{processes}w", broker_url, prefix, partitions, workdir)
        extra = {"broker": broker_pid} if broker_pid else None
        res = await drain(procs, bootstrap, prefix + "decisions", partitions, sent.parcels,
                          timeout=max(600.0, sent.parcels / 2000.0), extra_pids=extra, expected_messages=sent.messages)
        res["workers"] = processes
        res["worker_processes_started_by_harness"] = len(procs)
        out["run"] = res
        log(f"  day: {processes} worker process(es): {res['span_s']} s, {res['parcels_per_s']:,.0f} parcels/s")
    finally:
        await delete_topics(bootstrap, topics(prefix))
    return out


def _distinct_consignees(pool: Pool, messages: int) -> int:
    """Distinct consignee ids on the wire: the pool's, once per copy of the pool that was published."""
    import re

    ids = set()
    for msg in pool.messages:
        ids.update(re.findall(rb'"consignee_id":"([^"]+)"', msg))
    copies = -(-messages // len(pool.messages))
    return len(ids) * copies
