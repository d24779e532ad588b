"""IR -> Python source of one Numba kernel per pack -> compiled, cached function.

The source is generated from the IR alone (rule text never reaches it: no strings at all, only
field names from a fixed catalogue, numbers and lookup column indices). Everything that is data
rather than structure -- weights, lane floors, validity dates, thresholds, random rate and seed,
reference tables -- is passed in arrays, so changing it needs no recompile.

Rules of the same *shape* share code: a rule's condition is generated with its numeric constants
and lookup column indices read from parameter arrays (`PF[q, k]`, `PI[q, k]` for rule instance q)
instead of written as literals, so `declared_value > 1000` and `declared_value > 2000` (or two
`startswith` over different prefix lists) produce the same text, and one block of code loops over
every rule of that shape. Numba's compile time grows with the code it compiles, so it now grows
with the number of distinct shapes, not of rules; a pack of 1,000 rules built from a few dozen
shapes compiles like a pack of a few dozen rules. The parameter arrays are module globals of the
generated source (Numba freezes them into the machine code).

Caching: the source is written to `<cache_dir>/rules_kernel_<key>.py`, key = hash of the source,
compiler version, Numba version and the hashing kernel it calls, and compiled with
`cache=True`, so Numba keeps the machine code beside it in `__pycache__`. A second process
with the same pack loads the machine code instead of compiling.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numba

from screener.rules import ir
from screener.rules.lookups import LookupPlan

COMPILER_VERSION = "2"
_HASHING_SOURCE = Path(__file__).resolve().parent.parent / "kernels" / "hashing.py"
_LOCK = threading.Lock()
_LOADED: dict[str, object] = {}


def default_cache_dir() -> Path:
    """Where generated kernels live: $SCREENER_KERNEL_CACHE, else ~/.cache/screener/kernels."""
    env = os.environ.get("SCREENER_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "screener" / "kernels"


@dataclass
class KernelSource:
    """Generated source plus how to call it: columns read, lookup layout, words of the hit mask."""

    text: str
    key: str
    n_rules: int
    words: int
    parcel_strings: list[str]
    parcel_numbers: list[str]
    item_strings: list[str]
    item_numbers: list[str]
    plan: LookupPlan
    signature: str = field(repr=False, default="")
    shapes: int = 0            # distinct condition shapes (blocks of code), summed over chunks


class _Emitter:
    """Writes statements for IR nodes; `expr` returns an expression after emitting what it needs."""

    def __init__(self, plan: LookupPlan) -> None:
        self.plan = plan
        self.n = 0
        self.prelude: list[str] = []          # hoisted parcel-level derived fields
        self.hoisted: set[str] = set()
        self.hoisting = False                 # emitting hoisted derived fields (shared, not per rule)
        self.hoisted_n = 0                    # their temporaries, numbered on their own
        self.cols = {"S": [], "N": [], "IS": [], "IN": []}
        # The current rule's parameters (numbers, column indices); None while emitting shared code
        # (hoisted derived fields), whose constants stay literals.
        self.floats: list[float] | None = None
        self.ints: list[int] | None = None

    def tmp(self, prefix: str) -> str:
        """A fresh local variable name; `_@` becomes the shape block's number (names unique per block)."""
        if self.hoisting:
            self.hoisted_n += 1
            return f"{prefix}{self.hoisted_n}_d"
        self.n += 1
        return f"{prefix}{self.n}_@"

    def fparam(self, value: float) -> str:
        """A rule's numeric constant: read from PF for this rule instance (a literal in shared code)."""
        if self.floats is None:
            return f"({float(value)!r})"
        self.floats.append(float(value))
        return f"PF[q, {len(self.floats) - 1}]"

    def iparam(self, value: int) -> str:
        """A rule's lookup column index (or pair table number): read from PI for this rule instance."""
        if self.ints is None:
            return str(int(value))
        self.ints.append(int(value))
        return f"PI[q, {len(self.ints) - 1}]"

    def rule(self, cond: ir.Node, literal: bool = False, ind: int = 3) -> tuple[str, list[str], list[float], list[int]]:
        """A rule's condition as (result expression, statements, float params, int params); its shape is the text.

        `literal` writes the constants into the code instead (a shape with one rule: nothing to share).
        """
        self.n = 0
        self.floats, self.ints = (None, None) if literal else ([], [])
        body: list[str] = []
        x = self.expr(cond, body, ind)
        floats, ints = self.floats or [], self.ints or []
        self.floats = self.ints = None
        return x, body, floats, ints

    def col(self, kind: str, column: str) -> str:
        """Kernel argument name of a batch column, registering it."""
        if column not in self.cols[kind]:
            self.cols[kind].append(column)
        return f"{kind}_{column}"

    def read(self, kind: str, column: str, index: str) -> str:
        """A batch column read at parcel i / item j. Inside a rule the column is a parameter too (an
        index into the tuple COLS_<kind>), so rules that differ only in the field they read share a shape."""
        name = self.col(kind, column)
        if self.ints is None:
            return f"{name}[{index}]"
        return f"COLS_{kind}[{self.iparam(self.cols[kind].index(column))}][{index}]"

    def code(self, f: ir.StrField) -> str:
        """Expression for a string field's code in the current parcel / item."""
        if f.level == "item":
            return self.read("IS", f.column, "j")
        return self.read("S", f.column, "i")

    def expr(self, node: ir.Node, out: list[str], ind: int) -> str:
        """Expression string for `node`, emitting prerequisite statements into `out` at `ind`."""
        pad = "    " * ind

        def put(line: str, extra: int = 0) -> None:
            out.append(pad + "    " * extra + line)

        if isinstance(node, ir.Const):
            if isinstance(node.value, bool):
                return "True" if node.value else "False"
            return self.fparam(node.value)
        if isinstance(node, ir.NumField):
            if node.level == "item":
                return self.read("IN", node.column, "j")
            return self.read("N", node.column, "i")
        if isinstance(node, ir.StrField):  # only as an argument; kept for completeness
            return self.code(node)
        if isinstance(node, ir.Derived):
            if node.level == "item":
                return self.expr(node.expr, out, ind)
            name = f"d_{node.name}"
            if node.name not in self.hoisted:
                # Shared by every rule of the chunk: literal constants, names numbered apart from rules'.
                saved = (self.floats, self.ints, self.hoisting)
                self.floats, self.ints, self.hoisting = None, None, True
                value = self.expr(node.expr, self.prelude, 2)
                self.prelude.append("        " + f"{name} = {value}")
                self.floats, self.ints, self.hoisting = saved
                self.hoisted.add(node.name)
            return name
        if isinstance(node, ir.Unary):
            a = self.expr(node.arg, out, ind)
            return {"neg": f"(-{a})", "not": f"(not {a})", "abs": f"abs({a})"}[node.op]
        if isinstance(node, ir.Arith):
            a = self.expr(node.left, out, ind)
            b = self.expr(node.right, out, ind)
            return f"({a} {node.op} {b})"
        if isinstance(node, ir.Compare):
            a = self.expr(node.left, out, ind)
            b = self.expr(node.right, out, ind)
            return f"({a} {node.op} {b})"
        if isinstance(node, ir.MinMax):
            v = self.tmp("v")
            put(f"{v} = {self.expr(node.args[0], out, ind)}")
            cmp = "<" if node.op == "min" else ">"
            for arg in node.args[1:]:
                x = self.tmp("x")
                put(f"{x} = {self.expr(arg, out, ind)}")
                put(f"if {x} == {x} and ({v} != {v} or {x} {cmp} {v}):")
                put(f"{v} = {x}", 1)
            return v
        if isinstance(node, ir.Logic):
            t = self.tmp("b")
            put(f"{t} = {self.expr(node.args[0], out, ind)}")
            for arg in node.args[1:]:
                put(f"if {'' if node.op == 'and' else 'not '}{t}:")
                put(f"{t} = {self.expr(arg, out, ind + 1)}", 1)
            return t
        if isinstance(node, ir.IfElse):
            v = self.tmp("v")
            put(f"if {self.expr(node.cond, out, ind)}:")
            put(f"{v} = {self.expr(node.then, out, ind + 1)}", 1)
            put("else:")
            put(f"{v} = {self.expr(node.other, out, ind + 1)}", 1)
            return v
        if isinstance(node, ir.ItemCount):
            return "float(i1 - i0)"
        if isinstance(node, ir.Missing):
            if node.arg.type == ir.STR:
                return f"({self.code(node.arg)} == 0)"
            x = self.tmp("x")
            put(f"{x} = {self.expr(node.arg, out, ind)}")
            return f"({x} != {x})"
        if isinstance(node, ir.StrTest):
            vp = self.plan.vocab(node.arg.vocab)
            if not node.pred.timed:
                return f"(B_{vp.name}[{self.code(node.arg)}, {self.iparam(vp.bool_col(node.pred))}] != 0)"
            c = self.iparam(vp.timed_col(node.pred))
            t, cv, k = self.tmp("b"), self.tmp("c"), self.tmp("k")
            put(f"{cv} = {self.code(node.arg)}")
            put(f"{t} = False")
            put(f"for {k} in range(TF_{vp.name}.shape[2]):")
            put(f"if TF_{vp.name}[{cv}, {c}, {k}] <= now and now < TU_{vp.name}[{cv}, {c}, {k}]:", 1)
            put(f"{t} = True", 2)
            put("break", 2)
            return t
        if isinstance(node, ir.StrNum):
            vp = self.plan.vocab(node.arg.vocab)
            return f"F_{vp.name}[{self.code(node.arg)}, {self.iparam(vp.float_col(node.fn))}]"
        if isinstance(node, ir.Band):
            vp = self.plan.vocab(node.hs.vocab)
            start = self.iparam(vp.float_col(("band", node.table, node.which), width=len(node.table.origins) + 1))
            if node.origin is None:
                return f"F_{vp.name}[{self.code(node.hs)}, {start}]"
            vo = self.plan.vocab(node.origin.vocab)
            oc = self.iparam(vo.int_col(("keys", node.table.origins)))
            return f"F_{vp.name}[{self.code(node.hs)}, {start} + I_{vo.name}[{self.code(node.origin)}, {oc}]]"
        if isinstance(node, ir.PairIn):
            p = self.iparam(self.plan.pair_index(node.table))
            va, vb = self.plan.vocab(node.a.vocab), self.plan.vocab(node.b.vocab)
            ca = self.iparam(va.int_col(("keys", node.table.keys(0))))
            cb = self.iparam(vb.int_col(("keys", node.table.keys(1))))
            return (f"(PAIRS[PAIR_META[{p}, 0] + I_{va.name}[{self.code(node.a)}, {ca}] * PAIR_META[{p}, 1]"
                    f" + I_{vb.name}[{self.code(node.b)}, {cb}]] != 0)")
        if isinstance(node, ir.SameString):
            op = "!=" if node.negate else "=="
            va, vb = self.plan.vocab(node.a.vocab), self.plan.vocab(node.b.vocab)
            if va is vb:   # one vocabulary (possibly shared by both fields): equal strings, equal codes
                return f"({self.code(node.a)} {op} {self.code(node.b)})"
            ca, cb = self.iparam(va.int_col(("canon",))), self.iparam(vb.int_col(("canon",)))
            return f"(I_{va.name}[{self.code(node.a)}, {ca}] {op} I_{vb.name}[{self.code(node.b)}, {cb}])"
        if isinstance(node, ir.Quant):
            return self._quant(node, out, ind)
        raise TypeError(f"no code for IR node {type(node).__name__}")

    def _quant(self, node: ir.Quant, out: list[str], ind: int) -> str:
        pad = "    " * ind
        kind = node.kind
        v = self.tmp("b" if kind in ("any_item", "all_items") else "v")
        init = {"any_item": "False", "all_items": "True", "count_items": "0.0", "sum_items": "0.0",
                "min_item": "np.nan", "max_item": "np.nan"}[kind]
        out.append(f"{pad}{v} = {init}")
        out.append(f"{pad}for j in range(i0, i1):")
        x = self.expr(node.body, out, ind + 1)
        inner = pad + "    "
        if kind == "any_item":
            out += [f"{inner}if {x}:", f"{inner}    {v} = True", f"{inner}    break"]
        elif kind == "all_items":
            out += [f"{inner}if not {x}:", f"{inner}    {v} = False", f"{inner}    break"]
        elif kind == "count_items":
            out += [f"{inner}if {x}:", f"{inner}    {v} += 1.0"]
        elif kind == "sum_items":
            out += [f"{inner}{v} += {x}"]
        else:
            cmp = "<" if kind == "min_item" else ">"
            xt = self.tmp("x")
            out += [f"{inner}{xt} = {x}", f"{inner}if {xt} == {xt} and ({v} != {v} or {xt} {cmp} {v}):",
                    f"{inner}    {v} = {xt}"]
        return v


# A chunk function holds at most this many distinct rule shapes; bigger packs are split into chunk
# functions (one pass over the batch each) because Numba's compile time grows faster than
# linearly with a function's size. Small packs stay one pass.
CHUNK_SHAPES = 48

_LOOP_HEAD = ["    for i in range(n):",
              "        now = event_time[i]",
              "        i0 = item_offsets[i]",
              "        i1 = item_offsets[i + 1]"]


@dataclass
class _Chunk:
    """Consecutive rules compiled into one pass: their distinct shapes, in order of first appearance."""

    first: int
    last: int = -1
    shapes: dict = field(default_factory=dict)   # shape text -> (result expression, statements, [instance])


def _chunks(em_for, conditions: list[tuple[str, ir.Node]], chunk_shapes: int) -> list[tuple[_Chunk, object]]:
    """Rules split into chunks of consecutive rules with at most `chunk_shapes` distinct shapes each."""
    out: list[tuple[_Chunk, object]] = []
    for r, (_rule_id, cond) in enumerate(conditions):
        if not out:
            out.append((_Chunk(r), em_for()))
        chunk, em = out[-1]
        x, body, floats, ints = em.rule(cond)
        key = "\n".join(body) + "\n=" + x
        if key not in chunk.shapes and len(chunk.shapes) >= chunk_shapes:
            out.append((_Chunk(r), em_for()))
            chunk, em = out[-1]
            x, body, floats, ints = em.rule(cond)   # again: the new chunk hoists its own derived fields
            key = "\n".join(body) + "\n=" + x
        chunk.shapes.setdefault(key, (x, body, []))[2].append((r, floats, ints, cond))
        chunk.last = r
    return out


def _shape_blocks(chunk: _Chunk, em: _Emitter, base: int) -> list[str]:
    """Statements storing the condition of every rule of the chunk for parcel i into fired[r - first].

    One block per shape, looping over that shape's rule instances q (SHAPES[base + s] ..
    SHAPES[base + s + 1]); only the condition is generated, validity dates, hit bits, score and
    lane floor are one generic loop (_BOOKKEEPING).
    """
    lines: list[str] = []
    for s, (x, body, instances) in enumerate(chunk.shapes.values()):
        ids = ", ".join(str(r) for r, *_ in instances[:4]) + (", ..." if len(instances) > 4 else "")
        lines.append(f"        # shape {base + s}: rules {ids}")
        if len(instances) == 1:
            # A shape of one rule: straight-line code with literal constants, as cheap to compile as
            # it gets (a loop and parameter loads would cost compile time for nothing).
            r, _, _, cond = instances[0]
            x, body, _, _ = em.rule(cond, literal=True, ind=2)
            lines += [line.replace("_@", f"_{base + s}") for line in body]
            lines.append(f"        fired[{r} - first] = {x.replace('_@', f'_{base + s}')}")
        else:
            lines.append(f"        for q in range(SHAPES[{base + s}], SHAPES[{base + s + 1}]):")
            lines += [line.replace("_@", f"_{base + s}") for line in body]
            lines.append(f"            fired[SHAPE_RULE[q] - first] = {x.replace('_@', f'_{base + s}')}")
    return lines


def _binds(chunk: _Chunk, cols: dict[str, list[str]]) -> list[str]:
    """Parameter arrays and column tuples as locals, when some shape of the chunk has more than one rule."""
    if not any(len(instances) > 1 for _, _, instances in chunk.shapes.values()):
        return []
    tuples = [f"    COLS_{kind} = ({''.join(f'{kind}_{c}, ' for c in names)})" for kind, names in cols.items() if names]
    return _BIND_PARAMS + tuples


def _param_globals(parts: list[tuple[_Chunk, object]]) -> list[str]:
    """Module globals of the shape blocks: instance bounds per shape, rule per instance, PF and PI rows."""
    bounds, rules, floats, ints = [0], [], [], []
    for chunk, _ in parts:
        for _, _, instances in chunk.shapes.values():
            for r, f, i, _ in instances:
                rules.append(r)
                floats.append(f)
                ints.append(i)
            bounds.append(len(rules))
    width_f = max([1] + [len(f) for f in floats])
    width_i = max([1] + [len(i) for i in ints])
    pf = [f + [0.0] * (width_f - len(f)) for f in floats]
    pi = [i + [0] * (width_i - len(i)) for i in ints]
    return [f"SHAPES_DATA = np.array({bounds!r}, dtype=np.int64)",
            f"SHAPE_RULE_DATA = np.array({rules!r}, dtype=np.int64)",
            f"PF_DATA = np.array({pf!r}, dtype=np.float64).reshape({len(pf)}, {width_f})",
            f"PI_DATA = np.array({pi!r}, dtype=np.int64).reshape({len(pi)}, {width_i})"]


# Numba freezes a global array into the code at every place the code names it: bind each one to a
# local once per function, or a pack of n rules would carry n copies of n rows.
_BIND_PARAMS = ["    SHAPES = SHAPES_DATA", "    SHAPE_RULE = SHAPE_RULE_DATA", "    PF = PF_DATA", "    PI = PI_DATA"]


_BOOKKEEPING = [
    "        for k in range(fired.shape[0]):",
    "            r = first + k",
    "            if fired[k] and VF[r] <= now and now < VU[r]:",
    "                out_hits[i, r >> 6] |= np.uint64(1) << np.uint64(r & 63)",
    "                keep *= Q[r]",
    "                if FLOOR[r] > floor:",
    "                    floor = FLOOR[r]",
]
_LANES = [
    "        score = 1.0 - keep",
    "        lane = 0",
    "        if score >= PARAMS[1]:",
    "            lane = 2",
    "        elif score >= PARAMS[0]:",
    "            lane = 1",
    "        if floor > lane:",
    "            lane = floor",
    "        picked = False",
    "        if PARAMS[2] > 0.0:",
    "            picked = seeded_uniform(parcel_hash[i], seed) < PARAMS[2]",
    "            if picked and random_lane > lane:",
    "                lane = random_lane",
    "        out_lane[i] = lane",
    "        out_score[i] = score",
    "        out_random[i] = picked",
]
_DECORATOR = '@njit({sig}, cache=True, nogil=True, error_model="numpy", boundscheck=False)'


def generate(conditions: list[tuple[str, ir.Node]], chunk_shapes: int = CHUNK_SHAPES) -> KernelSource:
    """Kernel source for the enabled rules of a pack, in bit order (rule k -> bit k of the mask).

    `chunk_shapes` bounds the distinct rule shapes per chunk function (tests lower it to force chunks).
    """
    plan = LookupPlan()
    cols: dict[str, list[str]] = {"S": [], "N": [], "IS": [], "IN": []}
    words = max(1, (len(conditions) + 63) // 64)

    def emitter() -> _Emitter:
        em = _Emitter(plan)
        em.cols = cols                     # one set of kernel arguments for all chunks
        return em

    parts = _chunks(emitter, conditions, chunk_shapes) or [(_Chunk(0), emitter())]
    args = (["event_time", "parcel_hash", "item_offsets"]
            + [f"S_{c}" for c in cols["S"]] + [f"N_{c}" for c in cols["N"]]
            + [f"IS_{c}" for c in cols["IS"]] + [f"IN_{c}" for c in cols["IN"]]
            + plan.arg_names()
            + ["Q", "FLOOR", "VF", "VU", "PARAMS", "seed", "random_lane"])
    types = (["int64[::1]", "uint64[::1]", "int64[::1]"]
             + ["int32[::1]"] * len(cols["S"]) + ["float64[::1]"] * len(cols["N"])
             + ["int32[::1]"] * len(cols["IS"]) + ["float64[::1]"] * len(cols["IN"])
             + plan.arg_types()
             + ["float64[::1]", "int64[::1]", "int64[::1]", "int64[::1]", "float64[::1]", "uint64", "int64"])
    outputs = ["out_lane", "out_score", "out_hits", "out_random"]
    signature = f"void({', '.join(types + ['uint8[::1]', 'float64[::1]', 'uint64[:, ::1]', 'boolean[::1]'])})"
    lines = ['"""Generated by screener.rules.compiler from a rule pack\'s IR. Do not edit."""',
             "import numpy as np", "from numba import njit", "from screener.kernels.hashing import seeded_uniform",
             "", f"SIGNATURE = {signature!r}"] + _param_globals(parts)
    bases, base = [], 0
    for chunk, _ in parts:
        bases.append(base)
        base += len(chunk.shapes)
    if len(parts) == 1:
        (chunk, em), = parts
        lines += ["", "", _DECORATOR.format(sig="SIGNATURE"), f"def kernel({', '.join(args + outputs)}):",
                  "    n = event_time.shape[0]", f"    fired = np.zeros({chunk.last - chunk.first + 1}, np.bool_)",
                  "    first = 0"] + _binds(chunk, cols)
        lines += _LOOP_HEAD + em.prelude + _shape_blocks(chunk, em, 0) + ["        keep = 1.0", "        floor = 0"]
        lines += [f"        out_hits[i, {w}] = 0" for w in range(words)]
        lines += _BOOKKEEPING + _LANES
    else:
        chunk_sig = f"void({', '.join(types + ['float64[::1]', 'int64[::1]', 'uint64[:, ::1]'])})"
        lines.append(f"CHUNK_SIGNATURE = {chunk_sig!r}")
        for c, ((chunk, em), b) in enumerate(zip(parts, bases)):
            lines += ["", "", _DECORATOR.format(sig="CHUNK_SIGNATURE"),
                      f"def chunk{c}({', '.join(args)}, acc_keep, acc_floor, out_hits):",
                      f'    """Rules {chunk.first}..{chunk.last} over every parcel of the batch."""',
                      "    n = event_time.shape[0]", f"    fired = np.zeros({chunk.last - chunk.first + 1}, np.bool_)",
                      f"    first = {chunk.first}"] + _binds(chunk, cols)
            lines += _LOOP_HEAD + em.prelude + _shape_blocks(chunk, em, b)
            lines += ["        keep = acc_keep[i]", "        floor = acc_floor[i]"]
            lines += _BOOKKEEPING + ["        acc_keep[i] = keep", "        acc_floor[i] = floor"]
        lines += ["", "", _DECORATOR.format(sig="SIGNATURE"), f"def kernel({', '.join(args + outputs)}):",
                  "    n = event_time.shape[0]", "    acc_keep = np.ones(n)", "    acc_floor = np.zeros(n, np.int64)",
                  "    out_hits[:, :] = 0"]
        lines += [f"    chunk{c}({', '.join(args)}, acc_keep, acc_floor, out_hits)" for c in range(len(parts))]
        lines += ["    for i in range(n):", "        keep = acc_keep[i]", "        floor = acc_floor[i]"] + _LANES
    text = "\n".join(lines) + "\n"
    salt = f"{COMPILER_VERSION}\0{numba.__version__}\0{_HASHING_SOURCE.read_text()}\0"
    key = hashlib.sha256((salt + text).encode()).hexdigest()[:24]
    return KernelSource(text, key, len(conditions), words, cols["S"], cols["N"], cols["IS"], cols["IN"],
                        plan, signature, shapes=base)


def load_kernel(src: KernelSource, cache_dir: Path | None = None):
    """The compiled kernel of a source: from this process, from Numba's disk cache, or compiled now."""
    with _LOCK:
        if src.key in _LOADED:
            return _LOADED[src.key]
        directory = Path(cache_dir or default_cache_dir())
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"rules_kernel_{src.key}.py"
        # Never rewrite an existing file: Numba's cache index is keyed by the file's timestamp.
        if not path.exists() or path.read_text() != src.text:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(src.text)
            os.replace(tmp, path)
        name = f"screener_rules_kernel_{src.key}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)   # njit with a signature compiles (or loads) here
        _LOADED[src.key] = module.kernel
        return module.kernel
