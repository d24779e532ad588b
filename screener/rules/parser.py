"""Rule condition text -> typed IR, through a whitelist over Python's own expression parser.

The text is parsed with `ast.parse(mode="eval")` and never evaluated. Only the node types, names
and functions listed here are accepted; anything else (attribute access, dunders, calls outside
the whitelist, lambdas, comprehensions, ...) is reported with the rule id and position, and
checking carries on so one pass reports every problem of a condition.
"""

from __future__ import annotations

import ast
import difflib
import math

from screener.rules import ir
from screener.rules.errors import Problem
from screener.rules.ir import BOOL, NUM, STR
from screener.rules.language import (
    DERIVED,
    FUNCTIONS,
    ITEM_NUMBERS,
    ITEM_STRINGS,
    LIST_FORMS,
    PARCEL_NUMBERS,
    PARCEL_STRINGS,
    all_names,
)
from screener.rules.tables import TableError, TableFileError, Tables

MAX_CONDITION_CHARS = 20_000
MAX_DEPTH = 64

_COMPARE_OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_ARITH_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_REFUSED = {
    ast.Attribute: "attribute access (x.y) is not allowed",
    ast.Subscript: "indexing (x[...]) is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed (use any_item / all_items / count_items)",
    ast.SetComp: "comprehensions are not allowed (use any_item / all_items / count_items)",
    ast.DictComp: "comprehensions are not allowed (use any_item / all_items / count_items)",
    ast.GeneratorExp: "comprehensions are not allowed (use any_item / all_items / count_items)",
    ast.IfExp: "conditional expressions (a if c else b) are not allowed; use and / or",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.Set: "sets are not allowed; use a list [...]",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Starred: "* unpacking is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


class _Fail(Exception):
    """Internal: the current sub-expression is wrong (already reported)."""


def _describe(node: ir.Node) -> str:
    if isinstance(node, (ir.StrField, ir.NumField, ir.Derived)):
        return f"{node.type} field {node.name}"
    return f"{node.type} {node.label!r}" if node.label else node.type


class ConditionParser:
    """Checks one rule's condition into IR, appending every problem found to `problems`."""

    def __init__(self, rule_id: str, text: str, tables: Tables, problems: list[Problem],
                 shared: dict | None = None) -> None:
        self.rule_id = rule_id
        self.text = text
        self.lines = text.split("\n")
        self.tables = tables
        self.problems = problems
        self.shared = shared if shared is not None else {}   # derived fields shared across rules
        self.failed = False

    # --- reporting --------------------------------------------------------------------------
    def _position(self, node: ast.AST) -> tuple[int | None, int | None]:
        line = getattr(node, "lineno", None)
        if line is None:
            return None, None
        byte_col = getattr(node, "col_offset", 0)
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        # The text is parsed wrapped as "(\n" + text + "\n)": its line 1 is our line 2.
        return max(line - 1, 1), len(src.encode("utf-8")[:byte_col].decode("utf-8", "replace")) + 1

    def error(self, node: ast.AST | None, message: str) -> _Fail:
        """Record a problem at `node` and return the exception that abandons this sub-expression."""
        line, col = self._position(node) if node is not None else (None, None)
        self.problems.append(Problem(message, self.rule_id, line, col))
        self.failed = True
        return _Fail()

    def table_failure(self, node: ast.AST, exc: TableError) -> _Fail:
        """Fail on a table problem; a defect inside a table file is reported once by Tables, not per rule."""
        if isinstance(exc, TableFileError):
            self.failed = True
            return _Fail()
        return self.error(node, str(exc))

    def _label(self, node: ast.AST) -> str:
        seg = ast.get_source_segment(self.text, node) or ""
        return " ".join(seg.split())

    # --- entry point ------------------------------------------------------------------------
    def parse(self) -> ir.Node | None:
        """The condition's IR, or None when it has problems (all of them recorded)."""
        if not isinstance(self.text, str) or not self.text.strip():
            self.problems.append(Problem("condition is empty", self.rule_id))
            return None
        if len(self.text) > MAX_CONDITION_CHARS:
            self.problems.append(Problem(f"condition is longer than {MAX_CONDITION_CHARS} characters",
                                         self.rule_id))
            return None
        # Wrapping in parentheses lets a condition span lines (TOML multi-line strings) freely.
        self.text = "(\n" + self.text + "\n)"
        self.lines = self.text.split("\n")
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError as exc:
            line = min(max((exc.lineno or 2) - 1, 1), len(self.lines) - 2)
            self.problems.append(Problem(f"syntax error: {exc.msg}", self.rule_id, line, exc.offset))
            return None
        except (ValueError, RecursionError, MemoryError) as exc:
            self.problems.append(Problem(f"cannot parse condition: {type(exc).__name__}", self.rule_id))
            return None
        try:
            root = self.visit(tree.body, item=False, depth=0)
            if root.type != BOOL:
                raise self.error(tree.body, f"a condition must be true or false, got {_describe(root)}")
        except _Fail:
            return None
        except RecursionError:
            self.problems.append(Problem("condition is nested too deeply", self.rule_id))
            return None
        return None if self.failed else root

    # --- expressions ------------------------------------------------------------------------
    def visit(self, node: ast.AST, *, item: bool, depth: int) -> ir.Node:
        """IR of one expression node (raises _Fail after reporting)."""
        if depth > MAX_DEPTH:
            raise self.error(node, f"condition is nested deeper than {MAX_DEPTH} levels")
        for kind, message in _REFUSED.items():
            if isinstance(node, kind):
                self._report_dunders(node)
                raise self.error(node, message)
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, f"{type(node).__name__} is not allowed in a condition")
        out = method(node, item=item, depth=depth + 1)
        if not out.label:
            out.label = self._label(node)
        return out

    def _report_dunders(self, node: ast.AST) -> None:
        """Name every dunder inside a refused construct too: they are the usual escape attempt."""
        for sub in ast.walk(node):
            name = sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else ""
            if name.startswith("__") or name.endswith("__"):
                self.error(sub, f"dunder name {name!r} is not allowed")

    def _expect(self, node: ast.AST, want: str, *, item: bool, depth: int) -> ir.Node:
        out = self.visit(node, item=item, depth=depth)
        if out.type != want:
            raise self.error(node, f"expected a {want}, got {_describe(out)}")
        return out

    def _gather(self, nodes, want: str, *, item: bool, depth: int) -> list[ir.Node]:
        """Check every operand even after one fails, so all problems are reported."""
        out, failed = [], False
        for n in nodes:
            try:
                out.append(self._expect(n, want, item=item, depth=depth))
            except _Fail:
                failed = True
        if failed:
            raise _Fail()
        return out

    def _BoolOp(self, node: ast.BoolOp, *, item: bool, depth: int) -> ir.Node:
        op = "and" if isinstance(node.op, ast.And) else "or"
        return ir.Logic(op, self._gather(node.values, BOOL, item=item, depth=depth))

    def _UnaryOp(self, node: ast.UnaryOp, *, item: bool, depth: int) -> ir.Node:
        if isinstance(node.op, ast.Not):
            return ir.Unary("not", self._expect(node.operand, BOOL, item=item, depth=depth))
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            arg = self._expect(node.operand, NUM, item=item, depth=depth)
            if isinstance(node.op, ast.UAdd):
                return arg
            if isinstance(arg, ir.Const):
                return ir.Const(-arg.value)
            return ir.Unary("neg", arg)
        raise self.error(node, "operator ~ is not allowed")

    def _BinOp(self, node: ast.BinOp, *, item: bool, depth: int) -> ir.Node:
        op = _ARITH_OPS.get(type(node.op))
        if op is None:
            sym = {ast.Pow: "**", ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&",
                   ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}.get(type(node.op), "?")
            raise self.error(node, f"operator {sym} is not allowed (use + - * /)")
        left, right = self._gather([node.left, node.right], NUM, item=item, depth=depth)
        return ir.Arith(op, left, right)

    def _Constant(self, node: ast.Constant, *, item: bool, depth: int) -> ir.Node:
        v = node.value
        if isinstance(v, bool):
            return ir.Const(v)
        if isinstance(v, (int, float)):
            try:
                f = float(v)
            except OverflowError:
                f = math.inf
            if not math.isfinite(f):
                raise self.error(node, f"number {self._label(node)} is out of range")
            return ir.Const(f)
        if isinstance(v, str):
            raise self.error(node, "a string is only allowed in == / != against a string field, after `in`, "
                                   "or as a function's list argument")
        raise self.error(node, f"{type(v).__name__} literals are not allowed")

    def _Name(self, node: ast.Name, *, item: bool, depth: int) -> ir.Node:
        name = node.id
        if name.startswith("__") or name.endswith("__"):
            raise self.error(node, f"dunder name {name!r} is not allowed")
        if name in PARCEL_NUMBERS:
            return ir.NumField(name, PARCEL_NUMBERS[name], "parcel")
        if name in PARCEL_STRINGS:
            return ir.StrField(name, PARCEL_STRINGS[name], name, "parcel")
        if name in ITEM_NUMBERS or name in ITEM_STRINGS or DERIVED.get(name, ("",))[0] == "item":
            if not item:
                raise self.error(node, f"item field {name!r} used outside an item quantifier "
                                       f"(any_item, all_items, count_items, sum_items, min_item, max_item)")
            if name in ITEM_NUMBERS:
                return ir.NumField(name, ITEM_NUMBERS[name], "item")
            if name in ITEM_STRINGS:
                column, vocab = ITEM_STRINGS[name]
                return ir.StrField(name, column, vocab, "item")
        if name in DERIVED:
            return self.derived(name, node)
        if name in FUNCTIONS:
            raise self.error(node, f"{name} is a function: call it as {FUNCTIONS[name].split(' ->')[0]}")
        hint = difflib.get_close_matches(name, all_names(), n=1)
        suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise self.error(node, f"unknown field {name!r}{suffix}")

    def usd_per_cny(self, node: ast.AST) -> float:
        """USD per CNY from fx.csv: CNY limits (the single-order and yearly limits) are written in CNY."""
        try:
            self.tables.require("fx", "currency", "usd_per_unit")
            rates = [self.tables.number("fx", k, "usd_per_unit") for k, row in enumerate(self.tables.rows("fx"))
                     if row["currency"] == "CNY"]
        except TableFileError as exc:
            raise self.table_failure(node, exc) from exc
        except TableError as exc:
            raise self.error(node, f"CNY amounts need reference table fx.csv: {exc}") from exc
        if not rates or not rates[0] > 0:
            raise self.error(node, "CNY amounts need a positive CNY row in fx.csv")
        return rates[0]

    def derived(self, name: str, node: ast.AST) -> ir.Node:
        """The shared IR of a derived field (built once per pack)."""
        if name in self.shared:
            return self.shared[name]

        def P(f):  # one-letter builders keep the derived-field table below readable
            return ir.NumField(f, f, "parcel", label=f)

        def item(f):
            return ir.NumField(f, f, "item", label=f)

        def D(f):
            return self.derived(f, node)

        level = DERIVED[name][0]
        if name == "fx_usd":
            try:
                self.tables.require("fx", "currency", "usd_per_unit")
                mapping = [(row["currency"], self.tables.number("fx", k, "usd_per_unit"))
                           for k, row in enumerate(self.tables.rows("fx"))]
            except TableFileError as exc:
                raise self.table_failure(node, exc) from exc
            except TableError as exc:
                raise self.error(node, f"derived field {name} needs reference table fx.csv: {exc}") from exc
            expr = ir.StrNum(ir.StrFn("lookup", tuple(mapping), source="fx.csv"),
                             ir.StrField("currency", "currency", "currency", "parcel", label="currency"))
        elif name in ("value_usd", "freight_usd", "paid_usd", "tax_usd"):
            base = {"value_usd": "declared_value", "freight_usd": "freight", "paid_usd": "paid_amount",
                    "tax_usd": "tax_withheld"}[name]
            expr = ir.Arith("*", P(base), D("fx_usd"))
        elif name in ("value_cny", "consignee_24h_value_cny", "consignee_year_value_cny"):
            base = {"value_cny": D("value_usd"), "consignee_24h_value_cny": P("consignee_24h_value_usd"),
                    "consignee_year_value_cny": P("consignee_year_value_usd")}[name]
            expr = ir.Arith("/", base, ir.Const(self.usd_per_cny(node)))
        elif name == "weight_kg":
            expr = ir.IfElse(ir.Compare(">", P("net_weight_kg"), ir.Const(0.0)), P("net_weight_kg"),
                             P("gross_weight_kg"))
        elif name == "value_per_kg":
            expr = ir.Arith("/", D("value_usd"), D("weight_kg"))
        elif name == "item_count":
            expr = ir.ItemCount()
        elif name == "total_quantity":
            expr = ir.Quant("sum_items", item("quantity"))
        elif name == "items_value":
            expr = ir.Quant("sum_items", item("line_value"))
        elif name == "items_value_usd":
            expr = ir.Arith("*", D("items_value"), D("fx_usd"))
        elif name == "unit_price_usd":
            expr = ir.Arith("*", item("unit_price"), D("fx_usd"))
        elif name == "line_value_usd":
            expr = ir.Arith("*", item("line_value"), D("fx_usd"))
        else:  # pragma: no cover - DERIVED and this list are kept in step
            raise self.error(node, f"derived field {name} has no definition")
        out = ir.Derived(name, expr, level, label=name)
        self.shared[name] = out
        return out

    def _List(self, node: ast.AST, *, item: bool, depth: int) -> ir.Node:
        raise self.error(node, "a list is only allowed after `in` or as a function's list argument")

    _Tuple = _List

    # --- comparisons ------------------------------------------------------------------------
    def _Compare(self, node: ast.Compare, *, item: bool, depth: int) -> ir.Node:
        parts, failed = [], False
        operands = [node.left] + list(node.comparators)
        for k, op in enumerate(node.ops):
            try:
                part = self._compare_pair(operands[k], op, operands[k + 1], node, item=item, depth=depth)
                part.label = " ".join(filter(None, [self._label(operands[k]), _op_text(op),
                                                    self._label(operands[k + 1])]))
                parts.append(part)
            except _Fail:
                failed = True
        if failed:
            raise _Fail()
        return parts[0] if len(parts) == 1 else ir.Logic("and", parts)

    def _compare_pair(self, left: ast.AST, op: ast.cmpop, right: ast.AST, whole: ast.AST, *,
                      item: bool, depth: int) -> ir.Node:
        if isinstance(op, (ast.In, ast.NotIn)):
            out = self._membership(left, right, item=item, depth=depth)
            return ir.Unary("not", out) if isinstance(op, ast.NotIn) else out
        if isinstance(op, (ast.Is, ast.IsNot)):
            raise self.error(whole, "`is` is not allowed; use == or missing(field)")
        sym = _COMPARE_OPS[type(op)]
        # A string literal on either side: equality with a string field, through a lookup.
        for lit, other in ((right, left), (left, right)):
            if isinstance(lit, ast.Constant) and isinstance(lit.value, str):
                if sym not in ("==", "!="):
                    raise self.error(whole, f"strings cannot be compared with {sym}; only == and !=")
                field = self._string_field(other, item=item, depth=depth)
                test = ir.StrTest(ir.StrPred("in", (ir.Entry(lit.value),), source=repr(lit.value)), field)
                return ir.Unary("not", test) if sym == "!=" else test
        a = self.visit(left, item=item, depth=depth)
        b = self.visit(right, item=item, depth=depth)
        if a.type == STR and b.type == STR:
            if sym not in ("==", "!="):
                raise self.error(whole, f"strings cannot be compared with {sym}; only == and !=")
            return ir.SameString(a, b, negate=(sym == "!="))
        if a.type != NUM or b.type != NUM:
            raise self.error(whole, f"cannot compare {_describe(a)} with {_describe(b)} using {sym}")
        return ir.Compare(sym, a, b)

    def _membership(self, left: ast.AST, right: ast.AST, *, item: bool, depth: int) -> ir.Node:
        if isinstance(left, ast.Tuple):
            if len(left.elts) != 2:
                raise self.error(left, "only a pair (a, b) may be tested against a pair table")
            a = self._string_field(left.elts[0], item=item, depth=depth)
            b = self._string_field(left.elts[1], item=item, depth=depth)
            table = self._pair_table(right)
            return ir.PairIn(table, a, b)
        field = self._string_field(left, item=item, depth=depth)
        entries, source = self.list_argument(right)
        return ir.StrTest(ir.StrPred("in", entries, source=source), field)

    def _string_field(self, node: ast.AST, *, item: bool, depth: int) -> ir.StrField:
        out = self.visit(node, item=item, depth=depth)
        if not isinstance(out, ir.StrField):
            raise self.error(node, f"expected a string field, got {_describe(out)}")
        return out

    # --- lists and tables -------------------------------------------------------------------
    def list_argument(self, node: ast.AST) -> tuple[tuple[ir.Entry, ...], str]:
        """Entries of a list argument (string, list literal or table(...)) and how it was written."""
        label = self._label(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return (ir.Entry(node.value),), label
        if isinstance(node, (ast.List, ast.Tuple)):
            if not node.elts:
                raise self.error(node, "empty list")
            bad = [e for e in node.elts if not (isinstance(e, ast.Constant) and isinstance(e.value, str))]
            if bad:
                raise self.error(bad[0], "list elements must be string literals")
            return tuple(ir.Entry(e.value) for e in node.elts), label
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "table":
            name, columns, filters = self._table_call(node)
            if len(columns) != 1:
                raise self.error(node, "a list needs exactly one column: table(\"name\", \"column\")")
            try:
                entries = self.tables.entries(name, columns[0], filters)
            except TableError as exc:
                raise self.table_failure(node, exc) from exc
            if not entries:
                raise self.error(node, f"table {name!r} column {columns[0]!r} gives no entries")
            return entries, label
        raise self.error(node, f"expected a list: {LIST_FORMS}")

    def _table_call(self, node: ast.Call) -> tuple[str, list[str], dict[str, str]]:
        args = []
        for a in node.args:
            if not (isinstance(a, ast.Constant) and isinstance(a.value, str)):
                raise self.error(a, "table(...) arguments must be string literals")
            args.append(a.value)
        filters = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise self.error(node, "** unpacking is not allowed")
            if kw.arg.startswith("__"):
                raise self.error(node, f"dunder name {kw.arg!r} is not allowed")
            if not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)):
                raise self.error(kw.value, f"filter {kw.arg}= must be a string literal")
            filters[kw.arg] = kw.value.value
        if len(args) < 2:
            raise self.error(node, 'table needs a name and a column: table("name", "column")')
        if len(args) > 3:
            raise self.error(node, "table takes a name and one or two columns")
        return args[0], args[1:], filters

    def _pair_table(self, node: ast.AST) -> ir.PairTable:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "table"):
            raise self.error(node, 'a pair (a, b) is tested against table("name", "column_a", "column_b")')
        name, columns, filters = self._table_call(node)
        if len(columns) != 2:
            raise self.error(node, 'a pair table needs two columns: table("name", "column_a", "column_b")')
        try:
            self.tables.require(name, *columns, *filters)
            if self.tables.has_validity(name):
                raise TableError(f"table {name!r} has validity dates, which pair tables do not support")
            rows = tuple((r[columns[0]], r[columns[1]]) for r in self.tables.rows(name)
                         if all(r.get(k, "") == v for k, v in filters.items()) and r[columns[0]] and r[columns[1]])
        except TableError as exc:
            raise self.table_failure(node, exc) from exc
        if not rows:
            raise self.error(node, f"pair table {name!r} gives no rows")
        return ir.PairTable(rows, source=self._label(node))

    # --- calls ------------------------------------------------------------------------------
    def _Call(self, node: ast.Call, *, item: bool, depth: int) -> ir.Node:
        if not isinstance(node.func, ast.Name):
            self._report_dunders(node.func)
            if isinstance(node.func, ast.Attribute):
                raise self.error(node.func, "attribute access (x.y) is not allowed; only plain function names")
            raise self.error(node.func, "only plain function names can be called")
        name = node.func.id
        if name.startswith("__") or name.endswith("__"):
            raise self.error(node.func, f"dunder name {name!r} is not allowed")
        if name not in FUNCTIONS:
            hint = difflib.get_close_matches(name, list(FUNCTIONS), n=1)
            suffix = f" (did you mean {hint[0]}?)" if hint else ""
            raise self.error(node.func, f"function {name!r} is not allowed{suffix}; "
                                        f"allowed: {', '.join(sorted(FUNCTIONS))}")
        if name == "table":
            raise self.error(node, "table(...) is only allowed after `in` or as a function's list argument")
        if node.keywords:
            raise self.error(node, f"{name} takes no keyword arguments")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.error(node, "* unpacking is not allowed")
        args = node.args
        sig = FUNCTIONS[name]

        def arity(lo: int, hi: int) -> None:
            if not lo <= len(args) <= hi:
                want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 99 else f"at least {lo}"
                raise self.error(node, f"{name} takes {want} argument(s), got {len(args)}: {sig}")

        if name in ir.QUANTIFIERS:
            arity(1, 1)
            if item:
                raise self.error(node, f"item quantifiers cannot be nested ({name} inside another)")
            want = BOOL if name in ("any_item", "all_items", "count_items") else NUM
            return ir.Quant(name, self._expect(args[0], want, item=True, depth=depth))
        if name == "abs":
            arity(1, 1)
            return ir.Unary("abs", self._expect(args[0], NUM, item=item, depth=depth))
        if name in ("min", "max"):
            arity(2, 99)
            return ir.MinMax(name, self._gather(args, NUM, item=item, depth=depth))
        if name in ("missing", "present"):
            arity(1, 1)
            arg = self.visit(args[0], item=item, depth=depth)
            if arg.type not in (NUM, STR):
                raise self.error(args[0], f"{name} needs a number or string field, got {_describe(arg)}")
            out = ir.Missing(arg)
            return out if name == "missing" else ir.Unary("not", out)
        if name in ("startswith", "contains_any", "only_terms"):
            arity(2, 2)
            field = self._string_field(args[0], item=item, depth=depth)
            entries, source = self.list_argument(args[1])
            kind = {"startswith": "prefix", "contains_any": "keyword", "only_terms": "only_terms"}[name]
            pred = ir.StrPred(kind, entries, source=source)
            if kind == "only_terms" and pred.timed:
                raise self.error(args[1], "only_terms does not support lists with validity dates")
            return ir.StrTest(pred, field)
        if name in ("length", "word_count"):
            arity(1, 1)
            field = self._string_field(args[0], item=item, depth=depth)
            return ir.StrNum(ir.StrFn(name), field)
        if name == "watchlisted":
            arity(1, 1)
            field = self._string_field(args[0], item=item, depth=depth)
            try:
                entries = self.tables.entries("watchlist", "value", {"field": field.name})
            except TableError as exc:
                raise self.table_failure(node, exc) from exc
            if not entries:
                raise self.error(node, f"watchlist.csv has no entries for field {field.name!r}")
            return ir.StrTest(ir.StrPred("in", entries, source=f"watchlist[{field.name}]"), field)
        if name in ("band_min", "band_max"):
            arity(1, 2)
            hs = self._string_field(args[0], item=item, depth=depth)
            origin = self._string_field(args[1], item=item, depth=depth) if len(args) == 2 else None
            return ir.Band(name[-3:], self._band_table(node), hs, origin)
        raise self.error(node, f"function {name} is not implemented")  # pragma: no cover

    def _band_table(self, node: ast.AST) -> ir.BandTable:
        key = "__value_bands__"
        if key in self.shared:
            return self.shared[key]
        try:
            self.tables.require("value_bands", "hs_prefix", "origin_country", "min_usd_per_kg", "max_usd_per_kg")
            nan = float("nan")
            rows = [(r["hs_prefix"], r["origin_country"] or "*",
                     self.tables.number("value_bands", k, "min_usd_per_kg", empty=nan),
                     self.tables.number("value_bands", k, "max_usd_per_kg", empty=nan))
                    for k, r in enumerate(self.tables.rows("value_bands"))]
        except TableError as exc:
            raise self.table_failure(node, exc) from exc
        table = ir.BandTable(tuple(rows))
        self.shared[key] = table
        return table


def _op_text(op: ast.cmpop) -> str:
    if isinstance(op, ast.In):
        return "in"
    if isinstance(op, ast.NotIn):
        return "not in"
    return _COMPARE_OPS.get(type(op), "")


def parse_condition(rule_id: str, text: str, tables: Tables, problems: list[Problem],
                    shared: dict | None = None) -> ir.Node | None:
    """IR of a rule condition, or None with the problems appended."""
    return ConditionParser(rule_id, text, tables, problems, shared).parse()
