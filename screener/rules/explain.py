"""Explanations, built outside the kernel for the parcels that need them: why each fired rule fired.

A rule's reason lists its contribution to the score and the values that triggered it, e.g.
`value_per_kg=0.8 < min_item(band_min(hs_code, item_origin_country))=12.0`, the terms or prefixes
that matched and the item that decided a quantifier, and words it for inspectors (reasons.py).
One walk over the rule's IR explains all parcels the rule fired for at once, reading node values
from a source: in the worker, numpy columns of those parcels (columnar.py, ColumnSource); in
`rules explain` and the tests, the reference interpreter's trace of one parcel (TraceSource, the
oracle the property tests compare the columns with).
"""

from __future__ import annotations

import math

import numpy as np

from screener.rules import ir, reasons
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


class TraceSource:
    """Node values of one parcel from the reference interpreter's trace (the oracle's side)."""

    def __init__(self, trace: dict) -> None:
        self.trace = trace

    def vals(self, node: ir.Node, sel: list[int], rows: list[int] | None) -> list:
        """The node's traced value (None when it was not evaluated); inside a quantifier the trace
        already holds the deciding item's values."""
        return [self.trace.get(id(node))] * len(sel)

    def witness(self, node: ir.Quant, sel: list[int]) -> list[int]:
        """Index within the parcel of the item that decided an any/all quantifier, -1 for none."""
        return [self.trace.get(("witness", id(node)), -1)] * len(sel)

    def item_rows(self, sel: list[int], ws: list[int]) -> list[int]:
        """Rows of the deciding items (unused by a trace)."""
        return ws


class ColumnSource:
    """Node values of the parcels of a columnar evaluation (screener/rules/columnar.py), as Python lists."""

    def __init__(self, cols: Columns) -> None:
        self.cols = cols
        self._lists: dict = {}

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

    def witness(self, node: ir.Quant, sel: list[int]) -> list[int]:
        """Index within each parcel of the item that decided an any/all quantifier, -1 for none."""
        w = self.cols.witness.get(id(node))
        return [-1] * len(sel) if w is None else w[sel].tolist()

    def item_rows(self, sel: list[int], ws: list[int]) -> list[int]:
        """Rows (in the item arrays) of item ws[j] of parcel sel[j]."""
        starts = self.cols.starts
        return [int(starts[p]) + w for p, w in zip(sel, ws)]


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


def _fmt_show(value) -> tuple:
    """(fmt(value), how a `because` line shows it) for values other than finite floats."""
    f = fmt(value)
    if f is None:
        return None, "missing"
    if isinstance(f, str):
        return f, (f if value is not f else repr(f))
    return f, str(f)


class _Walk:
    """Why a rule's condition held, for parcels `0..n-1` of a value source, all at once.

    Each node is visited once for the set of parcels whose explanation passes through it (an `or`
    splits the set by the argument that decided it, `not` flips what is wanted, an any/all item
    quantifier moves to the item that decided it). Per parcel it records `values` (operand values,
    `matched` terms, the deciding `item`), `because` lines in condition syntax, and the inspector's
    wording of each fact (screener/rules/reasons.py). The worker reads values from numpy columns
    (ColumnSource); `rules explain` and the oracle from the interpreter's trace (TraceSource).
    """

    def __init__(self, source, n: int, now: list[int | None], currencies: list[str], n_items: list[int]) -> None:
        self.source, self.now, self.currencies, self.n_items = source, now, currencies, n_items
        self.values: list[dict] = [{} for _ in range(n)]
        self.lines: list[list[str]] = [[] for _ in range(n)]
        self.words: list[list[str]] = [[] for _ in range(n)]
        self._matched: dict = {}

    def _emit(self, sel: list[int], ks: list[int] | None, lines: list[str], words: list[str]) -> None:
        if ks is None:
            for p, line, text in zip(sel, lines, words):
                self.lines[p].append(line)
                self.words[p].append(text)
            return
        n_items = self.n_items
        for p, k, line, text in zip(sel, ks, lines, words):
            self.lines[p].append(f"item {k}: {line}")
            self.words[p].append(f"item {k + 1} of {n_items[p]}: {text}")

    def _operand(self, node: ir.Node, sel: list[int], got: list) -> list[str]:
        if isinstance(node, ir.Const):
            return [_show(node.value)] * len(sel)
        label = node.label or type(node).__name__
        values, out = self.values, []
        seen: dict = {}     # values repeat (counts, a first-seen 0): each finite float is formatted once per call
        for p, v in zip(sel, got):
            if v.__class__ is float and v - v == 0.0:     # finite: the common case, inline
                key = v if v else repr(v)                  # 0.0 == -0.0, yet they are shown apart
                done = seen.get(key)
                if done is None:
                    f = float(f"{v:.6g}")
                    done = seen[key] = (f, f"{label}={f!r}")
                f, text = done
            else:
                f, shown = _fmt_show(v)
                text = f"{label}={shown}"
            values[p][label] = f
            out.append(text)
        return out

    def walk(self, node: ir.Node, sel: list[int], rows: list[int] | None, ks: list[int] | None,
             want: bool) -> None:
        """Record why `node` evaluated to `want` for each parcel of `sel` (at item ks[j] inside a quantifier)."""
        if not sel:
            return
        values, vals = self.values, self.source.vals
        if isinstance(node, ir.Logic):
            if (node.op == "and") == want:           # all arguments had to be `want`
                for a in node.args:
                    self.walk(a, sel, rows, ks, want)
                return
            todo = list(range(len(sel)))
            for a in node.args:                      # per parcel, the first argument that was `want` decided
                if not todo:
                    break
                got = vals(a, [sel[j] for j in todo], None if rows is None else [rows[j] for j in todo])
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
            left, right = vals(node.left, sel, rows), vals(node.right, sel, rows)
            held = [bool(g) for g in vals(node, sel, rows)]
            ls, rs = self._operand(node.left, sel, left), self._operand(node.right, sel, right)
            op = node.op
            lines = [f"{a} {op} {b}" if g else f"not ({a} {op} {b})" for a, b, g in zip(ls, rs, held)]
            currencies = self.currencies
            words = reasons.compare_texts(node, left, right, held, [currencies[p] for p in sel])
            self._emit(sel, ks, lines, words)
            return
        if isinstance(node, ir.StrTest):
            strs = vals(node.arg, sel, rows)
            label, pred = node.arg.label, node.pred
            verb = _KIND_TEXT[pred.kind]
            if pred.kind == "in" and len(pred.entries) == 1 and pred.source == repr(pred.entries[0].term):
                verb = "=="   # written as field == "literal"
            if not want:
                verb = "!=" if verb == "==" else "not " + verb
            found: list[list[str]] = []
            timed, cache, now = pred.timed, self._matched, self.now
            for p, sv in zip(sel, strs):
                values[p][label] = sv
                matched: list[str] = []
                if want:
                    key = (id(pred), sv, now[p] if timed else 0)
                    matched = cache.get(key)
                    if matched is None:
                        matched = cache[key] = matched_terms(pred, sv, now[p])
                    seen = values[p].setdefault("matched", [])
                    seen += [t for t in matched if t not in seen]
                found.append(matched)
            self._emit(sel, ks, [f"{label}={sv!r} {verb} {pred.source}" for sv in strs],
                       reasons.string_texts(node, strs, found, want))
            return
        if isinstance(node, ir.Missing):
            label = node.arg.label
            for p, v in zip(sel, vals(node.arg, sel, rows)):
                values[p][label] = fmt(v)
            n = len(sel)
            self._emit(sel, ks, [f"{label} is {'missing' if want else 'present'}"] * n,
                       [reasons.missing_text(node, want)] * n)
            return
        if isinstance(node, (ir.PairIn, ir.SameString)):
            av, bv = vals(node.a, sel, rows), vals(node.b, sel, rows)
            la, lb = node.a.label, node.b.label
            for p, a, b in zip(sel, av, bv):
                values[p][la], values[p][lb] = a, b
            if isinstance(node, ir.PairIn):
                verb = "in" if want else "not in"
                lines = [f"({la}, {lb})=({a!r}, {b!r}) {verb} {node.table.source}" for a, b in zip(av, bv)]
            else:
                lines = [f"{la}={a!r} {'==' if (a == b) else '!='} {lb}={b!r}" for a, b in zip(av, bv)]
            self._emit(sel, ks, lines, reasons.pair_texts(node, av, bv, want))
            return
        if isinstance(node, ir.Quant) and node.type == ir.BOOL:
            ws = self.source.witness(node, sel)
            inside = [j for j, w in enumerate(ws) if w >= 0]
            isel = [sel[j] for j in inside]
            iws = [ws[j] for j in inside]
            before = [len(self.lines[p]) for p in isel]
            for p, w in zip(isel, iws):
                values[p].setdefault("item", w)
            self.walk(node.body, isel, self.source.item_rows(isel, iws), iws, want)
            said = {p for p, n in zip(isel, before) if len(self.lines[p]) > n}
            rest = [j for j, w in enumerate(ws) if w < 0 or sel[j] not in said]
            self._emit([sel[j] for j in rest], None if ks is None else [ks[j] for j in rest],
                       [f"{node.label} is {want}"] * len(rest), [reasons.bool_text(node, want)] * len(rest))
            return
        if isinstance(node, ir.Const):
            n = len(sel)
            self._emit(sel, ks, ["always" if node.value else "never"] * n, [reasons.bool_text(node, node.value)] * n)
            return
        got = vals(node, sel, rows)
        self._emit(sel, ks, [f"{node.label} is {g}" for g in got], [reasons.bool_text(node, g) for g in got])


def explain_rule(rule: Rule, trace: dict, fired: bool, currency: str = "", n_items: int = 0) -> tuple[dict, str]:
    """A reason's `values` (operand values, `matched` terms, deciding `item`, `because` lines) and its
    worded facts, from the interpreter's trace of one parcel."""
    walk = _Walk(TraceSource(trace), 1, [trace.get("now")], [currency], [n_items])
    walk.walk(rule.ir, [0], None, None, fired)
    walk.values[0]["because"] = walk.lines[0]
    return walk.values[0], "; ".join(walk.words[0])


def rule_values(rule: Rule, trace: dict, fired: bool) -> dict:
    """The `values` of a reason from the interpreter's trace of one parcel (`rules explain`, the oracle)."""
    return explain_rule(rule, trace, fired)[0]


def explain_rule_many(rule: Rule, cols: Columns, now: list[int], currencies: list[str],
                      n_items: list[int]) -> tuple[list[dict], list[str]]:
    """explain_rule for every parcel of a Columns evaluation of a rule that fired for all of them."""
    cols.value(rule.ir)
    walk = _Walk(ColumnSource(cols), len(cols.rows), now, currencies, n_items)
    walk.walk(rule.ir, list(range(len(cols.rows))), None, None, True)
    for values, lines in zip(walk.values, walk.lines):
        values["because"] = lines
    return walk.values, ["; ".join(w) for w in walk.words]
