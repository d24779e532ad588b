"""A compiled rule pack behind the `Screener` seam: one kernel call per batch, explanations on demand."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from screener.kernels.hashing import seeded_uniform_reference
from screener.pipeline.batch import LANE_NAMES, ParcelBatch, Reason, ScreenResult
from screener.rules.columnar import Columns
from screener.rules.compiler import KernelSource, generate, load_kernel
from screener.rules.explain import explain_rule_many, noisy_or_shares
from screener.rules.interpreter import Interpreter
from screener.rules.lookups import LookupState
from screener.rules.pack import Pack, load_pack
from screener.rules.reasons import random_text, reason_text

RANDOM_DESCRIPTION = "reproducible random selection (hash of parcel_id and the pack's seed)"

_CACHE: dict[tuple[str, str], PackScreener] = {}
_CACHE_LOCK = threading.Lock()


def _col(a: np.ndarray, dtype) -> np.ndarray:
    """The array as the kernel's signature wants it: C-contiguous, writable, exact dtype."""
    out = np.ascontiguousarray(a, dtype=dtype)
    return out if out.flags.writeable else out.copy()


class PackScreener:
    """Screens batches with the pack's generated kernel; explains flagged parcels from numpy columns."""

    def __init__(self, pack: Pack, cache_dir: str | Path | None = None, chunk_rules: int | None = None) -> None:
        self.pack = pack
        self.ruleset_id = pack.id
        self.version = pack.version
        self.hash = pack.hash
        self.rules = pack.active_rules
        self.rule_ids = [r.id for r in self.rules]
        t0 = time.perf_counter()
        conditions = [(r.id, r.ir) for r in self.rules]
        self.source: KernelSource = generate(conditions, chunk_rules) if chunk_rules else generate(conditions)
        self.kernel = load_kernel(self.source, Path(cache_dir) if cache_dir else None)
        self.compile_seconds = time.perf_counter() - t0
        self.lookups = LookupState(self.source.plan)
        self.interpreter = Interpreter(pack)
        self.weights = [r.weight for r in self.rules]
        self.q = np.array([1.0 - r.weight for r in self.rules], dtype=np.float64)
        self.floor = np.array([r.lane_floor for r in self.rules], dtype=np.int64)
        self.valid_from = np.array([r.valid_from for r in self.rules], dtype=np.int64)
        self.valid_until = np.array([r.valid_until for r in self.rules], dtype=np.int64)
        self.params = np.array([pack.yellow, pack.red, pack.random_rate], dtype=np.float64)
        self._lock = threading.Lock()   # lookup matrices grow in place: one batch at a time

    def kernel_args(self, batch: ParcelBatch, random: bool = True) -> list:
        """Every argument of the kernel except the four output arrays (lookups brought up to date)."""
        src = self.source
        args = [_col(batch.event_time_ms, np.int64), _col(batch.parcel_hash, np.uint64),
                _col(batch.item_offsets, np.int64)]
        args += [_col(batch.strings[c], np.int32) for c in src.parcel_strings]
        args += [_col(batch.numbers[c], np.float64) for c in src.parcel_numbers]
        args += [_col(batch.item_strings[c], np.int32) for c in src.item_strings]
        args += [_col(batch.item_numbers[c], np.float64) for c in src.item_numbers]
        args += self.lookups.update(batch.vocab)
        params = self.params if random else np.array([*self.params[:2], 0.0])
        args += [self.q, self.floor, self.valid_from, self.valid_until, params,
                 np.uint64(self.pack.seed), np.int64(self.pack.random_lane)]
        return args

    def screen_into(self, args: list, out: ScreenResult) -> None:
        """Run the kernel over prepared arguments into caller-given output arrays."""
        self.kernel(*args, out.lane, out.score, out.hits, out.random)

    def new_result(self, n: int) -> ScreenResult:
        """Output arrays for n parcels."""
        return ScreenResult(lane=np.empty(n, dtype=np.uint8), score=np.empty(n, dtype=np.float64),
                            hits=np.empty((n, self.source.words), dtype=np.uint64),
                            random=np.empty(n, dtype=np.bool_))

    def screen(self, batch: ParcelBatch, random: bool = True) -> ScreenResult:
        """Lane, score, hit mask and random flag for every parcel of the batch (one kernel call).

        `random=False` turns random selection off (rule examples judge the rules alone).
        """
        with self._lock:
            out = self.new_result(batch.n)
            self.screen_into(self.kernel_args(batch, random), out)
        return out

    def fired_rules(self, result: ScreenResult, i: int) -> list[int]:
        """Indices of the rules whose bit is set for parcel i."""
        row = result.hits[i]
        return [r for r in range(len(self.rules)) if (int(row[r >> 6]) >> (r & 63)) & 1]

    def explain(self, batch: ParcelBatch, result: ScreenResult, i: int) -> list[Reason]:
        """Reasons for parcel i: each fired rule with its contribution and triggering values, then `random`."""
        return self.explain_many(batch, result, np.array([i]))[0]

    def explain_many(self, batch: ParcelBatch, result: ScreenResult, indices: np.ndarray) -> list[list[Reason]]:
        """Reasons for each parcel of `indices` (in that order), in rule order, then `random` for a random pick.

        Each fired rule's condition is evaluated once, with numpy, over the parcels it fired for
        (columnar.py), never by the per-parcel interpreter; then each reason is worded (reasons.py).
        """
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        out: list[list[Reason]] = [[] for _ in range(len(rows))]
        if not len(rows):
            return out
        hits = result.hits[rows]
        fired = np.stack([(hits[:, r >> 6] >> np.uint64(r & 63)) & np.uint64(1) for r in range(len(self.rules))]
                         ).astype(np.bool_) if self.rules else np.zeros((0, len(rows)), dtype=np.bool_)
        shares = noisy_or_shares(self.weights, fired)
        codes = batch.strings["currency"][rows].tolist()
        currency_names = batch.vocab["currency"].strings
        currencies = [currency_names[c] for c in codes]
        off = batch.item_offsets
        n_items = (off[rows + 1] - off[rows]).tolist()
        now = batch.event_time_ms[rows].tolist()
        memo: dict = {}          # string results shared by all rules of this call
        for r in np.flatnonzero(fired.any(axis=1)).tolist():
            rule = self.rules[r]
            at = np.flatnonzero(fired[r])
            positions = at.tolist()
            values, words = explain_rule_many(rule, Columns(batch, rows[at], memo), [now[p] for p in positions],
                                              [currencies[p] for p in positions], [n_items[p] for p in positions])
            floor = LANE_NAMES[rule.lane_floor] if rule.lane_floor else None
            if floor:
                for v in values:
                    v["lane_floor"] = floor
            rule_id, description = rule.id, rule.description
            texts = [reason_text(description, w, floor) for w in words]
            for pos, v, text, c in zip(positions, values, texts, shares[r][at].tolist()):
                out[pos].append(Reason(rule_id, c, v, description, text))
        for pos in np.flatnonzero(result.random[rows]).tolist():
            draw = seeded_uniform_reference(int(batch.parcel_hash[rows[pos]]), self.pack.seed)
            out[pos].append(Reason("random", 0.0, {"rate": self.pack.random_rate, "draw": round(draw, 6)},
                                   RANDOM_DESCRIPTION, random_text(self.pack.random_rate, draw)))
        return out


def load_pack_screener(path: str | Path, cache_dir: str | Path | None = None) -> PackScreener:
    """The compiled screener of the pack at `path` (raises PackError listing every problem of a bad pack).

    Compiled once per pack hash per process; the machine code is also cached on disk, so a
    restarted worker loads it instead of compiling.
    """
    pack = load_pack(path)
    key = (pack.hash, str(cache_dir or ""))
    with _CACHE_LOCK:
        screener = _CACHE.get(key)
        if screener is None:
            screener = PackScreener(pack, cache_dir)
            _CACHE[key] = screener
    return screener
