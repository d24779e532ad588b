"""The stateful pipeline against the stateless one on the same manifests, interleaved on one broker.

    python -m benchmarks.stateful                     # 100,000 parcels, 3 rounds each
    python -m benchmarks.stateful --parcels 300000 --rounds 2

Both run `screener worker` (one process, the run's GC settings) over the same backlog of manifests of
500: the default pack, and the default pack plus rules/stateful.toml's rules (R2, R3, R11, R12) and a
capacity limit (R15), which re-keys parcels by consignee through the `parcels` topic and writes
`state-changelog`. Prints each one's best round and the ratio (issue 10's target: at least 0.6), per
parcels/s and per CPU-second; writes benchmarks/stateful-results.json. The full run
(`python -m benchmarks.run --full`) measures the same pair among the other contenders.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path

from screener.kafka.broker import EmbeddedBroker

from .contenders import Contender, Env, screener, stateful_contender
from .hitpacks import compose_stateful
from .run import _ratio, log, run_rounds
from .workload import make_pool

HERE = Path(__file__).resolve().parent


async def compare(parcels: int, rounds: int, partitions: int, workdir: Path) -> dict:
    """Best rounds of the stateless and the stateful worker, and their ratios."""
    broker = EmbeddedBroker.start(log_path=str(workdir / "broker.log"))
    try:
        env = Env(broker.bootstrap, broker.url, broker.process.pid, workdir, partitions)
        pool = make_pool(500, 20_000, 71)
        contenders = [Contender("screener_500", 500, parcels, screener, "`screener worker`, default pack"),
                      stateful_contender(parcels, compose_stateful(workdir / "packs"))]
        best = await run_rounds(env, {500: pool}, contenders, rounds, concurrent=False)
    finally:
        broker.stop()
    plain, state = best["screener_500"], best["screener_500_stateful"]
    return {"command": f"python -m benchmarks.stateful --parcels {parcels} --rounds {rounds}",
            "partitions": partitions, **best,
            "stateful_ratio": _ratio(state["parcels_per_s"], plain["parcels_per_s"]),
            "stateful_ratio_per_core": _ratio(state["best_parcels_per_core_s"], plain["best_parcels_per_core_s"])}


def main(argv: list[str] | None = None) -> dict:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description="stateful vs stateless screener throughput")
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--json", default=str(HERE / "stateful-results.json"))
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-stateful-"))
    try:
        results = asyncio.run(compare(args.parcels, args.rounds, args.partitions, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    for key in ("screener_500", "screener_500_stateful"):
        log(f"{key}: best {results[key]['parcels_per_s']:,.0f} parcels/s, "
            f"{results[key]['best_parcels_per_core_s']} per CPU-s")
    print(f"stateful_ratio {results['stateful_ratio']} (per CPU-s {results['stateful_ratio_per_core']})")
    return results


if __name__ == "__main__":
    main()
