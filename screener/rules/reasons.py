"""Reasons worded for inspectors: one sentence per fired rule, one summary line per parcel.

The one formatting module for reasons: the worker fills each reason's `text` and a flagged
record's `summary` from it, `screener rules explain` prints it, and `screener tail` can print
`line` / `summary` of reasons read back from the wire. Values stay numbers in a reason's `values`;
only the text rounds them, with units and currency (`value_per_kg` is USD converted from the
parcel's currency: "USD 1.11/kg"), and names the item, the matched term or prefix and the threshold.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from screener.rules import ir

CURRENCY = "CUR"   # unit placeholder: the parcel's declared currency

# Units of fields and derived fields (docs/rules.md); a rule's expressions get theirs from these.
FIELD_UNITS = {
    "gross_weight_kg": "kg", "net_weight_kg": "kg", "weight_kg": "kg",
    "declared_value": CURRENCY, "freight": CURRENCY, "paid_amount": CURRENCY, "tax_withheld": CURRENCY,
    "items_value": CURRENCY, "unit_price": CURRENCY, "line_value": CURRENCY,
    "value_usd": "USD", "freight_usd": "USD", "paid_usd": "USD", "tax_usd": "USD", "items_value_usd": "USD",
    "unit_price_usd": "USD", "line_value_usd": "USD", "value_per_kg": "USD/kg", "fx_usd": "USD per unit",
    "item_count": "items",
}
FIELD_NAMES = {
    "gross_weight_kg": "gross weight", "net_weight_kg": "net weight", "weight_kg": "weight",
    "value_usd": "declared value", "freight_usd": "freight", "paid_usd": "paid amount", "tax_usd": "tax withheld",
    "items_value": "sum of item values", "items_value_usd": "sum of item values", "unit_price_usd": "unit price",
    "line_value_usd": "line value", "fx_usd": "exchange rate", "item_count": "number of items",
    "hs_code": "HS code", "item_origin_country": "item origin", "consignee_id": "consignee",
    "seller_id": "seller", "consignee_phone": "consignee phone",
}
_OP_WORDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least", "==": "equal to", "!=": "not equal to"}
_NOT_OP_WORDS = {"<": "not below", "<=": "above", ">": "not above", ">=": "below", "==": "not equal to",
                 "!=": "equal to"}
_QUANT_WORDS = {"min_item": "lowest {} of the items", "max_item": "highest {} of the items",
                "sum_items": "total {} of the items"}
_TABLE = re.compile(r'^table\("([^"]+)"(.*)\)$')
_FILTER = re.compile(r'(\w+)="([^"]*)"')
_WATCHLIST = re.compile(r"^watchlist\[(\w+)\]$")


@lru_cache(maxsize=4096)   # keyed by node identity: IR nodes live as long as their pack
def name(node: ir.Node) -> str:
    """What an inspector calls an operand ("value per kg", "lowest reference band minimum of the items")."""
    if isinstance(node, (ir.NumField, ir.Derived, ir.StrField)):
        return FIELD_NAMES.get(node.name, node.name.replace("_", " "))
    if isinstance(node, ir.Band):
        return f"reference band {'minimum' if node.which == 'min' else 'maximum'}"
    if isinstance(node, ir.Quant) and node.kind in _QUANT_WORDS:
        return _QUANT_WORDS[node.kind].format(name(node.body))
    if isinstance(node, ir.ItemCount):
        return "number of items"
    if isinstance(node, ir.Arith) and node.op in "*/" and isinstance(node.left, ir.Const) != isinstance(
            node.right, ir.Const):
        const, other = (node.left, node.right) if isinstance(node.left, ir.Const) else (node.right, node.left)
        factor = f"{const.value:g}"
        return f"{factor} × {name(other)}" if node.op == "*" else f"{name(other)} / {factor}"
    return node.label or type(node).__name__


@lru_cache(maxsize=4096)
def unit(node: ir.Node) -> str | None:
    """Unit of a numeric expression ("USD/kg", "kg", CURRENCY, ...), None when it has none we can name."""
    if isinstance(node, (ir.NumField, ir.Derived)):
        return FIELD_UNITS.get(node.name)
    if isinstance(node, ir.Band):
        return "USD/kg"
    if isinstance(node, ir.Quant):
        return "items" if node.kind == "count_items" else unit(node.body)
    if isinstance(node, ir.ItemCount):
        return "items"
    if isinstance(node, ir.StrNum):
        return {"length": "characters", "word_count": "words"}.get(node.fn.kind, "USD per unit")
    if isinstance(node, ir.Unary):
        return unit(node.arg)
    if isinstance(node, (ir.MinMax, ir.IfElse)):
        args = node.args if isinstance(node, ir.MinMax) else [node.then, node.other]
        return next((u for u in map(unit, args) if u), None)
    if isinstance(node, ir.Arith):
        left, right = unit(node.left), unit(node.right)
        if node.op in "+-":
            return left or right
        if node.op == "*":
            return right if isinstance(node.left, ir.Const) else left if isinstance(node.right, ir.Const) else None
        if isinstance(node.right, ir.Const):
            return left
        return "USD/kg" if (left, right) == ("USD", "kg") else None
    return None


def number(value, unit_: str | None = None, currency: str = "") -> str:
    """A value rounded for reading, with its unit: "USD 1.11/kg", "CNY 1,234.50", "0.214 kg", "3 items"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if math.isinf(value):
        return "infinite" if value > 0 else "minus infinite"
    if unit_ in ("USD", CURRENCY, "USD/kg"):
        amount = f"{value:,.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"
        code = (currency or "?") if unit_ == CURRENCY else "USD"
        return f"{code} {amount}/kg" if unit_ == "USD/kg" else f"{code} {amount}"
    if unit_ == "kg":
        return f"{value:,.3f}".rstrip("0").rstrip(".") + " kg"
    if value == int(value) and abs(value) < 1e15:
        text = f"{int(value):,}"
    else:
        text = f"{value:,.4g}"
    if unit_ == "USD per unit":
        return f"USD {text} per {currency or 'unit'}"
    return f"{text} {unit_}" if unit_ else text


def percent(contribution: float) -> str:
    """A rule's contribution to the score as points of a percentage ("+34%")."""
    if contribution <= 0:
        return "+0%"
    return "+<1%" if contribution < 0.005 else f"+{contribution:.0%}"


@lru_cache(maxsize=1024)
def list_name(source: str) -> str:
    """How a rule names a list, shortened for reading: table("restricted_hs", "hs_prefix", kind="prohibited")
    -> restricted_hs where kind=prohibited; watchlist[seller_id] -> the seller_id watchlist."""
    m = _TABLE.match(source)
    if m:
        filters = ", ".join(f"{k}={v}" for k, v in _FILTER.findall(m.group(2)))
        return f"{m.group(1)} where {filters}" if filters else m.group(1)
    m = _WATCHLIST.match(source)
    return f"the {m.group(1)} watchlist" if m else source


def _quoted(terms: list[str]) -> str:
    return " / ".join(f'"{t}"' for t in terms)


@lru_cache(maxsize=4096)
def _str_parts(node: ir.StrTest, want: bool) -> tuple[str, str, str]:
    """The fixed words of a string test: the field's name, the verb, the list's name."""
    what, kind, src = name(node.arg), node.pred.kind, list_name(node.pred.source)
    if kind == "in" and len(node.pred.entries) == 1 and node.pred.source == repr(node.pred.entries[0].term):
        return what, "literal", f'"{node.pred.entries[0].term}"'
    if not want:
        return what, {"in": "is not on", "prefix": "does not start with any of", "keyword": "contains no term of",
                      "only_terms": "has words outside"}[kind], src
    return what, kind, src


def _str_fact(node: ir.StrTest, s: str, matched: list[str], want: bool) -> str:
    what, verb, src = _str_parts(node, want)
    if verb == "literal":
        return f'{what} is "{s}"' if want else f'{what} "{s}" is not {src}'
    if verb == "in":
        return f'{what} "{s}" is on {src}'
    if verb == "prefix":
        return f'{what} "{s}" starts with {_quoted(matched)} ({src})'
    if verb == "keyword":
        return f'{what} "{s}" contains {_quoted(matched)} ({src})'
    if verb == "only_terms":
        return f'{what} "{s}" has only words of {src}'
    return f'{what} "{s}" {verb} {src}'


@lru_cache(maxsize=4096)
def _cmp_parts(node: ir.Compare, held: bool) -> tuple[str, str | None, str, str]:
    """The fixed words of a comparison: left operand's name, unit, the relation, the threshold's name."""
    words = (_OP_WORDS if held else _NOT_OP_WORDS)[node.op]
    right = "" if isinstance(node.right, ir.Const) else f" ({name(node.right)})"
    return name(node.left), unit(node.left) or unit(node.right), words, right


def fact_text(fact: tuple, currency: str) -> str:
    """One fact of an explanation walk (screener/rules/explain.py) as words."""
    kind, node = fact[0], fact[2]
    if kind == "cmp":
        left, u, words, right = _cmp_parts(node, fact[5])
        return f"{left} {number(fact[3], u, currency)} is {words} {number(fact[4], u, currency)}{right}"
    if kind == "str":
        return _str_fact(node, fact[3], fact[4], fact[5])
    if kind == "missing":
        return f"{name(node.arg)} is {'missing' if fact[3] else 'present'}"
    if kind == "pair":
        a, b, want = fact[3], fact[4], fact[5]
        return (f'{name(node.a)} "{a}" with {name(node.b)} "{b}" is {"" if want else "not "}on '
                f"{list_name(node.table.source)}")
    if kind == "same":
        a, b = fact[3], fact[4]
        return f'{name(node.a)} "{a}" {"equals" if a == b else "differs from"} {name(node.b)} "{b}"'
    return f"{node.label or name(node)} is {'true' if fact[3] else 'false'}"


def reason_text(description: str, facts: list[tuple], currency: str, n_items: int,
                lane_floor: str | None = None) -> str:
    """The sentence of one fired rule: description, then each fact (with its item), then the lane floor."""
    parts = []
    for fact in facts:
        text = fact_text(fact, currency)
        k = fact[1]
        parts.append(f"item {k + 1} of {n_items}: {text}" if k >= 0 else text)
    text = "; ".join(parts)
    if description:
        text = f"{description}: {text}" if text else description
    return f"{text} (lane at least {lane_floor})" if lane_floor else text


def random_text(rate: float, draw: float) -> str:
    """The sentence of a random pick."""
    return f"picked at random ({rate:.2%} of all parcels are, by hash of parcel_id; draw {draw:.4f})"


def _get(reason, key: str):
    return reason[key] if isinstance(reason, dict) else getattr(reason, key)


def line(reason) -> str:
    """One reason (a Reason or its wire dict) on one line: rule id, contribution, sentence."""
    rule_id, text = _get(reason, "rule_id"), _get(reason, "text")
    if rule_id == "random":
        return f"random: {text}"
    return f"{rule_id} {percent(_get(reason, 'contribution'))}: {text}"


def summary(lane: str, score: float, reasons) -> str:
    """A parcel's decision in one line for inspectors: lane, score and every reason (Reason or wire dicts)."""
    head = f"{lane.upper()} (score {score:.2f})"
    return f"{head}: " + " | ".join(map(line, reasons)) if reasons else head
