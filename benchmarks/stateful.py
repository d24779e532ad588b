"""The stateful pipeline against the stateless one on the same manifests, interleaved on one broker.

    python -m benchmarks.stateful                     # 100,000 parcels, 3 rounds each
    python -m benchmarks.stateful --parcels 300000 --rounds 2
    python -m benchmarks.stateful --profile /tmp/stateful.speedscope.json   # then py-spy the stateful worker
    python -m benchmarks.stateful --consignees recycled   # every copy of the pool re-sends the same consignees

Both run `screener worker` (one process, the run's GC settings) over the same backlog of manifests of
500: the default pack, and the default pack plus rules/stateful.toml's rules (R2, R3, R11, R12) and a
capacity limit (R15), which asks the state partitions for each batch's consignee columns
(`state-requests`, `state-answers`) and writes `state-changelog`. A round's rate runs from its first output
(for the stateful worker its first request, as work before the first decision counts too) to its last
decision. Prints each one's best round and the ratio (issue 10's target: at least 0.6), per parcels/s and
per CPU-second, then the same pair without a broker (`compute_only`: the lookups answered in this process,
the asking and the answering microseconds per parcel too), which tells the compute from the lookups'
trips through Kafka, and `one_stage`: the store inside the screener, no lookup at all; writes
benchmarks/stateful-results.json. The full run
(`python -m benchmarks.run --full`) measures the same pair among the other contenders (fresh consignees).

Consignees. The backlog is copies of one 20,000-parcel pool. By default (`fresh`) each copy renames its
consignees, so distinct consignees grow with the traffic as on a real day. With `recycled`, copy r sends
every consignee of the pool the same parcels, same event times, for the r-th time: at 300,000 parcels each
consignee has 15 parcels within the same millisecond. Each parcel walks its consignee's retained window
(screener/state/consignee.py), so that shape slows the answering as the run grows; it is the one measured
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


class LocalState:
    """The state partitions answering lookups in this process, as the workers' `serve-state` agents do."""

    def __init__(self, partitions: int) -> None:
        from screener.kafka.state_shards import Shard

        self.shards = [Shard() for _ in range(partitions)]
        self.offsets = [0] * partitions
        self.seconds = 0.0       # spent answering (decode, apply, encode, changelog)

    def answers(self, lookup) -> dict:
        """The answers to a batch's requests, by token (each partition's records at its next offsets)."""
        import time

        from screener.pipeline.decode import RawMessage
        from screener.state.lookup import ANSWERS, REQUESTS, decode_answer

        t0 = time.perf_counter()
        by_partition: dict[int, list] = {}
        for asked in lookup.asked:
            p = asked.partition
            by_partition.setdefault(p, []).append(RawMessage(asked.value, REQUESTS, p, self.offsets[p]))
            self.offsets[p] += 1
        values = [r[2] for p, records in by_partition.items() for r in self.shards[p].answer(p, records).records
                  if r[0] == ANSWERS]
        self.seconds += time.perf_counter() - t0
        return {a.token: a for a in map(decode_answer, values)}


def asker(pack: Path, partitions: int, max_strings: int = 2_000_000):
    """A stateful worker's processor (consignee columns asked for, R11 and R15 on; `max_strings`: its
    vocabulary bound) and its consignee keys."""
    from screener.pipeline.processor import BatchProcessor
    from screener.rules import load_pack_screener
    from screener.state.lookup import ConsigneeKeys
    from screener.state.risk import RiskStats
    from screener.state.screener import StatefulScreener

    screener = StatefulScreener(load_pack_screener(pack), risk=RiskStats(), capacity_shares=partitions,
                                keep_selected=True, remote=True)
    return BatchProcessor(screener, vocabulary_max_strings=max_strings), ConsigneeKeys(partitions)


def screen_with_state(processor, keys, state: LocalState, raws: list, partitions: int) -> list:
    """One batch as a stateful worker screens it, the lookups answered by `state`: every record it produces."""
    from screener.state.facts import FACTS_TOPIC, facts_records
    from screener.state.lookup import ask, fill

    prepared = processor.prepare(raws)
    lookup = ask(prepared.batches, processor.screener, keys, 1, sum(state.offsets), 0, processor.max_record_bytes)
    result = processor.finish(prepared, fill(prepared.batches, lookup, state.answers(lookup)))
    facts = facts_records(processor.screener.take_selected(), partitions, processor.max_record_bytes)
    return result.records + [(FACTS_TOPIC, None, v, p) for p, v in facts]


def compute_only(pool, pack: Path, parcels: int, rounds: int, partitions: int, batch: int = 64) -> dict:
    """The same two pipelines without a broker: the stateful worker's lookups answered in this process,
    batches of `batch` manifests, the worker's GC settings; best of `rounds` each, interleaved. Tells the
    compute apart from what the lookups' trips through Kafka cost; `one_stage` is the stateful compute
    with one store in the screener itself, no lookup at all."""
    import gc
    import time

    from screener.pipeline.decode import RawMessage
    from screener.pipeline.processor import BatchProcessor
    from screener.rules import load_pack_screener
    from screener.state.facts import facts_records
    from screener.state.risk import RiskStats
    from screener.state.screener import StatefulScreener

    plain_rules = load_pack_screener(REPO / "rules" / "default.toml")
    values = list(pool.stream(pool.messages_for(parcels)))
    batches = [[RawMessage(v, "manifests", k % partitions, at + k) for k, v in enumerate(values[at:at + batch])]
               for at in range(0, len(values), batch)]
    n = len(values) * pool.parcels_per_message

    def plain() -> dict[str, float]:
        processor = BatchProcessor(plain_rules)
        t0 = time.perf_counter()
        for raws in batches:
            processor.process(raws)
        return {"stateless": time.perf_counter() - t0}

    def stateful() -> dict[str, float]:
        processor, keys = asker(pack, partitions)
        state = LocalState(partitions)
        t0 = time.perf_counter()
        for raws in batches:
            screen_with_state(processor, keys, state, raws, partitions)
        total = time.perf_counter() - t0
        return {"stateful": total, "asking": total - state.seconds, "answering": state.seconds}

    def one_stage() -> dict[str, float]:
        # The same work with the store in the screener: what any design that moves state has to add to.
        screener = StatefulScreener(load_pack_screener(pack), risk=RiskStats(), capacity_shares=partitions,
                                    keep_selected=True)
        processor = BatchProcessor(screener)
        t0 = time.perf_counter()
        for raws in batches:
            processor.process(raws)
            screener.take_changed()
            facts_records(screener.take_selected(), partitions, processor.max_record_bytes)
        return {"one_stage": time.perf_counter() - t0}

    gc.set_threshold(*WORKER_GC_THRESHOLD)
    best = dict.fromkeys(("stateless", "stateful", "asking", "answering", "one_stage"), float("inf"))
    runs = (("stateless", plain), ("stateful", stateful), ("one_stage", one_stage))
    for r in range(rounds):
        for name, run in runs[r % 3:] + runs[:r % 3]:     # interleaved: each goes first in turn
            for part, seconds in run().items():
                best[part] = min(best[part], seconds)
            log(f"compute only, round {r + 1}/{rounds}: {name} {n / best[name]:,.0f} parcels/s (best so far)")
    rates = {name: round(n / s, 1) for name, s in best.items()}
    # Per-parcel microseconds tell where the stateful compute goes: the asking worker's decoding, screening
    # and encoding, the state partitions' answering, against the stateless worker's whole job.
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
          f"stateful {us['stateful']} = asking {us['asking']} + answering {us['answering']}; "
          f"store in the screener {us['one_stage']}, ratio {results['compute_only']['one_stage_ratio']})")
    return results


if __name__ == "__main__":
    main()
