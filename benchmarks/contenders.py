"""Every consumer measured on the same backlogs, run one at a time against one broker.

A contender is one consumer process (or a small group of them) that reads a backlog from
`<prefix>manifests` and writes to `<prefix>decisions`: the I/O ceilings (aiokafka, librdkafka),
the obvious Faust agents (per parcel, per manifest, bare), the obvious Quix Streams app, and the
screener's worker with a rule pack. Each returns the figures of `measure.drain`: rate from the
first output record to the last (so start-up, including Quix's ~23 s group join, is reported
apart as `startup_s`), CPU and memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .baseline import PROGRESS_EVERY
from .kafka import watch
from .measure import drain
from .procs import Proc, screener_worker


@dataclass
class Env:
    """Where contenders run: the broker, the work directory, the partition count."""

    bootstrap: str
    broker_url: str
    broker_pid: int
    workdir: Path
    partitions: int


@dataclass
class Contender:
    """One consumer to measure: its results key, the message shape it reads, and how to run it on a prefix."""

    key: str
    shape: int  # parcels per input message: 500 (manifests) or 1 (single parcels)
    parcels: int
    run: Callable[[Env, str, int, int], Awaitable[dict]]  # (env, prefix, parcels, input messages) -> figures
    what: str


async def ceiling(env: Env, prefix: str, parcels: int, messages: int, client: str) -> dict:
    """The I/O ceiling in a process of its own (benchmarks/ceiling.py)."""
    cmd = [sys.executable, "-m", "benchmarks.ceiling", "--client", client, "--bootstrap", env.bootstrap,
           "--in-topic", prefix + "manifests", "--out-topic", prefix + "decisions",
           "--partitions", str(env.partitions), "--parcels", str(parcels)]
    from .procs import REPO

    proc = await asyncio.create_subprocess_exec(*cmd, cwd=REPO, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120 + parcels / 2000)
    if proc.returncode:
        raise RuntimeError(f"ceiling ({client}) failed:\n{err.decode(errors='replace')[-3000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


def _python_proc(env: Env, name: str, module: str, args: list[str]) -> Proc:
    return Proc(name, [sys.executable, "-m", module, *args], dict(os.environ), env.workdir / f"{name}.log")


async def faust_agent(env: Env, prefix: str, parcels: int, messages: int, mode: str) -> dict:
    """One of the obvious Faust agents (benchmarks/baseline.py) draining the backlog."""
    name = f"faust-{mode}-{prefix.strip('-')}"
    proc = _python_proc(env, name, "benchmarks.baseline", [
        "--mode", mode, "--broker", env.broker_url, "--in-topic", prefix + "manifests",
        "--out-topic", prefix + "decisions", "--app-id", f"{name}-{time.time_ns()}",
        "--partitions", str(env.partitions), "--data-dir", str(env.workdir / f"{name}-data")])
    if mode == "bare":  # its progress records hold the number of events they stand for
        return await drain([proc], env.bootstrap, prefix + "decisions", env.partitions,
                           parcels - parcels % PROGRESS_EVERY, timeout=120 + parcels / 500,
                           extra_pids={"broker": env.broker_pid}, count=int, expected_messages=messages // PROGRESS_EVERY)
    return await drain([proc], env.bootstrap, prefix + "decisions", env.partitions, parcels,
                       timeout=120 + parcels / 500, extra_pids={"broker": env.broker_pid}, expected_messages=messages)


async def quix_app(env: Env, prefix: str, parcels: int, messages: int) -> dict:
    """The obvious Quix Streams app (benchmarks/quix.py) draining the backlog."""
    name = f"quix-{prefix.strip('-')}"
    proc = _python_proc(env, name, "benchmarks.quix", [
        "--broker", env.bootstrap, "--in-topic", prefix + "manifests", "--out-topic", prefix + "decisions",
        "--group", f"{name}-{time.time_ns()}"])
    return await drain([proc], env.bootstrap, prefix + "decisions", env.partitions, parcels,
                       timeout=180 + parcels / 500, extra_pids={"broker": env.broker_pid}, expected_messages=messages)


async def screener(env: Env, prefix: str, parcels: int, messages: int | None, pack: Path | None = None,
                   first_stage: str | None = None) -> dict:
    """`screener worker` (one process) with `pack`; also the share of parcels it flagged. `first_stage`: a
    topic the worker writes before its decisions (a stateful worker's lookups), whose first record starts
    the measured span."""
    proc = screener_worker("screener-" + prefix.strip("-"), env.broker_url, prefix, env.partitions, env.workdir,
                           pack=pack)
    res = await drain([proc], env.bootstrap, prefix + "decisions", env.partitions, parcels,
                      timeout=120 + parcels / 500, extra_pids={"broker": env.broker_pid}, expected_messages=messages,
                      start_topic=prefix + first_stage if first_stage else None)
    flagged = await watch(env.bootstrap, prefix + "flagged", env.partitions, parcels, timeout=60, idle_timeout=2,
                          count=lambda _value: 1)
    res["flagged_share"] = round(flagged.parcels / res["parcels"], 4) if res["parcels"] else None
    return res


def manifest_contenders(parcels: int, hit_parcels: int, packs: dict[str, Path]) -> list[Contender]:
    """Everything measured on manifests of 500, in the order a round runs them (interleaved kinds)."""
    return [
        Contender("ceiling_500", 500, parcels, lambda e, p, n, m: ceiling(e, p, n, m, "aiokafka"),
                  "aiokafka consume + orjson.loads + decisions-sized produce, worker GC, 2 batches in flight"),
        Contender("screener_500", 500, parcels, screener, "`screener worker`, default pack"),
        Contender("baseline_manifests", 500, parcels, lambda e, p, n, m: faust_agent(e, p, n, m, "manifests"),
                  "obvious Faust agent: faust.Record per parcel, rules in Python, one send per manifest"),
        Contender("ceiling_librdkafka_500", 500, parcels, lambda e, p, n, m: ceiling(e, p, n, m, "confluent"),
                  "the same ceiling on librdkafka (confluent-kafka)"),
        Contender("quix_manifests", 500, parcels, quix_app,
                  "obvious Quix Streams app: dicts, rules in Python, to_topic"),
        Contender("screener_500_hit50", 500, hit_parcels, lambda e, p, n, m: screener(e, p, n, m, packs["hit50"]),
                  "`screener worker`, default pack + a rule hitting about half the parcels"),
        Contender("screener_500_hit100", 500, hit_parcels, lambda e, p, n, m: screener(e, p, n, m, packs["hit100"]),
                  "`screener worker`, default pack + a rule hitting every parcel"),
        stateful_contender(parcels, packs["stateful"]),
    ]


def stateful_contender(parcels: int, pack: Path) -> Contender:
    """`screener worker` with the default pack + R2/R3/R11/R12 and a capacity limit (state asked for by batch)."""
    return Contender("screener_500_stateful", 500, parcels,
                     lambda e, p, n, m: screener(e, p, n, m, pack, "state-requests"),
                     "`screener worker`, default pack + stateful rules (R2, R3, R11, R12) + capacity (R15)")


def single_contenders(parcels: int, baseline_parcels: int) -> list[Contender]:
    """Everything measured on single-parcel messages."""
    return [
        Contender("ceiling_1", 1, parcels, lambda e, p, n, m: ceiling(e, p, n, m, "aiokafka"),
                  "the aiokafka ceiling on single-parcel messages"),
        Contender("bare_faust_1", 1, parcels, lambda e, p, n, m: faust_agent(e, p, n, m, "bare"),
                  "bare Faust agent: raw bytes, only acknowledges (the per-event floor)"),
        Contender("screener_1", 1, parcels, screener, "`screener worker`, default pack, single-parcel messages"),
        Contender("baseline", 1, baseline_parcels, lambda e, p, n, m: faust_agent(e, p, n, m, "parcels"),
                  "obvious Faust agent per parcel: faust.Record, rules in Python, one send per parcel"),
    ]
