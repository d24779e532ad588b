"""The stateful pipeline against the stateless one on the same manifests, interleaved on one broker.

    python -m benchmarks.stateful                     # 100,000 parcels, 3 rounds each
    python -m benchmarks.stateful --parcels 300000 --rounds 2
    python -m benchmarks.stateful --profile /tmp/stateful.speedscope.json   # then py-spy the stateful worker
    python -m benchmarks.stateful --consignees recycled   # every copy of the pool re-sends the same consignees

Both run `screener worker` (one process, the run's GC settings) over the same backlog of manifests of
500: the default pack, and the default pack plus rules/stateful.toml's rules (R2, R3, R11, R12) and a
capacity limit (R15), which re-keys parcels by consignee through the `parcels` topic and writes
`state-changelog`. A round's rate runs from its first output (for the stateful worker its first re-keyed
record, as work before the first decision counts too) to its last decision. Prints each one's best round
and the ratio (issue 10's target: at least 0.6), per parcels/s and per CPU-second, then the same pair
without a broker (`compute_only`: both stages called in this process, each stage's microseconds per
parcel too), which tells the compute from the second trip through Kafka, and `one_stage`: stage two's work
straight on the manifests with one store, the compute bound of any design that skips the re-keying; writes
benchmarks/stateful-results.json. The full run
(`python -m benchmarks.run --full`) measures the same pair among the other contenders (fresh consignees).

Consignees. The backlog is copies of one 20,000-parcel pool. By default (`fresh`) each copy renames its
consignees, so distinct consignees grow with the traffic as on a real day. With `recycled`, copy r sends
every consignee of the pool the same parcels, same event times, for the r-th time: at 300,000 parcels each
consignee has 15 parcels within the same millisecond. Each parcel walks its consignee's retained window
(screener/state/consignee.py), so that shape slows stage two as the run grows; it is the one measured
before this option existed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from screener.kafka.broker import EmbeddedBroker

from . import endtoend
from .ceiling import WORKER_GC_THRESHOLD
from .contenders import Contender, Env, screener, stateful_contender
from .endtoend import topics
from .hitpacks import compose_stateful
from .kafka import create_topics, publish
from .run import _ratio, log, run_rounds
from .workload import Pool, make_pool

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def benchmark_pool(consignees: str) -> Pool:
    """The manifests both workers get; `fresh`: every copy of the pool renames its consignees."""
    return replace(make_pool(500, 20_000, 71), fresh_consignees=consignees == "fresh")


async def compare(parcels: int, rounds: int, partitions: int, workdir: Path, profile: Path | None = None,
                  consignees: str = "fresh") -> dict:
    """Best rounds of the stateless and the stateful worker, and their ratios (and a profile of the stateful one)."""
    broker = EmbeddedBroker.start(log_path=str(workdir / "broker.log"))
    try:
        env = Env(broker.bootstrap, broker.url, broker.process.pid, workdir, partitions)
        pool = benchmark_pool(consignees)
        pack = compose_stateful(workdir / "packs")
        contenders = [Contender("screener_500", 500, parcels, screener, "`screener worker`, default pack"),
                      stateful_contender(parcels, pack)]
        best = await run_rounds(env, {500: pool}, contenders, rounds, concurrent=False)
        if profile is not None:
            best["profile_stateful"] = await _profile(env, pool, best["screener_500_stateful"], profile, pack)
    finally:
        broker.stop()
    plain, state = best["screener_500"], best["screener_500_stateful"]
    return {"command": f"python -m benchmarks.stateful --parcels {parcels} --rounds {rounds} --consignees {consignees}",
            "partitions": partitions, "consignees": consignees, **best,
            "stateful_ratio": _ratio(state["parcels_per_s"], plain["parcels_per_s"]),
            "stateful_ratio_per_core": _ratio(state["best_parcels_per_core_s"], plain["best_parcels_per_core_s"])}


async def _profile(env: Env, pool, best: dict, out: Path, pack: Path) -> dict:
    """py-spy the stateful worker over a fresh backlog of about 16 s of its best rate."""
    prefix = "profile-stateful-"
    parcels = int((best["parcels_per_s"] or 10_000) * 16)
    await create_topics(env.bootstrap, topics(prefix), env.partitions)
    await publish(env.bootstrap, prefix + "manifests", pool.stream(pool.messages_for(parcels)), env.partitions, 500)
    res = await endtoend.profile(env.bootstrap, env.broker_url, env.workdir, prefix, env.partitions, parcels, out,
                                 timeout=300, seconds=10, pack=pack)
    log(f"profiled the stateful worker: {res.get('profile')}")
    for row in res.get("profile_top") or []:
        log(f"  {row}")
    return res


def rekeyed(stage_one, raws: list, offsets: list[int]) -> dict[int, list]:
    """Stage one's re-keyed records of a batch as stage two reads them, by partition (`offsets`: the next
    offset of each partition, advanced)."""
    from screener.pipeline.decode import RawMessage
    from screener.state.route import PARCELS

    by_partition: dict[int, list] = {}
    for kind, _, value, p in stage_one.process(raws).records:
        if kind == PARCELS:
            by_partition.setdefault(p, []).append(RawMessage(value, PARCELS, p, offsets[p]))
            offsets[p] += 1
    return by_partition


def compute_only(pool, pack: Path, parcels: int, rounds: int, partitions: int, batch: int = 64) -> dict:
    """The same two pipelines without a broker: stage one and stage two called directly, batches of `batch`
    manifests, the worker's GC settings; best of `rounds` each, interleaved. Tells the compute apart from
    what the second trip through Kafka (produce, fetch, acknowledge) costs; `one_stage` is the stateful
    compute with no re-keying at all."""
    import gc
    import time

    from screener.kafka.state_shards import Shard
    from screener.pipeline.decode import RawMessage
    from screener.pipeline.processor import BatchProcessor, VocabularyGenerations
    from screener.rules import load_pack_screener
    from screener.state.risk import RiskStats
    from screener.state.route import Router

    plain_rules, state_rules = load_pack_screener(REPO / "rules" / "default.toml"), load_pack_screener(pack)
    values = list(pool.stream(pool.messages_for(parcels)))
    batches = [[RawMessage(v, "manifests", 0, at + k) for k, v in enumerate(values[at:at + batch])]
               for at in range(0, len(values), batch)]
    n = len(values) * pool.parcels_per_message

    def plain() -> dict[str, float]:
        processor = BatchProcessor(plain_rules)
        t0 = time.perf_counter()
        for raws in batches:
            processor.process(raws)
        return {"stateless": time.perf_counter() - t0}

    def stateful() -> dict[str, float]:
        risk, vocabularies = RiskStats(), VocabularyGenerations()      # one generation for both, as the worker
        stage_one = BatchProcessor(state_rules, router=Router(partitions), vocabularies=vocabularies)
        shards = [Shard(state_rules, {}, partitions, risk, vocabularies) for _ in range(partitions)]
        offsets = [0] * partitions
        one = two = 0.0
        for raws in batches:
            t0 = time.perf_counter()
            by_partition = rekeyed(stage_one, raws, offsets)
            t1 = time.perf_counter()
            for p, records in sorted(by_partition.items()):
                shards[p].screen(p, records)
            one, two = one + t1 - t0, two + time.perf_counter() - t1
        return {"stateful": one + two, "stage_one": one, "stage_two": two}

    def one_stage() -> dict[str, float]:
        # Stage two's work (state, screening, changelog, facts) straight on the manifests, one store: what a
        # design without the re-keyed hop could reach at best, as it leaves out any trip to the state's owner.
        # One share of the capacity: the one store sees every parcel, as the four stores see a quarter each.
        shard = Shard(state_rules, {}, 1, RiskStats(), VocabularyGenerations())
        t0 = time.perf_counter()
        for raws in batches:
            shard.processor.process(raws)
            shard.changelog(0)
            shard.facts()
        return {"one_stage": time.perf_counter() - t0}

    gc.set_threshold(*WORKER_GC_THRESHOLD)
    best = dict.fromkeys(("stateless", "stateful", "stage_one", "stage_two", "one_stage"), float("inf"))
    runs = (("stateless", plain), ("stateful", stateful), ("one_stage", one_stage))
    for r in range(rounds):
        for name, run in runs[r % 3:] + runs[:r % 3]:     # interleaved: each goes first in turn
            for part, seconds in run().items():
                best[part] = min(best[part], seconds)
            log(f"compute only, round {r + 1}/{rounds}: {name} {n / best[name]:,.0f} parcels/s (best so far)")
    rates = {name: round(n / s, 1) for name, s in best.items()}
    # Per-parcel microseconds tell where the stateful compute goes: stage one's scan and re-keying, stage
    # two's checks, state and screening, against the stateless worker's whole job.
    return {"parcels": n, "stateless_parcels_per_s": rates["stateless"], "stateful_parcels_per_s": rates["stateful"],
            "ratio": _ratio(rates["stateful"], rates["stateless"]),
            "one_stage_parcels_per_s": rates["one_stage"], "one_stage_ratio": _ratio(rates["one_stage"], rates["stateless"]),
            "us_per_parcel": {name: round(s / n * 1e6, 2) for name, s in best.items()}}


def main(argv: list[str] | None = None) -> dict:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description="stateful vs stateless screener throughput")
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--json", default=str(HERE / "stateful-results.json"))
    ap.add_argument("--profile", type=Path, help="after the rounds, py-spy the stateful worker into this file")
    ap.add_argument("--consignees", choices=("fresh", "recycled"), default="fresh",
                    help="fresh: each copy of the 20,000-parcel pool has consignees of its own (as on a real day); "
                         "recycled: every copy sends the same consignees identical parcels again")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-stateful-"))
    try:
        results = asyncio.run(compare(args.parcels, args.rounds, args.partitions, workdir, args.profile,
                                      args.consignees))
        # After the broker runs (their processes gone): the same work without Kafka, in this process.
        results["compute_only"] = compute_only(benchmark_pool(args.consignees), compose_stateful(workdir / "packs"),
                                               args.parcels, args.rounds, args.partitions)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    for key in ("screener_500", "screener_500_stateful"):
        log(f"{key}: best {results[key]['parcels_per_s']:,.0f} parcels/s, "
            f"{results[key]['best_parcels_per_core_s']} per CPU-s")
    us = results["compute_only"]["us_per_parcel"]
    print(f"stateful_ratio {results['stateful_ratio']} (per CPU-s {results['stateful_ratio_per_core']}); "
          f"compute only {results['compute_only']['ratio']} (us per parcel: stateless {us['stateless']}, "
          f"stateful {us['stateful']} = stage one {us['stage_one']} + stage two {us['stage_two']}; "
          f"one stage, no hop {us['one_stage']}, ratio {results['compute_only']['one_stage_ratio']})")
    return results


if __name__ == "__main__":
    main()
