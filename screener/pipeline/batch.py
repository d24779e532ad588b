"""The columnar batch every kernel reads: numpy columns for parcels and their items, strings as codes.

This is the contract between decoding (screener/columns.py builds it) and screening
(kernels, rule packs). Kernels take these arrays and return arrays; nothing here does I/O.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from screener.kernels.intern import MAX_CODES, intern_spans, rehash
from screener.pipeline.normalise import normalise_many

# String fields interned to int32 codes, one vocabulary per field. Code 0 is "missing / empty".
PARCEL_STRING_FIELDS = (
    "declaration_type",
    "carrier_code",
    "platform_id",
    "seller_id",
    "seller_country",
    "consignee_id",
    "consignee_name",
    "consignee_phone",
    "consignee_address",
    "origin_country",
    "departure_country",
    "destination_office",
    "currency",
)
# Float64 columns; NaN when an optional field is absent.
PARCEL_NUMBER_FIELDS = (
    "gross_weight_kg",
    "net_weight_kg",
    "declared_value",
    "freight",
    "paid_amount",
    "tax_withheld",
)
# Float64 columns filled from entity state before the kernel runs (screener/state/, the worker's state
# stage), never read from the message; NaN where no state is attached (rules test, stateless paths).
STATE_NUMBER_FIELDS = (
    "consignee_24h_count",
    "consignee_24h_value_usd",
    "consignee_year_value_usd",
    "consignee_parcels_before",
    "consignee_days_known",
    "consignee_late",
    "consignee_illicit_rate",
    "consignee_inspections",
    "seller_illicit_rate",
    "seller_inspections",
    "origin_illicit_rate",
    "hs6_illicit_rate",
    "origin_hs6_illicit_rate",
)
ITEM_STRING_FIELDS = ("hs_code", "description", "unit", "origin_country")
ITEM_NUMBER_FIELDS = ("quantity", "unit_price", "line_value")

# Vocabulary names: parcel fields by name, item fields prefixed with "item_".
VOCABULARY_NAMES = PARCEL_STRING_FIELDS + tuple("item_" + f for f in ITEM_STRING_FIELDS)
# Fields of one domain share a vocabulary, so equal strings get equal codes across them
# (origin vs departure country compare by code, an item's origin defaults to its parcel's).
SHARED_VOCABULARIES = {
    "country": ("seller_country", "origin_country", "departure_country", "item_origin_country"),
}


class Vocabulary:
    """Interns strings of one field to dense int32 codes; code 0 is the empty/missing string.

    Interning runs in Numba over byte spans (screener/kernels/intern.py), exactly (hash and bytes), so
    the fast decoder interns straight from message bytes and the reference path from Python strings,
    into the same codes. Within one vocabulary codes only grow, so anything derived per entry (a
    rule's string predicate, say) is computed incrementally for `strings[seen:]`; `strings` turns
    only new codes into Python strings, when someone reads them. Memory is bounded by replacing the
    whole Vocabularies object (see BatchProcessor), never by reusing codes.
    """

    __slots__ = ("name", "slots", "arena", "str_off", "counts", "basis", "_strings", "_normalised")

    def __init__(self, name: str) -> None:
        self.name = name
        self.slots = np.zeros(1024, dtype=np.uint32)
        self.arena = np.zeros(1 << 16, dtype=np.uint8)
        self.str_off = np.zeros(1024, dtype=np.int64)
        self.counts = np.array([1, 0], dtype=np.int64)   # codes (0 is ""), arena bytes used
        self.basis = np.uint64(int.from_bytes(os.urandom(8), "little") | 1)
        self._strings: list[str] = [""]
        self._normalised: list[str] = [""]

    def __len__(self) -> int:
        return int(self.counts[0])

    @property
    def strings(self) -> list[str]:
        """Every interned string by code (new codes are decoded from the arena on first read)."""
        have, n = len(self._strings), int(self.counts[0])
        if have < n:
            off = self.str_off[have:n + 1]
            data = self.arena[off[0]:off[-1]].tobytes()
            base = int(off[0])
            bounds = (off - base).tolist()
            self._strings.extend(data[a:b].decode("utf-8") for a, b in zip(bounds, bounds[1:]))
        return self._strings

    @property
    def normalised(self) -> list[str]:
        """The lookup form (screener/pipeline/normalise.py) of every interned string by code, each computed once."""
        strings, keys = self.strings, self._normalised
        keys.extend(normalise_many(strings[len(keys):]))
        return keys

    def nbytes(self) -> int:
        """Bytes held by the table and arena (the Python strings decoded so far not included)."""
        return self.slots.nbytes + self.arena.nbytes + self.str_off.nbytes

    def _reserve(self, values: int, nbytes: int) -> None:
        n, used = int(self.counts[0]), int(self.counts[1])
        if n - 1 + values > MAX_CODES:    # counted before de-duplication: conservative
            raise OverflowError(f"vocabulary {self.name} cannot hold over {MAX_CODES:,} strings")
        size = self.slots.shape[0]
        while (n + values) * 4 > size * 3:    # at most 3/4 full: linear probes stay short
            size *= 2
        grew = False
        if used + nbytes > self.arena.shape[0]:
            self.arena, grew = grown(self.arena, used + nbytes), True
        if n + values + 1 > self.str_off.shape[0]:
            self.str_off, grew = grown(self.str_off, n + values + 1), True
        if size != self.slots.shape[0]:
            self.slots, grew = rehash(self.arena, self.str_off, n, size, self.basis), True
        if grew:
            release_freed_heap()

    def intern_spans(self, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """int32 codes of the UTF-8 byte spans buf[starts[i]:starts[i]+lengths[i]] (length <= 0: code 0)."""
        self._reserve(len(starts), int(np.maximum(lengths, 0).sum()))
        return intern_spans(buf, starts, lengths, self.slots, self.arena, self.str_off, self.counts, self.basis)

    def intern_many(self, values: list) -> np.ndarray:
        """int32 codes for a list of strings (None counts as missing)."""
        encoded = [v.encode("utf-8", "surrogatepass") if v else b"" for v in values]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        starts = np.zeros(len(encoded), dtype=np.int64)
        if len(encoded) > 1:
            np.cumsum(lengths[:-1], out=starts[1:])
        buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return self.intern_spans(buf, starts, lengths)

    def intern(self, value: str) -> int:
        """Code of one string, adding it when new."""
        return int(self.intern_many([value])[0])


class PerCode:
    """An int32 value derived from each code of a vocabulary, computed once per code while the vocabulary
    (and whatever else the value depends on, `owner`) stays the same object.

    `compute(vocab, codes)` gives the values of new codes (distinct, ascending) in one call, so only codes
    never seen before cost Python; a new generation of vocabularies, or a new owner, starts afresh.
    """

    _UNSET = -2**31

    def __init__(self, compute) -> None:
        self._compute = compute
        self._vocab, self._owner, self._table = None, None, np.zeros(0, dtype=np.int32)

    def __call__(self, vocab: Vocabulary, codes: np.ndarray, owner=None) -> np.ndarray:
        """The value of each of `codes` (codes of `vocab`)."""
        table = self._table
        if self._vocab is not vocab or self._owner is not owner:
            table = np.zeros(0, dtype=np.int32)
        if len(table) < len(vocab):
            bigger = np.full(max(len(vocab), 2 * len(table)), self._UNSET, dtype=np.int32)
            bigger[:len(table)] = table
            table = bigger
        new = np.unique(codes[table[codes] == self._UNSET])
        if len(new):
            table[new] = self._compute(vocab, new)
        self._vocab, self._owner, self._table = vocab, owner, table
        return table[codes]


def grown(a: np.ndarray, need: int) -> np.ndarray:
    """A copy of `a` doubled in length until it holds `need` entries; the new tail is zeros."""
    # Doubling keeps growth amortised O(1); the untouched tail of np.zeros is not resident until written.
    size = max(a.shape[0], 1)
    while size < need:
        size *= 2
    out = np.zeros(size, dtype=a.dtype)
    out[:a.shape[0]] = a
    return out


def _libc_malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):    # not glibc: its allocator may return freed memory by itself
        return None


_MALLOC_TRIM = _libc_malloc_trim()


def release_freed_heap() -> None:
    """Give the heap pages freed by outgrown arrays back to the OS (glibc; elsewhere nothing to do)."""
    # glibc raises its mmap threshold to the size of each freed mmapped block (up to 32 MiB), so arrays
    # outgrown by doubling end up on the heap, and their freed pages stay resident until trimmed: ~80 MiB
    # at 10M consignees. Growth is rare (doubling), so one trim per growth costs nothing measurable.
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class Vocabularies(dict):
    """All per-field vocabularies of one worker, by name (see VOCABULARY_NAMES)."""

    def __init__(self) -> None:
        super().__init__()
        for shared, names in SHARED_VOCABULARIES.items():
            vocab = Vocabulary(shared)
            for name in names:
                self[name] = vocab
        for name in VOCABULARY_NAMES:
            if name not in self:
                self[name] = Vocabulary(name)

    def sizes(self) -> dict[str, int]:
        """Distinct strings per vocabulary (shared ones counted once), e.g. for state-size metrics."""
        return {v.name: len(v) for v in {id(v): v for v in self.values()}.values()}


class SpanStrings(Sequence):
    """Strings held as UTF-8 byte spans of one buffer, decoded only when read (no Python object per value)."""

    __slots__ = ("buf", "start", "length")

    def __init__(self, buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> None:
        self.buf, self.start, self.length = buf, start, length

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        a = int(self.start[i])
        return self.buf[a:a + int(self.length[i])].tobytes().decode("utf-8")


class NumberColumns(dict):
    """Parcel number columns by name; a state field nobody filled reads as NaN (no state attached)."""

    __slots__ = ("n",)

    def __init__(self, columns: dict, n: int) -> None:
        super().__init__(columns)
        self.n = n

    def __missing__(self, name: str) -> np.ndarray:
        if name not in STATE_NUMBER_FIELDS:
            raise KeyError(name)
        col = self[name] = np.full(self.n, np.nan)
        return col


@dataclass
class ParcelBatch:
    """Valid parcels of a batch of messages, as columns; `n` parcels, `m` items in all."""

    parcel_ids: Sequence[str]             # for the output only: a list, or SpanStrings over message bytes
    message_index: np.ndarray             # int32 [n]: which input message the parcel came from
    parcel_hash: np.ndarray               # uint64 [n]: stable 64-bit hash of parcel_id
    event_time_ms: np.ndarray             # int64 [n]: event time, ms since epoch (UTC)
    strings: dict[str, np.ndarray]        # PARCEL_STRING_FIELDS -> int32 [n]
    numbers: dict[str, np.ndarray]        # PARCEL_NUMBER_FIELDS -> float64 [n]
    item_offsets: np.ndarray              # int64 [n+1]: items of parcel i are [off[i], off[i+1])
    item_strings: dict[str, np.ndarray]   # ITEM_STRING_FIELDS -> int32 [m]
    item_numbers: dict[str, np.ndarray]   # ITEM_NUMBER_FIELDS -> float64 [m]
    vocab: Vocabularies = field(repr=False, default_factory=Vocabularies)
    source_row: np.ndarray | None = None  # int64 [n]: position among all parcels of the batch's messages
    # int64 [n]: (input offset << 24) | position in its message, strictly increasing over a partition's
    # parcels: what stateful screening applies parcels in, and recognises replays by
    seq: np.ndarray | None = None
    partition: np.ndarray | None = None   # int32 [n]: the input partition (R15 capacity is shared per partition)

    def __post_init__(self) -> None:
        if not isinstance(self.numbers, NumberColumns):
            self.numbers = NumberColumns(self.numbers, len(self.parcel_ids))

    @property
    def n(self) -> int:
        """Number of parcels."""
        return len(self.parcel_ids)

    @property
    def m(self) -> int:
        """Number of items over all parcels."""
        return int(self.item_offsets[-1]) if len(self.item_offsets) else 0

    def string_value(self, name: str, i: int) -> str:
        """Decoded string of parcel field `name` for parcel i (for explanations, not the hot path)."""
        return self.vocab[name].strings[int(self.strings[name][i])]

    def item_string_value(self, name: str, j: int) -> str:
        """Decoded string of item field `name` for item j."""
        return self.vocab["item_" + name].strings[int(self.item_strings[name][j])]


LANE_GREEN, LANE_YELLOW, LANE_RED = 0, 1, 2
LANE_NAMES = ("green", "yellow", "red")


@dataclass
class ScreenResult:
    """What a screening kernel returns for a batch of n parcels."""

    lane: np.ndarray      # uint8 [n]: 0 green, 1 yellow, 2 red
    score: np.ndarray     # float64 [n] in [0, 1]
    hits: np.ndarray      # uint64 [n, words]: bit r of the mask = rule r fired
    random: np.ndarray    # bool [n]: selected by reproducible random selection

    @staticmethod
    def empty() -> ScreenResult:
        """The result of screening no parcels."""
        return ScreenResult(np.zeros(0, np.uint8), np.zeros(0), np.zeros((0, 1), np.uint64), np.zeros(0, np.bool_))


@dataclass
class Reason:
    """One reason a parcel got its lane: a rule that fired, its contribution, the triggering values
    (numbers stay numbers) and `text`, the same worded for inspectors (screener/rules/reasons.py)."""

    rule_id: str
    contribution: float
    values: dict
    description: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        # Rounded as the wire has it, so that orjson writes the dataclass itself (fields in wire order): the
        # encoder's one call per parcel, no dict per reason.
        self.contribution = round(self.contribution, 6)

    def as_dict(self) -> dict:
        """Wire form (see docs/wire-format.md)."""
        return {"rule_id": self.rule_id, "contribution": self.contribution,
                "values": self.values, "description": self.description, "text": self.text}
