"""Rule IR evaluated over a subset of a batch's parcels with numpy: the values explanations show.

The kernel keeps only which rules fired; an explanation also needs what they compared (operands,
the item that matched, which branch of an `or` held). Those are recomputed here for the explained
parcels only, one numpy operation per IR node over all of them at once, instead of running the
reference interpreter parcel by parcel. String work (matchers, value bands, pair tables) runs once
per distinct string among those parcels. The semantics are the interpreter's (IEEE arithmetic,
NaN-ignoring min/max in argument order, item sums in item order), which the property tests check.
"""

from __future__ import annotations

import numpy as np

from screener.pipeline.batch import ParcelBatch
from screener.rules import ir
from screener.rules.lookups import band_value
from screener.rules.predicates import matcher, string_number

PARCEL, ITEM = "parcel", "item"

_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
_QUANT_START = {"any_item": False, "all_items": True, "count_items": 0.0, "sum_items": 0.0,
                "min_item": np.nan, "max_item": np.nan}


def _pick(acc: np.ndarray, x: np.ndarray, op: str) -> np.ndarray:
    """One step of NaN-ignoring min/max: x replaces acc only when strictly better (first wins ties)."""
    better = x < acc if op == "min" else x > acc
    return np.where(~np.isnan(x) & (np.isnan(acc) | better), x, acc)


def _is_parcel_level(node: ir.Node) -> bool:
    """Nodes whose value is one per parcel even when read inside an item quantifier."""
    if isinstance(node, (ir.NumField, ir.StrField, ir.Derived)):
        return node.level == PARCEL
    return isinstance(node, (ir.ItemCount, ir.Quant))


class Columns:
    """Values of IR nodes over parcels `rows` of a batch (level "parcel") and their items (level "item").

    `value(node, level)` evaluates on demand and caches; string fields are kept as int32 codes
    (`text(node, level)` decodes them). Item arrays list the parcels' items in order, `owner`
    giving each item's parcel position among `rows` and `rank` its index within its parcel.
    """

    def __init__(self, batch: ParcelBatch, rows: np.ndarray, memo: dict | None = None) -> None:
        self.batch = batch
        self.rows = np.asarray(rows, dtype=np.int64)
        off = batch.item_offsets
        first = off[self.rows]
        self.counts = off[self.rows + 1] - first
        self.starts = np.cumsum(self.counts) - self.counts      # position of each parcel's first item
        total = int(self.counts.sum())
        self.owner = np.repeat(np.arange(len(self.rows)), self.counts)
        self.rank = np.arange(total) - self.starts[self.owner]
        self.items = first[self.owner] + self.rank              # item rows in the batch
        self.now = batch.event_time_ms[self.rows]
        self.values: dict[tuple[int, str], np.ndarray] = {}
        self.witness: dict[int, np.ndarray] = {}                # any/all: matching item per parcel, -1 none
        self.memo = memo if memo is not None else {}            # string results, shared between subsets

    def size(self, level: str) -> int:
        """Number of elements at a level."""
        return len(self.rows) if level == PARCEL else len(self.items)

    def value(self, node: ir.Node, level: str = PARCEL) -> np.ndarray:
        """The node's values at a level (strings as codes), evaluated once."""
        key = (id(node), level)
        out = self.values.get(key)
        if out is None:
            if level == ITEM and _is_parcel_level(node):
                out = self.value(node, PARCEL)[self.owner]
            else:
                with np.errstate(all="ignore"):
                    out = self._compute(node, level)
            self.values[key] = out
        return out

    def strings(self, node: ir.StrField) -> list[str]:
        """The decoded strings of a string field's vocabulary (codes index it)."""
        return self.batch.vocab[node.vocab].strings

    def _per_string(self, key, codes: np.ndarray, fn, dtype):
        """fn(code) for every element, computed once per distinct code (and remembered in `memo`)."""
        uniq, inverse = np.unique(codes, return_inverse=True)
        memo = self.memo
        out = []
        for c in uniq.tolist():
            k = (key, c)
            v = memo.get(k)
            if v is None:
                v = memo[k] = fn(c)
            out.append(v)
        inverse = inverse.reshape(-1)
        if dtype is object:
            return [out[j] for j in inverse.tolist()]
        return np.asarray(out, dtype=dtype)[inverse] if out else np.zeros(0, dtype=dtype)

    def _now(self, level: str) -> np.ndarray:
        return self.now if level == PARCEL else self.now[self.owner]

    def _compute(self, node: ir.Node, level: str) -> np.ndarray:
        b = self.batch
        if isinstance(node, ir.Const):
            dtype = np.bool_ if isinstance(node.value, bool) else np.float64
            return np.full(self.size(level), node.value, dtype=dtype)
        if isinstance(node, ir.NumField):
            return b.numbers[node.column][self.rows] if level == PARCEL else b.item_numbers[node.column][self.items]
        if isinstance(node, ir.StrField):
            return b.strings[node.column][self.rows] if level == PARCEL else b.item_strings[node.column][self.items]
        if isinstance(node, ir.Derived):
            return self.value(node.expr, level)
        if isinstance(node, ir.Unary):
            a = self.value(node.arg, level)
            return ~a if node.op == "not" else (-a if node.op == "neg" else np.abs(a))
        if isinstance(node, ir.Arith):
            return _ARITH[node.op](self.value(node.left, level), self.value(node.right, level))
        if isinstance(node, ir.Compare):
            return _COMPARE[node.op](self.value(node.left, level), self.value(node.right, level))
        if isinstance(node, ir.MinMax):
            acc = np.full(self.size(level), np.nan)
            for a in node.args:
                acc = _pick(acc, self.value(a, level), node.op)
            return acc
        if isinstance(node, ir.Logic):
            combine = np.logical_and if node.op == "and" else np.logical_or
            return combine.reduce([self.value(a, level) for a in node.args])
        if isinstance(node, ir.IfElse):
            return np.where(self.value(node.cond, level), self.value(node.then, level), self.value(node.other, level))
        if isinstance(node, ir.ItemCount):
            return self.counts.astype(np.float64)
        if isinstance(node, ir.Missing):
            a = self.value(node.arg, level)
            return a == 0 if isinstance(node.arg, ir.StrField) else np.isnan(a)
        if isinstance(node, ir.StrTest):
            return self._str_test(node, level)
        if isinstance(node, ir.StrNum):
            strings = self.strings(node.arg)
            return self._per_string((id(node.fn), id(strings)), self.value(node.arg, level),
                                    lambda c: string_number(node.fn, strings[c]), np.float64)
        if isinstance(node, ir.Band):
            return self._band(node, level)
        if isinstance(node, (ir.PairIn, ir.SameString)):
            return self._pair(node, level)
        if isinstance(node, ir.Quant):
            return self._quant(node)
        raise TypeError(f"cannot evaluate {type(node).__name__}")

    def _str_test(self, node: ir.StrTest, level: str) -> np.ndarray:
        # The kernel's own matchers (lookups.py evaluates the same ones per vocabulary string).
        strings, m = self.strings(node.arg), matcher(node.pred)
        codes = self.value(node.arg, level)
        if not node.pred.timed:
            return self._per_string(("match", id(node.pred), id(strings)), codes,
                                    lambda c: bool(m.matches(strings[c])), np.bool_)
        spans = self._per_string(("spans", id(node.pred), id(strings)), codes, lambda c: m.intervals(strings[c]), object)
        now = self._now(level).tolist()
        return np.fromiter((any(lo <= t < hi for lo, hi in s) for s, t in zip(spans, now)),
                           dtype=np.bool_, count=len(spans))

    def _band(self, node: ir.Band, level: str) -> np.ndarray:
        hs_strings = self.strings(node.hs)
        hs = self.value(node.hs, level).astype(np.int64)
        if node.origin is None:
            return self._per_string((id(node.table), node.which, id(hs_strings)), hs,
                                    lambda c: band_value(node.table, node.which, hs_strings[c], None), np.float64)
        origin_strings = self.strings(node.origin)
        origin = self.value(node.origin, level).astype(np.int64)
        key = (id(node.table), node.which, id(origin_strings))
        return self._per_string(key, (hs << 32) | origin, lambda c: band_value(
            node.table, node.which, hs_strings[c >> 32], origin_strings[c & 0xFFFFFFFF]), np.float64)

    def _pair(self, node: ir.PairIn | ir.SameString, level: str) -> np.ndarray:
        sa, sb = self.strings(node.a), self.strings(node.b)
        a = self.value(node.a, level).astype(np.int64)
        b = self.value(node.b, level).astype(np.int64)
        if isinstance(node, ir.SameString):
            same = (a == b) if sa is sb else self._per_string(
                ("same", id(sa), id(sb)), (a << 32) | b, lambda c: sa[c >> 32] == sb[c & 0xFFFFFFFF], np.bool_)
            return ~same if node.negate else same
        rows = node.table.rows

        def pair_in(c: int) -> bool:
            x, y = sa[c >> 32], sb[c & 0xFFFFFFFF]
            return any((ra == "*" or ra == x) and (rb == "*" or rb == y) for ra, rb in rows)

        return self._per_string((id(node.table), id(sa), id(sb)), (a << 32) | b, pair_in, np.bool_)

    def _quant(self, node: ir.Quant) -> np.ndarray:
        """Reduce the body over each parcel's items in item order, as the interpreter's loop does.

        The first VECTOR_RANKS items of every parcel are reduced with one numpy step per item
        position; the rest of a longer parcel with a plain loop (same arithmetic, same order), so a
        hostile parcel of thousands of items costs a loop over its items, not thousands of numpy calls.
        """
        kind, n = node.kind, len(self.rows)
        body = self.value(node.body, ITEM)
        acc = np.full(n, _QUANT_START[kind], dtype=np.bool_ if kind in ("any_item", "all_items") else np.float64)
        witness = np.full(n, -1, dtype=np.int64)
        for r in range(min(int(self.counts.max()) if n else 0, VECTOR_RANKS)):
            at = self.rank == r
            who, x = self.owner[at], body[at]
            if kind in ("any_item", "all_items"):
                decisive = (x if kind == "any_item" else ~x) & (witness[who] < 0)
                witness[who[decisive]] = r
                acc[who[decisive]] = kind == "any_item"
            elif kind == "count_items":
                acc[who] += x.astype(np.float64)
            elif kind == "sum_items":
                acc[who] += x
            else:
                acc[who] = _pick(acc[who], x, kind[:3])
        for p in np.flatnonzero(self.counts > VECTOR_RANKS).tolist():
            start = int(self.starts[p])
            rest = body[start + VECTOR_RANKS:start + int(self.counts[p])].tolist()
            acc[p], witness[p] = _reduce_rest(kind, acc[p].item(), int(witness[p]), rest)
        if kind in ("any_item", "all_items"):
            self.witness[id(node)] = witness
        return acc


VECTOR_RANKS = 32   # item positions reduced with numpy; items beyond it (rare) with a loop


def _reduce_rest(kind: str, acc, witness: int, rest: list) -> tuple:
    """Continue a quantifier's reduction over a parcel's items from position VECTOR_RANKS on."""
    if witness >= 0:
        return acc, witness           # any/all already decided by an earlier item
    for k, x in enumerate(rest, start=VECTOR_RANKS):
        if kind in ("any_item", "all_items"):
            if x if kind == "any_item" else not x:
                return kind == "any_item", k
        elif kind == "count_items":
            acc += 1.0 if x else 0.0
        elif kind == "sum_items":
            acc += x
        elif x == x and (acc != acc or (x < acc if kind == "min_item" else x > acc)):
            acc = x
    return acc, witness
