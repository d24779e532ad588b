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


class ColumnView:
    """Node values of parcel p of a columnar evaluation (screener/rules/columnar.py), at one item or none."""

    __slots__ = ("cols", "now", "p", "row")

    def __init__(self, cols: Columns, p: int, now: int, row: int = -1) -> None:
        self.cols, self.p, self.now, self.row = cols, p, now, row

    def get(self, node: ir.Node):
        """The node's value for this parcel (or item) as a Python value; strings decoded."""
        cols = self.cols
        at, arr = self.row, None
        if at >= 0:
            arr = cols.values.get((id(node), ITEM))
        if arr is None:
            at, arr = self.p, cols.values.get((id(node), PARCEL))
            if arr is None:
                return None
        if isinstance(node, ir.StrField):
            return cols.strings(node)[int(arr[at])]
        return arr[at].item()

    def witness(self, node: ir.Quant) -> int:
        """Index within the parcel of the item that decided an any/all quantifier, -1 for none."""
        w = self.cols.witness.get(id(node))
        return -1 if w is None else int(w[self.p])

    def at_item(self, k: int) -> ColumnView:
        """The view of item k of this parcel."""
        return ColumnView(self.cols, self.p, self.now, int(self.cols.starts[self.p]) + k)


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
