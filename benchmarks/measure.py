"""Drain a pre-published backlog with worker processes and measure them: rate, start-up, CPU, memory.

The rate is counted from the first output record to the last (record timestamps), so the
worker's start-up (imports, kernel load, group join: several seconds) is reported separately
and not mixed into parcels/s; for a two-stage worker, from the first record of its first stage.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from .kafka import Watched, first_timestamp, watch
from .procs import MACHINE, Proc, Sampler, start_profile, top_functions
from .workload import count_parcels


async def drain(procs: list[Proc], bootstrap: str, out_topic: str, partitions: int, expected_parcels: int,
                timeout: float, profile: Path | None = None, profile_s: float = 10.0,
                extra_pids: dict[str, int] | None = None, since_ms: int = 0,
                count: Callable[[bytes], int] = count_parcels, expected_messages: int | None = None,
                start_topic: str | None = None) -> dict:
    """Start `procs`, wait until `expected_parcels` decisions are on `out_topic`, stop them; figures as a dict.

    `start_topic`: a topic the workers write before `out_topic` (a stateful worker's `state-requests`):
    its first record starts the measured span, so work done before the first decision counts too.

    `count` tells how many parcels an output record stands for (default: its `parcel_id` keys). With
    `expected_messages` (output records the run must write), the output is read only once it is all
    there, so the harness stays off the CPU while the consumer under measurement works.
    """
    ready, progress = asyncio.Event(), Watched()
    watcher = asyncio.create_task(watch(bootstrap, out_topic, partitions, expected_parcels, timeout, ready=ready,
                                        since_ms=since_ms, out=progress, count=count,
                                        expected_messages=expected_messages))
    await ready.wait()
    t_start = time.time()
    for p in procs:
        p.start()
    # The harness and the whole machine too: other engineers' jobs share these cores.
    pids = {p.name: p.pid for p in procs} | (extra_pids or {}) | {"harness": os.getpid(), "machine": MACHINE}
    sampler = Sampler(pids, interval=0.2, trees=frozenset(p.name for p in procs)).start()  # spans are seconds long
    spy = None
    if profile is not None:
        spy = asyncio.create_task(_profile_when_busy(procs[0], profile, profile_s, progress, watcher))
    try:
        while not watcher.done():
            await asyncio.sleep(0.2)
            dead = [p for p in procs if not p.alive()]
            if dead:
                watcher.cancel()
                raise RuntimeError(f"{dead[0].name} exited early:\n{dead[0].log_tail()}")
        seen = watcher.result()
    finally:
        sampler.stop()
        for p in procs:
            p.stop()
        if spy is not None:
            await spy
    if start_topic is not None:
        seen.start_ms = await first_timestamp(bootstrap, start_topic, partitions, since_ms)
    result = {"parcels": seen.parcels, "messages": seen.messages, "parcels_per_s": round(seen.rate(), 1),
              "span_s": round(seen.span_s(), 3), "timed_out": seen.timed_out,
              "output_bytes_per_message": round(seen.bytes / seen.messages) if seen.messages else None,
              "with_reasons_share": round(1 - seen.without_reasons / seen.parcels, 4) if seen.parcels else None}
    if seen.ts_ms:
        first, last = seen.started() / 1000.0, max(seen.ts_ms) / 1000.0
        result["startup_s"] = round(first - t_start, 2)
        result["cpu_cores"] = {name: round(sampler.cpu_share(name, first, last), 3) for name in sampler.pids}
        # Is memory flat? RSS at 0, 25, 50, 75 and 100% of the way from the first output to the last.
        result["rss_mb_over_run"] = {p.name: [round(sampler.rss_at(p.name, first + k * (last - first) / 4) / 2**20, 1)
                                              for k in range(5)] for p in procs}
    result["peak_rss_mb"] = {p.name: round(max(p.final_memory.get("peak_rss", 0), sampler.peak_rss(p.name)) / 2**20, 1)
                             for p in procs}
    for name in extra_pids or {}:
        result["peak_rss_mb"][name] = round(sampler.peak_rss(name) / 2**20, 1)
    if profile is not None and profile.exists():
        result["profile"] = str(profile)
        result["profile_top"] = top_functions(profile)
    return result


async def _profile_when_busy(proc: Proc, out: Path, seconds: float, progress: Watched,
                             watcher: asyncio.Task) -> None:
    """py-spy the worker for `seconds` from its first decision on (start-up is not what we want to see)."""
    while not progress.messages and not watcher.done():
        await asyncio.sleep(0.05)
    if watcher.done() or not proc.alive():
        return
    spy = start_profile(proc.pid, out, duration=seconds)
    if spy is None:
        return
    while spy.poll() is None:
        await asyncio.sleep(0.2)
