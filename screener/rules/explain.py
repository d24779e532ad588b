"""Explanations, built outside the kernel for the parcels that need them: why each fired rule fired.

A rule's reason lists its contribution to the score and the values that triggered it, e.g.
`value_per_kg=0.8 < min_item(band_min(hs_code, item_origin_country))=12.0`, the terms or prefixes
that matched and the item that decided a quantifier. One walk over the rule's IR reads node values
from a view: in the worker, columnar numpy values of all explained parcels (columnar.py); in
`rules explain` and the tests, the reference interpreter's trace of one parcel (the oracle).
"""

from __future__ import annotations

import math

import numpy as np

from screener.rules import ir
from screener.rules.columnar import ITEM, PARCEL, Columns
from screener.rules.pack import Rule
from screener.rules.predicates import matcher, words


def noisy_or_contributions(weights: list[float]) -> list[float]:
    """Each fired rule's share of the noisy-or score 1 - prod(1 - w); shares sum to the score.

    Shares are proportional to -log(1 - w), the rule's term in the log of the product, so they
    do not depend on rule order. Rules of weight 1 (score 1 on their own) share the score equally.
    """
    if not weights:
        return []
    certain = [w >= 1.0 for w in weights]
    if any(certain):
        k = sum(certain)
        return [1.0 / k if c else 0.0 for c in certain]
    logs = [-math.log1p(-w) for w in weights]
    total = sum(logs)
    keep = 1.0
    for w in weights:
        keep *= 1.0 - w
    score = 1.0 - keep
    return [score * lg / total if total > 0 else 0.0 for lg in logs]


def noisy_or_shares(weights: list[float], fired: np.ndarray) -> np.ndarray:
    """noisy_or_contributions for many parcels at once: fired is bool [rules, k], the result float [rules, k].

    Sums and products run in rule order, as in noisy_or_contributions, so the shares agree bit for bit.
    """
    k = fired.shape[1]
    certain = np.zeros(k)
    total = np.zeros(k)
    keep = np.ones(k)
    logs = [-math.log1p(-w) if w < 1.0 else math.inf for w in weights]
    for r, w in enumerate(weights):
        if w >= 1.0:
            certain += fired[r]
        else:
            total = np.where(fired[r], total + logs[r], total)
            keep = np.where(fired[r], keep * (1.0 - w), keep)
    score = 1.0 - keep
    out = np.zeros(fired.shape)
    with np.errstate(all="ignore"):
        for r, w in enumerate(weights):
            if w >= 1.0:
                share = np.where(certain > 0, 1.0 / certain, 0.0)
            else:
                share = np.where((certain > 0) | ~(total > 0), 0.0, score * logs[r] / total)
            out[r] = np.where(fired[r], share, 0.0)
    return out


def fmt(value):
    """JSON-friendly, readable form of an evaluated value."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(f"{value:.6g}")
    return value


def _show(value) -> str:
    v = fmt(value)
    if v is None:
        return "missing"
    if isinstance(v, str) and value is not v:
        return v
    return repr(v) if isinstance(v, str) else str(v)


class TraceView:
    """Node values of one parcel from the reference interpreter's trace (the oracle's side)."""

    __slots__ = ("now", "trace")

    def __init__(self, trace: dict) -> None:
        self.trace = trace
        self.now = trace.get("now")

    def get(self, node: ir.Node):
        """The node's traced value (None when it was not evaluated)."""
        return self.trace.get(id(node))

    def witness(self, node: ir.Quant) -> int:
        """Index within the parcel of the item that decided an any/all quantifier, -1 for none."""
        return self.trace.get(("witness", id(node)), -1)

    def at_item(self, k: int) -> TraceView:
        """The view inside a quantifier at item k (the trace already holds the deciding item's values)."""
        return self


def _operand(node: ir.Node, value, values: dict) -> str:
    if isinstance(node, ir.Const):
        return _show(node.value)
    label = node.label or type(node).__name__
    values[label] = fmt(value)
    return f"{label}={_show(value)}"


_KIND_TEXT = {"in": "in", "prefix": "starts with one of", "keyword": "contains a term of",
              "only_terms": "has only words of"}


def matched_terms(pred: ir.StrPred, s: str, now: int | None) -> list[str]:
    """Terms of a predicate the string matches (valid at `now` when given), by the kernel's own matcher."""
    out: list[str] = []
    entries = matcher(pred).matches(s)
    if pred.kind == "only_terms":   # every term is "matched": name those whose words the string uses
        used = set(words(s))
        entries = [e for e in entries if used & set(words(e.term))]
    for e in entries:
        if (now is None or e.valid_from <= now < e.valid_until) and e.term not in out:
            out.append(e.term)
    return out


class _Walk:
    """One walk over a rule's IR for one parcel: readable `because` lines, operand values, and facts.

    A fact is a tuple (kind, item, node, ...) that screener/rules/reasons.py turns into text:
    ("cmp", k, node, left, right, held), ("str", k, node, s, matched, want), ("missing", k, node, want),
    ("pair", k, node, a, b, want), ("same", k, node, a, b), ("bool", k, node, value); k is the index of
    the item inside a quantifier, -1 at parcel level.
    """

    __slots__ = ("facts", "values")

    def __init__(self) -> None:
        self.values: dict = {}
        self.facts: list[tuple] = []

    def because(self, node: ir.Node, view, want: bool, k: int = -1) -> list[str]:
        """Readable facts that made `node` evaluate to `want`, recording operand values."""
        values = self.values
        if isinstance(node, ir.Logic):
            out: list[str] = []
            if (node.op == "and") == want:
                for a in node.args:            # all had to be `want`
                    out += self.because(a, view, want, k)
            else:
                for a in node.args:            # the first one that was `want` decided it
                    if view.get(a) == want:
                        return self.because(a, view, want, k)
            return out
        if isinstance(node, ir.Unary) and node.op == "not":
            return self.because(node.arg, view, not want, k)
        got = view.get(node)
        if isinstance(node, ir.Compare):
            left, right = view.get(node.left), view.get(node.right)
            text = f"{_operand(node.left, left, values)} {node.op} {_operand(node.right, right, values)}"
            self.facts.append(("cmp", k, node, left, right, bool(got)))
            return [text if got else f"not ({text})"]
        if isinstance(node, ir.StrTest):
            s = view.get(node.arg)
            values[node.arg.label] = s
            verb = _KIND_TEXT[node.pred.kind]
            if node.pred.kind == "in" and len(node.pred.entries) == 1 and node.pred.source == repr(
                    node.pred.entries[0].term):
                verb = "=="   # written as field == "literal"
            matched: list[str] = []
            if want:
                matched = matched_terms(node.pred, s, view.now)
                seen = values.setdefault("matched", [])
                seen += [t for t in matched if t not in seen]
            else:
                verb = "!=" if verb == "==" else "not " + verb
            self.facts.append(("str", k, node, s, matched, want))
            return [f"{node.arg.label}={s!r} {verb} {node.pred.source}"]
        if isinstance(node, ir.Missing):
            values[node.arg.label] = fmt(view.get(node.arg))
            self.facts.append(("missing", k, node, want))
            return [f"{node.arg.label} is {'missing' if want else 'present'}"]
        if isinstance(node, ir.PairIn):
            a, b = view.get(node.a), view.get(node.b)
            values[node.a.label], values[node.b.label] = a, b
            self.facts.append(("pair", k, node, a, b, want))
            return [f"({node.a.label}, {node.b.label})=({a!r}, {b!r}) {'in' if want else 'not in'} "
                    f"{node.table.source}"]
        if isinstance(node, ir.SameString):
            a, b = view.get(node.a), view.get(node.b)
            values[node.a.label], values[node.b.label] = a, b
            self.facts.append(("same", k, node, a, b))
            return [f"{node.a.label}={a!r} {'==' if (a == b) else '!='} {node.b.label}={b!r}"]
        if isinstance(node, ir.Quant) and node.type == ir.BOOL:
            w = view.witness(node)
            if w >= 0:
                values.setdefault("item", w)
                inner = self.because(node.body, view.at_item(w), want, w)
                if inner:
                    return [f"item {w}: {t}" for t in inner]
            self.facts.append(("bool", k, node, want))
            return [f"{node.label} is {want}"]
        if isinstance(node, ir.Const):
            self.facts.append(("bool", k, node, bool(node.value)))
            return ["always" if node.value else "never"]
        self.facts.append(("bool", k, node, got))
        return [f"{node.label} is {got}"]


def explain_rule(rule: Rule, view, fired: bool) -> tuple[dict, list[tuple]]:
    """A reason's `values` (operand values, `matched` terms, witness `item`, `because` lines) and its facts."""
    walk = _Walk()
    walk.values["because"] = walk.because(rule.ir, view, fired)
    return walk.values, walk.facts


def rule_values(rule: Rule, trace: dict, fired: bool) -> dict:
    """The `values` of a reason from the interpreter's trace of one parcel (`rules explain`, the oracle)."""
    return explain_rule(rule, TraceView(trace), fired)[0]


def _fmt_show(value) -> tuple:
    """(fmt(value), how a `because` line shows it), as _operand does for one value."""
    f = fmt(value)
    if f is None:
        return None, "missing"
    if isinstance(f, str):
        return f, (f if value is not f else repr(f))
    return f, str(f)


class _ManyWalk:
    """The walk of _Walk for all parcels of a Columns evaluation at once: same values, lines and facts.

    Each node is visited once for the set of parcels whose explanation passes through it (an `or`
    splits the set by the argument that decided it), reading values from lists made once per node;
    only the per-parcel records (dict entries, lines, fact tuples) are built element by element.
    """

    def __init__(self, cols: Columns, now: list[int]) -> None:
        n = len(cols.rows)
        self.cols, self.now = cols, now
        self.values: list[dict] = [{} for _ in range(n)]
        self.lines: list[list[str]] = [[] for _ in range(n)]
        self.facts: list[list[tuple]] = [[] for _ in range(n)]
        self._lists: dict = {}
        self._matched: dict = {}

    def _list(self, node: ir.Node, level: str):
        key = (id(node), level)
        out = self._lists.get(key)
        if out is None:
            arr = self.cols.values.get(key)
            if arr is None:
                return None
            if isinstance(node, ir.StrField):
                strings = self.cols.strings(node)
                out = [strings[c] for c in arr.tolist()]
            else:
                out = arr.tolist()
            self._lists[key] = out
        return out

    def vals(self, node: ir.Node, sel: list[int], rows: list[int] | None) -> list:
        """The node's values for parcels `sel` (at item `rows` inside a quantifier)."""
        if rows is not None:
            lst = self._list(node, ITEM)
            if lst is not None:
                return [lst[r] for r in rows]
        lst = self._list(node, PARCEL)
        return [None] * len(sel) if lst is None else [lst[p] for p in sel]

    def _emit(self, sel: list[int], ks: list[int] | None, texts: list[str]) -> None:
        lines = self.lines
        if ks is None:
            for p, t in zip(sel, texts):
                lines[p].append(t)
        else:
            for p, k, t in zip(sel, ks, texts):
                lines[p].append(f"item {k}: {t}")

    def _operand(self, node: ir.Node, sel: list[int], got: list) -> list[str]:
        if isinstance(node, ir.Const):
            return [_show(node.value)] * len(sel)
        label = node.label or type(node).__name__
        values, out = self.values, []
        for p, v in zip(sel, got):
            f, shown = _fmt_show(v)
            values[p][label] = f
            out.append(f"{label}={shown}")
        return out

    def walk(self, node: ir.Node, sel: list[int], rows: list[int] | None, ks: list[int] | None,
             want: bool) -> None:
        """Record why `node` evaluated to `want` for each parcel of `sel`."""
        if not sel:
            return
        values, facts = self.values, self.facts
        nk = [-1] * len(sel) if ks is None else ks
        if isinstance(node, ir.Logic):
            if (node.op == "and") == want:
                for a in node.args:
                    self.walk(a, sel, rows, ks, want)
                return
            todo = list(range(len(sel)))
            for a in node.args:            # each parcel: the first argument that was `want`
                if not todo:
                    break
                got = self.vals(a, [sel[j] for j in todo], None if rows is None else [rows[j] for j in todo])
                hit = [j for j, v in zip(todo, got) if v == want]
                if hit:
                    self.walk(a, [sel[j] for j in hit], None if rows is None else [rows[j] for j in hit],
                              None if ks is None else [ks[j] for j in hit], want)
                    taken = set(hit)
                    todo = [j for j in todo if j not in taken]
            return
        if isinstance(node, ir.Unary) and node.op == "not":
            self.walk(node.arg, sel, rows, ks, not want)
            return
        if isinstance(node, ir.Compare):
            left, right = self.vals(node.left, sel, rows), self.vals(node.right, sel, rows)
            got = self.vals(node, sel, rows)
            ls, rs = self._operand(node.left, sel, left), self._operand(node.right, sel, right)
            texts = []
            for p, k, lv, rv, g, a, b in zip(sel, nk, left, right, got, ls, rs):
                facts[p].append(("cmp", k, node, lv, rv, bool(g)))
                texts.append(f"{a} {node.op} {b}" if g else f"not ({a} {node.op} {b})")
            self._emit(sel, ks, texts)
            return
        if isinstance(node, ir.StrTest):
            strs = self.vals(node.arg, sel, rows)
            label, pred = node.arg.label, node.pred
            verb = _KIND_TEXT[pred.kind]
            if pred.kind == "in" and len(pred.entries) == 1 and pred.source == repr(pred.entries[0].term):
                verb = "=="
            if not want:
                verb = "!=" if verb == "==" else "not " + verb
            texts = []
            timed, cache = pred.timed, self._matched
            for p, k, sv in zip(sel, nk, strs):
                values[p][label] = sv
                matched: list[str] = []
                if want:
                    key = (id(pred), sv, self.now[p] if timed else 0)
                    matched = cache.get(key)
                    if matched is None:
                        matched = cache[key] = matched_terms(pred, sv, self.now[p])
                    seen = values[p].setdefault("matched", [])
                    seen += [t for t in matched if t not in seen]
                facts[p].append(("str", k, node, sv, matched, want))
                texts.append(f"{label}={sv!r} {verb} {pred.source}")
            self._emit(sel, ks, texts)
            return
        if isinstance(node, ir.Missing):
            got = self.vals(node.arg, sel, rows)
            label = node.arg.label
            for p, k, v in zip(sel, nk, got):
                values[p][label] = fmt(v)
                facts[p].append(("missing", k, node, want))
            self._emit(sel, ks, [f"{label} is {'missing' if want else 'present'}"] * len(sel))
            return
        if isinstance(node, (ir.PairIn, ir.SameString)):
            av, bv = self.vals(node.a, sel, rows), self.vals(node.b, sel, rows)
            la, lb = node.a.label, node.b.label
            texts = []
            for p, k, a, b in zip(sel, nk, av, bv):
                values[p][la], values[p][lb] = a, b
                if isinstance(node, ir.PairIn):
                    facts[p].append(("pair", k, node, a, b, want))
                    texts.append(f"({la}, {lb})=({a!r}, {b!r}) {'in' if want else 'not in'} {node.table.source}")
                else:
                    facts[p].append(("same", k, node, a, b))
                    texts.append(f"{la}={a!r} {'==' if (a == b) else '!='} {lb}={b!r}")
            self._emit(sel, ks, texts)
            return
        if isinstance(node, ir.Quant) and node.type == ir.BOOL:
            witness = self.cols.witness.get(id(node))
            ws = [-1] * len(sel) if witness is None else witness[sel].tolist()
            inside = [j for j, w in enumerate(ws) if w >= 0]
            starts = self.cols.starts
            isel = [sel[j] for j in inside]
            before = [len(self.lines[p]) for p in isel]
            for p, j in zip(isel, inside):
                values[p].setdefault("item", ws[j])
            self.walk(node.body, isel, [int(starts[p]) + ws[j] for p, j in zip(isel, inside)],
                      [ws[j] for j in inside], want)
            empty = set(p for p, n in zip(isel, before) if len(self.lines[p]) == n)
            rest = [j for j, w in enumerate(ws) if w < 0 or sel[j] in empty]
            for j in rest:
                facts[sel[j]].append(("bool", nk[j], node, want))
            self._emit([sel[j] for j in rest], None if ks is None else [ks[j] for j in rest],
                       [f"{node.label} is {want}"] * len(rest))
            return
        if isinstance(node, ir.Const):
            for p, k in zip(sel, nk):
                facts[p].append(("bool", k, node, bool(node.value)))
            self._emit(sel, ks, ["always" if node.value else "never"] * len(sel))
            return
        got = self.vals(node, sel, rows)
        for p, k, g in zip(sel, nk, got):
            facts[p].append(("bool", k, node, g))
        self._emit(sel, ks, [f"{node.label} is {g}" for g in got])


def explain_rule_many(rule: Rule, cols: Columns, now: list[int]) -> tuple[list[dict], list[list[tuple]]]:
    """explain_rule(rule, view, True) for every parcel of a Columns evaluation of the rule (it fired for all)."""
    cols.value(rule.ir)
    walk = _ManyWalk(cols, now)
    walk.walk(rule.ir, list(range(len(cols.rows))), None, None, True)
    for values, lines in zip(walk.values, walk.lines):
        values["because"] = lines
    return walk.values, walk.facts
