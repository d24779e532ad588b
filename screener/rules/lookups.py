"""Per-vocabulary lookup matrices: every string predicate of a pack, evaluated once per distinct string.

For each vocabulary a rule pack touches there is one row per interned string (row = code) and one
column per predicate, so a parcel's predicates over one field share a cache line. Vocabularies
only grow, so `update` evaluates predicates for `strings[seen:]` only and doubles capacity as
needed; the kernel just indexes `B[code, column]`.

Matrices per vocabulary (only those a pack needs are passed to the kernel):
  B  uint8   [rows, nb]     boolean predicates (in / prefix / keyword / only_terms without dates)
  F  float64 [rows, nf]     numbers from strings (length, word count, fx) and value-band rows
  I  int32   [rows, ni]     small integer keys: index into a band's origins / a pair table side,
                            or a pack-wide id of the string (to compare fields of two vocabularies)
  TF, TU int64 [rows, nt, K]  validity intervals [from, until) of predicates over dated lists
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from screener.pipeline.batch import Vocabularies
from screener.pipeline.normalise import normalise_many
from screener.rules.ir import BandTable, PairTable, StrFn, StrPred
from screener.rules.predicates import matcher, string_number

# Field vocabularies that are one Vocabulary object (e.g. all country fields) share one matrix.
_CANONICAL = {key: v.name for key, v in Vocabularies().items()}


def canonical_vocab(key: str) -> str:
    """Name of the Vocabulary object behind a field's vocabulary key (shared ones have one name)."""
    return _CANONICAL.get(key, key)

_EMPTY_FROM = np.iinfo(np.int64).max   # an unused interval slot: from > until, never contains t
_EMPTY_UNTIL = np.iinfo(np.int64).min


def band_value(table: BandTable, which: str, hs: str, origin: str | None) -> float:
    """Band bound for an HS code (+ origin): longest matching prefix wins, then a specific origin over '*'."""
    best, best_key = float("nan"), None
    for prefix, row_origin, lo, hi in table.rows:
        if not hs.startswith(prefix):
            continue
        if row_origin != "*" and row_origin != origin:
            continue
        key = (len(prefix), row_origin != "*")
        if best_key is None or key > best_key:
            best, best_key = (lo if which == "min" else hi), key
    return best


@dataclass
class VocabPlan:
    """The lookup columns one vocabulary needs, in column order per matrix."""

    name: str                                    # canonical vocabulary name (kernel argument suffix)
    key: str                                     # a key of Vocabularies that holds it
    bools: list = field(default_factory=list)    # StrPred
    timed: list = field(default_factory=list)    # StrPred with dates
    floats: list = field(default_factory=list)   # (spec, width): StrFn -> 1, ("band", table, which) -> K+1
    ints: list = field(default_factory=list)     # ("keys", tuple) or ("canon",)

    def _add(self, seq: list, spec) -> int:
        if spec not in seq:
            seq.append(spec)
        return seq.index(spec)

    def bool_col(self, pred: StrPred) -> int:
        """Column of a boolean predicate in B."""
        return self._add(self.bools, pred)

    def timed_col(self, pred: StrPred) -> int:
        """Column of a dated predicate in TF / TU."""
        return self._add(self.timed, pred)

    def float_col(self, spec, width: int = 1) -> int:
        """First column of a float spec in F (a band occupies one column per origin key + 1)."""
        for s, _w in self.floats:
            if s == spec:
                break
        else:
            self.floats.append((spec, width))
        start = 0
        for s, w in self.floats:
            if s == spec:
                return start
            start += w
        raise AssertionError("unreachable")

    def int_col(self, spec) -> int:
        """Column of an integer key spec in I."""
        return self._add(self.ints, spec)

    @property
    def float_width(self) -> int:
        """Number of F columns."""
        return sum(w for _, w in self.floats)


class LookupPlan:
    """Every vocabulary's columns plus static pair matrices, as the compiler laid them out."""

    def __init__(self) -> None:
        self.vocabs: dict[str, VocabPlan] = {}
        self.pairs: list[PairTable] = []

    def vocab(self, key: str) -> VocabPlan:
        """The plan of the vocabulary behind field vocabulary `key` (created on first use)."""
        name = canonical_vocab(key)
        if name not in self.vocabs:
            self.vocabs[name] = VocabPlan(name, key)
        return self.vocabs[name]

    def pair_index(self, table: PairTable) -> int:
        """Index of a pair table among the static pair matrices."""
        if table not in self.pairs:
            self.pairs.append(table)
        return self.pairs.index(table)

    def arg_names(self) -> list[str]:
        """Kernel argument names of the lookup arrays, in call order."""
        names = []
        for v in self.vocabs.values():
            if v.bools:
                names.append(f"B_{v.name}")
            if v.floats:
                names.append(f"F_{v.name}")
            if v.ints:
                names.append(f"I_{v.name}")
            if v.timed:
                names += [f"TF_{v.name}", f"TU_{v.name}"]
        if self.pairs:
            names += ["PAIRS", "PAIR_META"]
        return names

    def arg_types(self) -> list[str]:
        """Numba signature types of the lookup arrays, in call order."""
        types = []
        for v in self.vocabs.values():
            if v.bools:
                types.append("uint8[:, ::1]")
            if v.floats:
                types.append("float64[:, ::1]")
            if v.ints:
                types.append("int32[:, ::1]")
            if v.timed:
                types += ["int64[:, :, ::1]", "int64[:, :, ::1]"]
        if self.pairs:
            types += ["uint8[::1]", "int64[:, ::1]"]
        return types


def pair_matrices(tables: list[PairTable]) -> tuple[np.ndarray, np.ndarray]:
    """All pair tables as one flat uint8 array plus (offset, stride) per table.

    Side keys are indexed 1..K (0 = any value not named in the table), so cell [ia, ib] says
    whether some row matches: a row's "*" matches every index, a named value only its own.
    """
    flat, meta = [], []
    offset = 0
    for t in tables:
        ka, kb = t.keys(0), t.keys(1)
        m = np.zeros((len(ka) + 1, len(kb) + 1), dtype=np.uint8)
        for a, b in t.rows:
            rows = slice(None) if a == "*" else ka.index(a) + 1
            cols = slice(None) if b == "*" else kb.index(b) + 1
            if a == "*":
                m[:, cols] = 1
            else:
                m[rows, cols] = 1
        flat.append(m.ravel())
        meta.append((offset, m.shape[1]))
        offset += m.size
    data = np.concatenate(flat) if flat else np.zeros(0, dtype=np.uint8)
    return np.ascontiguousarray(data, dtype=np.uint8), np.asarray(meta, dtype=np.int64).reshape(-1, 2)


class _VocabState:
    """The growing matrices of one vocabulary."""

    def __init__(self, plan: VocabPlan) -> None:
        self.plan = plan
        self.seen = 0
        # Built here, when the screener is made (before a worker joins its group), not in its first
        # batch: the automaton of a million-term table takes seconds.
        self.bool_matchers = [matcher(p) for p in plan.bools]
        self.timed_matchers = [matcher(p) for p in plan.timed]
        cap = 64
        self.B = np.zeros((cap, len(plan.bools)), dtype=np.uint8)
        self.F = np.full((cap, plan.float_width), np.nan, dtype=np.float64)
        self.I = np.zeros((cap, len(plan.ints)), dtype=np.int32)
        self.TF = np.full((cap, len(plan.timed), 1), _EMPTY_FROM, dtype=np.int64)
        self.TU = np.full((cap, len(plan.timed), 1), _EMPTY_UNTIL, dtype=np.int64)

    def _grow(self, rows: int, k: int) -> None:
        cap = self.B.shape[0]
        if rows <= cap and k <= self.TF.shape[2]:
            return
        new_cap = max(cap, 64)
        while new_cap < rows:
            new_cap *= 2
        new_k = max(k, self.TF.shape[2])

        def regrow(a: np.ndarray, fill, shape) -> np.ndarray:
            out = np.full(shape, fill, dtype=a.dtype)
            out[tuple(slice(0, s) for s in a.shape)] = a
            return out

        self.B = regrow(self.B, 0, (new_cap, self.B.shape[1]))
        self.F = regrow(self.F, np.nan, (new_cap, self.F.shape[1]))
        self.I = regrow(self.I, 0, (new_cap, self.I.shape[1]))
        self.TF = regrow(self.TF, _EMPTY_FROM, (new_cap, self.TF.shape[1], new_k))
        self.TU = regrow(self.TU, _EMPTY_UNTIL, (new_cap, self.TU.shape[1], new_k))

    def update(self, strings: list[str], canon: dict[str, int]) -> int:
        """Evaluate every column for the strings added since the last update; returns how many."""
        n = len(strings)
        if n <= self.seen:
            return 0
        new = strings[self.seen:n]
        plan = self.plan
        # Predicates compare lookup forms: normalise each new string once, whatever the number of predicates.
        looked_up = normalise_many(new) if plan.bools or plan.timed else []
        # Only the strings a predicate matches cost more than a probe; the rows of the others keep the fill
        # their matrices were grown with (no match, no interval), as rows past `seen` were never written.
        spans = [{r: m.intervals_normalised(looked_up[r]) for r in m.matching(looked_up)}
                 for m in self.timed_matchers]
        k = max([1] + [len(iv) for col in spans for iv in col.values()])
        self._grow(n, k)
        lo = self.seen
        for c, m in enumerate(self.bool_matchers):
            self.B[lo:n, c] = 0
            self.B[lo + np.asarray(m.matching(looked_up), dtype=np.int64), c] = 1
        for c, col in enumerate(spans):
            for r, iv in col.items():
                for slot, (a, b) in enumerate(iv):
                    self.TF[lo + r, c, slot] = a
                    self.TU[lo + r, c, slot] = b
        start = 0
        for spec, width in plan.floats:
            if isinstance(spec, StrFn):
                self.F[lo:n, start] = [string_number(spec, s) for s in new]
            else:
                _, table, which = spec
                for j, origin in enumerate((None,) + table.origins):
                    self.F[lo:n, start + j] = [band_value(table, which, s, origin) for s in new]
            start += width
        for c, spec in enumerate(plan.ints):
            if spec[0] == "keys":
                index = {key: i + 1 for i, key in enumerate(spec[1])}
                self.I[lo:n, c] = [index.get(s, 0) for s in new]
            else:  # "canon": one id per distinct string across the pack's vocabularies
                self.I[lo:n, c] = [canon.setdefault(s, len(canon)) for s in new]
        self.seen = n
        return len(new)

    def arrays(self) -> list[np.ndarray]:
        """This vocabulary's kernel arguments, in LookupPlan.arg_names order."""
        out = []
        if self.plan.bools:
            out.append(self.B)
        if self.plan.floats:
            out.append(self.F)
        if self.plan.ints:
            out.append(self.I)
        if self.plan.timed:
            out += [self.TF, self.TU]
        return out


class LookupState:
    """The lookup arrays of one compiled pack over one worker's vocabularies."""

    def __init__(self, plan: LookupPlan) -> None:
        self.plan = plan
        self.vocabs = None   # the Vocabularies object the rows were computed for
        self.pairs, self.pair_meta = pair_matrices(plan.pairs)
        self.evaluated = 0   # strings evaluated so far (for tests and metrics)
        self._reset()

    def _reset(self) -> None:
        self.states = {name: _VocabState(p) for name, p in self.plan.vocabs.items()
                       if p.bools or p.floats or p.ints or p.timed}
        self.canon: dict[str, int] = {"": 0}

    def update(self, vocabs) -> list[np.ndarray]:
        """Bring every matrix up to date with the vocabularies; returns the kernel's lookup arguments."""
        if vocabs is not self.vocabs:
            # Codes only mean something within one Vocabularies object: start over for a new one.
            self._reset()
            self.vocabs = vocabs
        out = []
        for state in self.states.values():
            self.evaluated += state.update(vocabs[state.plan.key].strings, self.canon)
            out += state.arrays()
        if self.plan.pairs:
            out += [self.pairs, self.pair_meta]
        return out
