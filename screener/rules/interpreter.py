"""Plain-Python reference interpreter over the IR: the oracle the compiled kernel must agree with.

It reads parcel values straight from the batch (decoding codes back to strings) and evaluates
string predicates directly on the strings with deliberately naive definitions, so it shares
neither the lookup matrices nor the fast matchers with the kernel path. Arithmetic follows the
kernel's IEEE rules (x/0 is inf or NaN, never an error). With `trace`, it records the value of
every node it evaluated, which explanations read.
"""

from __future__ import annotations

import math
import re

import numpy as np

from screener.kernels.hashing import seeded_uniform_reference
from screener.pipeline.batch import ParcelBatch, ScreenResult
from screener.pipeline.normalise import normalise
from screener.rules import ir
from screener.rules.lookups import band_value
from screener.rules.pack import Pack, Rule

_TOKEN = re.compile(r"\w+")


def _tokens(s: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(s)]


def naive_matches(pred: ir.StrPred, s: str) -> list[ir.Entry]:
    """Entries of a predicate matched by a string, by direct definition (no indexes), both in lookup form."""
    s = normalise(s)
    terms = [(e, normalise(e.term)) for e in pred.entries]
    if pred.kind == "in":
        return [e for e, t in terms if t == s]
    if pred.kind == "prefix":
        return [e for e, t in terms if s[:len(t)] == t]
    if pred.kind == "keyword":
        words = _tokens(s)
        found = []
        for e, t in terms:
            term = _tokens(t)
            if term and any(words[k:k + len(term)] == term for k in range(len(words) - len(term) + 1)):
                found.append(e)
        return found
    allowed = {w for _, t in terms for w in _tokens(t)}
    words = _tokens(s)
    return list(pred.entries) if words and all(w in allowed for w in words) else []


def _div(a: float, b: float) -> float:
    """IEEE division, as Numba's error_model="numpy" does it."""
    if b != 0.0 or math.isnan(b):
        return a / b if not math.isnan(b) else math.nan
    if math.isnan(a) or a == 0.0:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _pick(values: list[float], op: str) -> float:
    """NaN-ignoring min/max in argument order (same tie-breaking as the kernel)."""
    v = math.nan
    for x in values:
        if not math.isnan(x) and (math.isnan(v) or (x < v if op == "min" else x > v)):
            v = x
    return v


class _Parcel:
    """Evaluation context of one parcel (and the current item, inside a quantifier)."""

    __slots__ = ("batch", "derived", "i", "j", "now", "trace")

    def __init__(self, batch: ParcelBatch, i: int, trace: dict | None) -> None:
        self.batch = batch
        self.i = i
        self.j = -1
        self.now = int(batch.event_time_ms[i])
        self.derived: dict[str, float] = {}
        self.trace = trace


def _string(ctx: _Parcel, f: ir.StrField) -> str:
    b = ctx.batch
    if f.level == "item":
        return b.vocab[f.vocab].strings[int(b.item_strings[f.column][ctx.j])]
    return b.vocab[f.vocab].strings[int(b.strings[f.column][ctx.i])]


def evaluate(node: ir.Node, ctx: _Parcel):
    """Value of an IR node for the context's parcel (bool, float or str)."""
    value = _eval(node, ctx)
    if ctx.trace is not None:
        ctx.trace[id(node)] = value
    return value


def _eval(node: ir.Node, ctx: _Parcel):
    if isinstance(node, ir.Const):
        return node.value if isinstance(node.value, bool) else float(node.value)
    if isinstance(node, ir.NumField):
        if node.level == "item":
            return float(ctx.batch.item_numbers[node.column][ctx.j])
        return float(ctx.batch.numbers[node.column][ctx.i])
    if isinstance(node, ir.StrField):
        return _string(ctx, node)
    if isinstance(node, ir.Derived):
        if node.level == "item":
            return evaluate(node.expr, ctx)
        if node.name not in ctx.derived:
            j, ctx.j = ctx.j, -1
            ctx.derived[node.name] = evaluate(node.expr, ctx)
            ctx.j = j
        return ctx.derived[node.name]
    if isinstance(node, ir.Unary):
        a = evaluate(node.arg, ctx)
        return (not a) if node.op == "not" else (-a if node.op == "neg" else abs(a))
    if isinstance(node, ir.Arith):
        a, b = evaluate(node.left, ctx), evaluate(node.right, ctx)
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        return _div(a, b)
    if isinstance(node, ir.Compare):
        a, b = evaluate(node.left, ctx), evaluate(node.right, ctx)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[node.op]
    if isinstance(node, ir.MinMax):
        return _pick([evaluate(a, ctx) for a in node.args], node.op)
    if isinstance(node, ir.Logic):
        for arg in node.args:
            v = evaluate(arg, ctx)
            if v != (node.op == "and"):
                return v
        return node.op == "and"
    if isinstance(node, ir.IfElse):
        return evaluate(node.then, ctx) if evaluate(node.cond, ctx) else evaluate(node.other, ctx)
    if isinstance(node, ir.ItemCount):
        off = ctx.batch.item_offsets
        return float(off[ctx.i + 1] - off[ctx.i])
    if isinstance(node, ir.Missing):
        v = evaluate(node.arg, ctx)
        return v == "" if isinstance(v, str) else math.isnan(v)
    if isinstance(node, ir.StrTest):
        s = evaluate(node.arg, ctx)
        return any(e.valid_from <= ctx.now < e.valid_until for e in naive_matches(node.pred, s))
    if isinstance(node, ir.StrNum):
        s = evaluate(node.arg, ctx)
        if node.fn.kind == "length":
            return float(len(s))
        if node.fn.kind == "word_count":
            return float(len(_tokens(s)))
        return dict(node.fn.mapping).get(s, math.nan)
    if isinstance(node, ir.Band):
        hs = evaluate(node.hs, ctx)
        origin = evaluate(node.origin, ctx) if node.origin is not None else None
        return band_value(node.table, node.which, hs, origin)
    if isinstance(node, ir.PairIn):
        a, b = evaluate(node.a, ctx), evaluate(node.b, ctx)
        return any((ra == "*" or ra == a) and (rb == "*" or rb == b) for ra, rb in node.table.rows)
    if isinstance(node, ir.SameString):
        same = evaluate(node.a, ctx) == evaluate(node.b, ctx)
        return not same if node.negate else same
    if isinstance(node, ir.Quant):
        return _quant(node, ctx)
    raise TypeError(f"cannot evaluate {type(node).__name__}")


def _quant(node: ir.Quant, ctx: _Parcel):
    off = ctx.batch.item_offsets
    lo, hi = int(off[ctx.i]), int(off[ctx.i + 1])
    kind = node.kind
    acc = {"any_item": False, "all_items": True, "count_items": 0.0, "sum_items": 0.0}.get(kind, math.nan)
    witness = -1
    for j in range(lo, hi):
        ctx.j = j
        x = evaluate(node.body, ctx)
        if kind == "any_item" and x:
            acc, witness = True, j
            break
        if kind == "all_items" and not x:
            acc, witness = False, j
            break
        if kind == "count_items" and x:
            acc += 1.0
        elif kind == "sum_items":
            acc += x
        elif kind in ("min_item", "max_item"):
            acc = _pick([acc, x], kind[:3])
    ctx.j = -1
    if ctx.trace is not None:
        ctx.trace[("witness", id(node))] = witness - lo if witness >= 0 else -1
    return acc


class Interpreter:
    """Screens a batch rule by rule in plain Python, with the same scoring as the kernel."""

    def __init__(self, pack: Pack) -> None:
        self.pack = pack
        self.rules: list[Rule] = pack.active_rules
        # The kernel multiplies by these very float64 values, so scores agree bit for bit.
        self.keep = [float(np.float64(1.0) - np.float64(r.weight)) for r in self.rules]
        self.words = max(1, (len(self.rules) + 63) // 64)

    def rule_hits(self, batch: ParcelBatch, i: int) -> list[bool]:
        """Whether each active rule fires for parcel i."""
        ctx = _Parcel(batch, i, None)
        return [r.valid_from <= ctx.now < r.valid_until and bool(evaluate(r.ir, ctx)) for r in self.rules]

    def trace(self, batch: ParcelBatch, i: int, rule: Rule) -> tuple[bool, dict]:
        """Whether a rule fires for parcel i, ignoring validity dates, and every node value it evaluated.

        The trace maps id(node) to its value, ("witness", id(quantifier)) to the deciding item and
        "now" to the parcel's event time (dated list entries are matched at that time).
        """
        ctx = _Parcel(batch, i, {"now": int(batch.event_time_ms[i])})
        fired = bool(evaluate(rule.ir, ctx))
        return fired, ctx.trace

    def screen(self, batch: ParcelBatch, random: bool = True) -> ScreenResult:
        """Lane, score, hit mask and random flag of every parcel (the oracle for the kernel)."""
        n = batch.n
        lane = np.zeros(n, dtype=np.uint8)
        score = np.zeros(n, dtype=np.float64)
        hits = np.zeros((n, self.words), dtype=np.uint64)
        rnd = np.zeros(n, dtype=np.bool_)
        p = self.pack
        for i in range(n):
            keep, floor = 1.0, 0
            for r, fired in enumerate(self.rule_hits(batch, i)):
                if fired:
                    w, bit = divmod(r, 64)
                    hits[i, w] |= np.uint64(1 << bit)
                    keep *= self.keep[r]
                    floor = max(floor, self.rules[r].lane_floor)
            s = 1.0 - keep
            ln = 2 if s >= p.red else 1 if s >= p.yellow else 0
            ln = max(ln, floor)
            picked = False
            if random and p.random_rate > 0.0:
                picked = seeded_uniform_reference(int(batch.parcel_hash[i]), p.seed) < p.random_rate
                if picked:
                    ln = max(ln, p.random_lane)
            lane[i], score[i], rnd[i] = ln, s, picked
        return ScreenResult(lane=lane, score=score, hits=hits, random=rnd)
