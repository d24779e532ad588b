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

import numpy as np

from screener.rules import ir

CURRENCY = "CUR"   # unit placeholder: the parcel's declared currency

# Units of fields and derived fields (docs/rules.md); a rule's expressions get theirs from these.
FIELD_UNITS = {
    "gross_weight_kg": "kg", "net_weight_kg": "kg", "weight_kg": "kg",
    "declared_value": CURRENCY, "freight": CURRENCY, "paid_amount": CURRENCY, "tax_withheld": CURRENCY,
    "items_value": CURRENCY, "unit_price": CURRENCY, "line_value": CURRENCY,
    "value_usd": "USD", "freight_usd": "USD", "paid_usd": "USD", "tax_usd": "USD", "items_value_usd": "USD",
    "unit_price_usd": "USD", "line_value_usd": "USD", "value_per_kg": "USD/kg", "fx_usd": "USD per unit",
    "consignee_24h_value_usd": "USD", "consignee_year_value_usd": "USD", "value_cny": "CNY",
    "consignee_24h_value_cny": "CNY", "consignee_year_value_cny": "CNY", "consignee_days_known": "days",
    "consignee_24h_count": "parcels", "consignee_parcels_before": "parcels",
    "consignee_inspections": "outcomes", "seller_inspections": "outcomes",
    **{f"{k}_illicit_rate": "share" for k in ("consignee", "seller", "origin", "hs6", "origin_hs6")},
}
FIELD_NAMES = {
    "gross_weight_kg": "gross weight", "net_weight_kg": "net weight", "weight_kg": "weight",
    "value_usd": "declared value", "freight_usd": "freight", "paid_usd": "paid amount", "tax_usd": "tax withheld",
    "items_value": "sum of item values", "items_value_usd": "sum of item values", "unit_price_usd": "unit price",
    "line_value_usd": "line value", "fx_usd": "exchange rate", "item_count": "number of items",
    "hs_code": "HS code", "item_origin_country": "item origin", "consignee_id": "consignee",
    "seller_id": "seller", "consignee_phone": "consignee phone",
    "value_cny": "declared value", "consignee_24h_count": "consignee's parcels in 24 h",
    "consignee_24h_value_usd": "consignee's 24 h total", "consignee_24h_value_cny": "consignee's 24 h total",
    "consignee_year_value_usd": "consignee's total this year", "consignee_year_value_cny": "consignee's total this year",
    "consignee_parcels_before": "consignee's earlier parcels", "consignee_days_known": "days the consignee is known",
    "consignee_illicit_rate": "consignee's past illicit rate", "consignee_inspections": "consignee's inspections",
    "seller_illicit_rate": "seller's past illicit rate", "seller_inspections": "seller's inspections",
    "origin_illicit_rate": "origin's past illicit rate", "hs6_illicit_rate": "HS6 past illicit rate",
    "origin_hs6_illicit_rate": "origin and HS6 past illicit rate",
}
_OP_WORDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least", "==": "equal to", "!=": "not equal to"}
_NOT_OP_WORDS = {"<": "not below", "<=": "above", ">": "not above", ">=": "below", "==": "not equal to",
                 "!=": "equal to"}
_QUANT_WORDS = {"min_item": "lowest {} of the items", "max_item": "highest {} of the items",
                "sum_items": "total {} of the items"}
_TABLE = re.compile(r"""^table\((["'])([^"']+)\1(.*)\)$""")   # the rule's own quoting: " or '
_FILTER = re.compile(r"""(\w+)=(["'])([^"']*)\2""")
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
    if isinstance(node, ir.Unary) and node.op == "abs" and isinstance(node.arg, ir.Arith) and node.arg.op == "-":
        return f"difference between {name(node.arg.left)} and {name(node.arg.right)}"
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
        return None if node.kind == "count_items" else unit(node.body)   # counts: the name says what
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
    """A value rounded for reading, with its unit: "USD 1.11/kg", "CNY 1,234.50", "0.214 kg", "3 words"."""
    if value.__class__ is not float or value - value != 0.0:     # not a finite float: the rare case
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "missing"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        if math.isinf(value):
            return "infinite" if value > 0 else "minus infinite"
    if unit_ == "USD/kg" and abs(value) >= 0.01:
        return f"USD {value:,.2f}/kg"
    if unit_ in ("USD", "CNY", CURRENCY, "USD/kg"):
        amount = f"{value:,.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"
        code = (currency or "?") if unit_ == CURRENCY else "CNY" if unit_ == "CNY" else "USD"
        return f"{code} {amount}/kg" if unit_ == "USD/kg" else f"{code} {amount}"
    if unit_ == "share":
        return f"{value:.1%}"
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
        filters = ", ".join(f"{k}={v}" for k, _, v in _FILTER.findall(m.group(3)))
        return f"{m.group(2)} where {filters}" if filters else m.group(2)
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


def string_texts(node: ir.StrTest, strings: list[str], matched: list[list[str]], want: bool) -> list[str]:
    """A string test in words, per parcel: the field, its value, the matched term or prefix, the list."""
    what, verb, src = _str_parts(node, want)
    if verb == "literal":
        return [f'{what} is "{s}"' if want else f'{what} "{s}" is not {src}' for s in strings]
    if verb == "in":
        return [f'{what} "{s}" is on {src}' for s in strings]
    if verb == "prefix":
        return [f'{what} "{s}" starts with {_quoted(m)} ({src})' for s, m in zip(strings, matched)]
    if verb == "keyword":
        return [f'{what} "{s}" contains {_quoted(m)} ({src})' for s, m in zip(strings, matched)]
    if verb == "only_terms":
        return [f'{what} "{s}" has only words of {src}' for s in strings]
    return [f'{what} "{s}" {verb} {src}' for s in strings]


_MEMO_TYPES = (float, int, bool)   # hashable; a NaN is looked up in vain (NaN != NaN) and worded each time


@lru_cache(maxsize=4096)
def _cmp_parts(node: ir.Compare, held: bool) -> tuple[str, str | None, str, str]:
    """The fixed words of a comparison: left operand's name, unit, the relation, the threshold's name."""
    words = (_OP_WORDS if held else _NOT_OP_WORDS)[node.op]
    right = "" if isinstance(node.right, ir.Const) else f" ({name(node.right)})"
    return name(node.left), unit(node.left) or unit(node.right), words, right


def compare_texts(node: ir.Compare, lefts: list, rights: list, held: list[bool], currencies: list[str]) -> list[str]:
    """A comparison in words, per parcel: "value per kg USD 1.11/kg is below USD 40.00/kg (band ...)"."""
    parts = {True: _cmp_parts(node, True), False: _cmp_parts(node, False)}
    u = parts[True][1]
    # Values repeat (a threshold, counts, a first-seen 0): each (value, currency) is worded once per call.
    # A value is keyed with its type: 1 and 1.0 and True are equal keys but are worded differently.
    worded: dict = {}

    def word(v, cur: str) -> str:
        if v.__class__ not in _MEMO_TYPES:
            return number(v, u, cur)
        key = (v.__class__, v if v else repr(v), cur)     # 0.0 == -0.0, yet they are worded apart
        text = worded.get(key)
        if text is None:
            text = worded[key] = number(v, u, cur)
        return text

    out = []
    for lv, rv, h, cur in zip(lefts, rights, held, currencies):
        left, _, words, right = parts[h]
        out.append(f"{left} {word(lv, cur)} is {words} {word(rv, cur)}{right}")
    return out


def missing_text(node: ir.Missing, want: bool) -> str:
    """A missing / present test in words."""
    return f"{name(node.arg)} is {'missing' if want else 'present'}"


def pair_texts(node: ir.PairIn | ir.SameString, firsts: list[str], seconds: list[str], want: bool) -> list[str]:
    """A pair-table test or a comparison of two string fields in words, per parcel."""
    na, nb = name(node.a), name(node.b)
    if isinstance(node, ir.PairIn):
        where = f'is {"" if want else "not "}on {list_name(node.table.source)}'
        return [f'{na} "{a}" with {nb} "{b}" {where}' for a, b in zip(firsts, seconds)]
    return [f'{na} "{a}" {"equals" if a == b else "differs from"} {nb} "{b}"' for a, b in zip(firsts, seconds)]


def bool_text(node: ir.Node, value) -> str:
    """Any other boolean fact in words (a quantifier without a deciding item, a constant)."""
    if isinstance(node, ir.Const):
        return "always" if node.value else "never"
    return f"{node.label or name(node)} is {'true' if value else 'false'}"


def reason_text(description: str, facts: str, lane_floor: str | None = None) -> str:
    """The sentence of one fired rule: its description, the worded facts, the lane floor."""
    text = f"{description}: {facts}" if description and facts else description or facts
    return f"{text} (lane at least {lane_floor})" if lane_floor else text


def random_text(rate: float, draw: float) -> str:
    """The sentence of a random pick."""
    return f"picked at random ({rate:.2%} of all parcels are, by hash of parcel_id; draw {draw:.4f})"


def line(reason) -> str:
    """One reason (a Reason or its wire dict) on one line: rule id, contribution, sentence."""
    if isinstance(reason, dict):
        rule_id, contribution, text = reason["rule_id"], reason["contribution"], reason["text"]
    else:
        rule_id, contribution, text = reason.rule_id, reason.contribution, reason.text
    if rule_id == "random":
        return f"random: {text}"
    return f"{rule_id} {percent(contribution)}: {text}"


def _amount(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def _facts(origin: str, departure: str, value: float | None, currency: str, net: float | None,
           gross: float | None, n_items: int, hs_codes: list[str]) -> str:
    facts = []
    if origin:
        facts.append(f"origin {origin}" + (f" via {departure}" if departure and departure != origin else ""))
    if value is not None:
        facts.append(f"{number(value, CURRENCY, currency)} declared")
    weight = net if net is not None and net > 0 else gross     # as the derived field weight_kg
    if weight is not None:
        facts.append(number(weight, "kg"))
    if n_items:
        listed = f" (HS {', '.join(hs_codes[:3])}{', ...' if n_items > 3 else ''})" if hs_codes else ""
        facts.append(f"{n_items} item{'s' if n_items != 1 else ''}{listed}")
    return ", ".join(facts)


def key_facts(parcel: dict) -> str:
    """The parcel's key facts for an inspector, from the record as received (what `screener tail` reads):
    origin (and departure), declared value with currency, weight, number of items and their HS codes."""
    items = parcel.get("items")
    items = [it for it in items if isinstance(it, dict)] if isinstance(items, list) else []
    return _facts(str(parcel.get("origin_country") or ""), str(parcel.get("departure_country") or ""),
                  _amount(parcel.get("declared_value")), str(parcel.get("currency") or ""),
                  _amount(parcel.get("net_weight_kg")), _amount(parcel.get("gross_weight_kg")), len(items),
                  [str(it["hs_code"]) for it in items[:3] if it.get("hs_code")])


def batch_facts(batch, indices) -> list[str]:
    """key_facts of parcels `indices` of a ParcelBatch, from its columns (the worker has no parcel dicts)."""
    rows = np.asarray(indices, dtype=np.int64).reshape(-1)

    # Codes before names: a column no rule read is interned on first read, adding names.
    def strings(field: str) -> list[str]:
        codes = batch.strings[field][rows].tolist()
        names = batch.vocab[field].strings
        return [names[c] for c in codes]

    def amounts(field: str) -> list[float | None]:
        return [None if v != v else v for v in batch.numbers[field][rows].tolist()]

    lo, hi = batch.item_offsets[rows].tolist(), batch.item_offsets[rows + 1].tolist()
    hs_codes = batch.item_strings["hs_code"]
    hs_names = batch.vocab["item_hs_code"].strings
    hs = [[hs_names[c] for c in hs_codes[a:min(b, a + 3)].tolist()] for a, b in zip(lo, hi)]
    return [_facts(*fields, b - a, [h for h in codes if h]) for fields, a, b, codes in zip(
        zip(strings("origin_country"), strings("departure_country"), amounts("declared_value"), strings("currency"),
            amounts("net_weight_kg"), amounts("gross_weight_kg")), lo, hi, hs)]


def summary(lane: str, score: float, reasons, facts: str = "") -> str:
    """A parcel's decision in one line for inspectors: lane, score, the parcel's key facts when given
    (key_facts / batch_facts) and every reason (Reason objects or wire dicts)."""
    head = f"{lane.upper()} (score {score:.2f}{'; ' + facts if facts else ''})"
    return f"{head}: " + " | ".join(map(line, reasons)) if reasons else head
