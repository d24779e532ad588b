"""Explanations, built outside the kernel for the parcels that need them: why each fired rule fired.

A rule's reason lists its contribution to the score and the values that triggered it, e.g.
`value_per_kg=0.8 < min_item(band_min(hs_code, item_origin_country))=12.0`. Values come from
the reference interpreter's trace of that one parcel, so the kernel stays free of strings.
"""

from __future__ import annotations

import math

from screener.rules import ir
from screener.rules.pack import Rule


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


def _operand(node: ir.Node, trace: dict, values: dict) -> str:
    value = trace.get(id(node))
    if isinstance(node, ir.Const):
        return _show(node.value)
    label = node.label or type(node).__name__
    values[label] = fmt(value)
    return f"{label}={_show(value)}"


_KIND_TEXT = {"in": "in", "prefix": "starts with one of", "keyword": "contains a term of",
              "only_terms": "has only words of"}


def because(node: ir.Node, trace: dict, values: dict, *, want: bool = True) -> list[str]:
    """Readable facts that made `node` evaluate to `want`, recording operand values in `values`."""
    got = trace.get(id(node))
    if isinstance(node, ir.Logic):
        out: list[str] = []
        if (node.op == "and") == want:
            for a in node.args:            # all had to be `want`
                out += because(a, trace, values, want=want)
        else:
            for a in node.args:            # the first one that was `want` decided it
                if trace.get(id(a)) == want:
                    return because(a, trace, values, want=want)
        return out
    if isinstance(node, ir.Unary) and node.op == "not":
        return because(node.arg, trace, values, want=not want)
    if isinstance(node, ir.Compare):
        text = f"{_operand(node.left, trace, values)} {node.op} {_operand(node.right, trace, values)}"
        return [text if got else f"not ({text})"]
    if isinstance(node, ir.StrTest):
        s = trace.get(id(node.arg))
        values[node.arg.label] = s
        verb = _KIND_TEXT[node.pred.kind]
        if node.pred.kind == "in" and len(node.pred.entries) == 1 and node.pred.source == repr(node.pred.entries[0].term):
            verb = "=="   # written as field == "literal"
        if not want:
            verb = "!=" if verb == "==" else "not " + verb
        return [f"{node.arg.label}={s!r} {verb} {node.pred.source}"]
    if isinstance(node, ir.Missing):
        values[node.arg.label] = fmt(trace.get(id(node.arg)))
        return [f"{node.arg.label} is {'missing' if want else 'present'}"]
    if isinstance(node, ir.PairIn):
        a, b = trace.get(id(node.a)), trace.get(id(node.b))
        values[node.a.label], values[node.b.label] = a, b
        return [f"({node.a.label}, {node.b.label})=({a!r}, {b!r}) {'in' if want else 'not in'} {node.table.source}"]
    if isinstance(node, ir.SameString):
        a, b = trace.get(id(node.a)), trace.get(id(node.b))
        values[node.a.label], values[node.b.label] = a, b
        return [f"{node.a.label}={a!r} {'==' if (a == b) else '!='} {node.b.label}={b!r}"]
    if isinstance(node, ir.Quant) and node.type == ir.BOOL:
        k = trace.get(("witness", id(node)), -1)
        inner = because(node.body, trace, values, want=want) if k >= 0 else []
        return [f"item {k}: {t}" for t in inner] if inner else [f"{node.label} is {want}"]
    if isinstance(node, ir.Const):
        return ["always" if node.value else "never"]
    return [f"{node.label} is {got}"]


def rule_values(rule: Rule, trace: dict, fired: bool) -> dict:
    """The `values` of a reason: triggering operand values plus readable `because` lines."""
    values: dict = {}
    lines = because(rule.ir, trace, values, want=fired)
    values["because"] = lines
    return values
