"""The typed intermediate representation a rule condition is checked into.

Both the kernel generator (compiler.py) and the reference interpreter (interpreter.py) read
only this IR, never the rule text. Every string predicate is a node holding its fully resolved
reference data (terms with validity intervals), so the IR alone defines what a rule means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

NUM, BOOL, STR, LIST, PAIRS = "number", "boolean", "string", "list", "pair table"

# Validity bounds in ms since the epoch; an entry without dates is valid from MIN to MAX.
TIME_MIN = -(2**63)
TIME_MAX = 2**63 - 1


@dataclass(frozen=True)
class Entry:
    """One term of a list (literal or reference table) with its validity [valid_from, valid_until)."""

    term: str
    valid_from: int = TIME_MIN
    valid_until: int = TIME_MAX

    @property
    def bounded(self) -> bool:
        """True when the entry has validity dates."""
        return self.valid_from != TIME_MIN or self.valid_until != TIME_MAX


@dataclass(frozen=True)
class StrPred:
    """A string predicate: `kind` in ("in", "prefix", "keyword", "only_terms") over `entries`."""

    kind: str
    entries: tuple[Entry, ...]
    source: str = field(default="", compare=False)   # how the rule named the list, for explanations

    def __hash__(self) -> int:
        """Hash of kind and entries, computed once: a table can hold a million entries and the
        matcher cache (predicates.matcher) hashes the predicate on every batch."""
        return self._hash

    @cached_property
    def _hash(self) -> int:
        return hash((self.kind, self.entries))

    @property
    def timed(self) -> bool:
        """True when any entry has validity dates, so the answer depends on event time."""
        return any(e.bounded for e in self.entries)


@dataclass(frozen=True)
class StrFn:
    """A number computed from a string: `kind` in ("length", "word_count", "lookup")."""

    kind: str
    mapping: tuple[tuple[str, float], ...] = ()   # for "lookup": string -> number (e.g. fx rates)
    source: str = field(default="", compare=False)


@dataclass(frozen=True)
class BandTable:
    """Reference value bands: rows of (hs_prefix, origin or "*", min, max), in USD per kg."""

    rows: tuple[tuple[str, str, float, float], ...]

    @property
    def origins(self) -> tuple[str, ...]:
        """Distinct origin-specific keys (wildcard excluded), in a fixed order."""
        return tuple(sorted({r[1] for r in self.rows if r[1] != "*"}))


@dataclass(frozen=True)
class PairTable:
    """Pairs of strings (either side may be the wildcard "*")."""

    rows: tuple[tuple[str, str], ...]
    source: str = field(default="", compare=False)

    def keys(self, side: int) -> tuple[str, ...]:
        """Distinct non-wildcard values of one side, in a fixed order."""
        return tuple(sorted({r[side] for r in self.rows if r[side] != "*"}))


# --- expression nodes -------------------------------------------------------------------------
# `label` is the condition text the node came from (for explanations); `level` is "parcel" or
# "item": item-level nodes only appear inside an item quantifier.

@dataclass(eq=False)
class Node:
    """Base of all IR nodes."""

    label: str = field(default="", kw_only=True)

    @property
    def type(self) -> str:  # pragma: no cover - overridden
        """The node's type (NUM, BOOL, STR, ...)."""
        raise NotImplementedError


@dataclass(eq=False)
class Const(Node):
    """A number or boolean literal."""

    value: float | bool

    @property
    def type(self) -> str:
        """BOOL for True/False, NUM otherwise."""
        return BOOL if isinstance(self.value, bool) else NUM


@dataclass(eq=False)
class NumField(Node):
    """A float64 column: parcel field (`numbers[column]`) or item field (`item_numbers[column]`)."""

    name: str
    column: str
    level: str
    type = NUM


@dataclass(eq=False)
class StrField(Node):
    """An int32 code column of an interned string field, and the vocabulary its codes index."""

    name: str
    column: str
    vocab: str
    level: str
    type = STR


@dataclass(eq=False)
class Derived(Node):
    """A named derived field (value_per_kg, ...): its definition is `expr`, its name labels it."""

    name: str
    expr: Node
    level: str
    type = NUM


@dataclass(eq=False)
class Unary(Node):
    """`op` in ("neg", "abs") on a number, or "not" on a boolean."""

    op: str
    arg: Node

    @property
    def type(self) -> str:
        """BOOL for not, NUM otherwise."""
        return BOOL if self.op == "not" else NUM


@dataclass(eq=False)
class Arith(Node):
    """Binary arithmetic, `op` in + - * /; IEEE semantics (x/0 is inf or nan, never an error)."""

    op: str
    left: Node
    right: Node
    type = NUM


@dataclass(eq=False)
class MinMax(Node):
    """min(...) or max(...) of numbers, ignoring NaN arguments (NaN only when all are NaN)."""

    op: str
    args: list[Node]
    type = NUM


@dataclass(eq=False)
class Compare(Node):
    """Numeric comparison, `op` in < <= > >= == !=; false whenever a NaN is involved (except !=)."""

    op: str
    left: Node
    right: Node
    type = BOOL


@dataclass(eq=False)
class Logic(Node):
    """`op` in ("and", "or") over two or more booleans, short-circuit."""

    op: str
    args: list[Node]
    type = BOOL


@dataclass(eq=False)
class IfElse(Node):
    """`then` when `cond` else `other` (used by derived-field definitions, not by rule text)."""

    cond: Node
    then: Node
    other: Node
    type = NUM


@dataclass(eq=False)
class ItemCount(Node):
    """Number of item lines of the parcel."""

    type = NUM


@dataclass(eq=False)
class Missing(Node):
    """True when a number is NaN or a string field is empty/absent (code 0)."""

    arg: Node
    type = BOOL


@dataclass(eq=False)
class StrTest(Node):
    """A string predicate applied to a string field; evaluated per vocabulary entry, not per parcel."""

    pred: StrPred
    arg: StrField
    type = BOOL


@dataclass(eq=False)
class StrNum(Node):
    """A number computed from a string field (length, word count, table lookup)."""

    fn: StrFn
    arg: StrField
    type = NUM


@dataclass(eq=False)
class Band(Node):
    """band_min / band_max of the value band for an HS code (and optionally an origin)."""

    which: str                 # "min" or "max"
    table: BandTable
    hs: StrField
    origin: StrField | None
    type = NUM


@dataclass(eq=False)
class PairIn(Node):
    """(a, b) in a pair table, honouring "*" wildcards on either side."""

    table: PairTable
    a: StrField
    b: StrField
    type = BOOL


@dataclass(eq=False)
class SameString(Node):
    """Two string fields holding equal strings (`negate` for !=)."""

    a: StrField
    b: StrField
    negate: bool = False
    type = BOOL


QUANTIFIERS = {"any_item": BOOL, "all_items": BOOL, "count_items": NUM,
               "sum_items": NUM, "min_item": NUM, "max_item": NUM}


@dataclass(eq=False)
class Quant(Node):
    """An item quantifier: any/all (boolean body) or count/sum/min/max over the parcel's items."""

    kind: str
    body: Node

    @property
    def type(self) -> str:
        """BOOL for any/all, NUM for aggregates."""
        return QUANTIFIERS[self.kind]


def children(node: Node) -> list[Node]:
    """Direct sub-expressions of a node (for generic walks)."""
    if isinstance(node, Derived):
        return [node.expr]
    if isinstance(node, Unary):
        return [node.arg]
    if isinstance(node, (Arith, Compare)):
        return [node.left, node.right]
    if isinstance(node, (MinMax, Logic)):
        return list(node.args)
    if isinstance(node, IfElse):
        return [node.cond, node.then, node.other]
    if isinstance(node, (Missing, StrTest, StrNum)):
        return [node.arg]
    if isinstance(node, Band):
        return [node.hs] + ([node.origin] if node.origin is not None else [])
    if isinstance(node, PairIn):
        return [node.a, node.b]
    if isinstance(node, SameString):
        return [node.a, node.b]
    if isinstance(node, Quant):
        return [node.body]
    return []


def walk(node: Node):
    """Every node of a tree, parents before children."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))
