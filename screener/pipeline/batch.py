"""The columnar batch every kernel reads: numpy columns for parcels and their items, strings as codes.

This is the contract between decoding (screener/columns.py builds it) and screening
(kernels, rule packs). Kernels take these arrays and return arrays; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_

import numpy as np

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

    The vocabulary only grows, so anything derived per entry (a rule's string predicate, say)
    can be computed incrementally for `strings[seen:]` and read by kernels as a lookup array.
    """

    __slots__ = ("name", "codes", "strings")

    def __init__(self, name: str) -> None:
        self.name = name
        # None maps to the missing code too, so a column with absent values interns in one C-level map.
        self.codes: dict = {"": 0, None: 0}
        self.strings: list[str] = [""]

    def __len__(self) -> int:
        return len(self.strings)

    def intern(self, value: str) -> int:
        """Code of one string, adding it when new."""
        code = self.codes.get(value)
        if code is None:
            code = len(self.strings)
            self.codes[value] = code
            self.strings.append(value)
        return code

    def intern_many(self, values: list) -> np.ndarray:
        """int32 codes for a list of strings (None counts as missing)."""
        codes = self.codes
        out = list(map(codes.get, values))
        if None in out:
            # New strings: add them in bulk (dict.fromkeys keeps first-seen order, drops repeats),
            # then map again; both steps run in C, unlike one intern() call per value.
            new = list(dict.fromkeys(compress(values, map(is_, out, repeat(None)))))
            start = len(self.strings)
            codes.update(zip(new, range(start, start + len(new))))
            self.strings.extend(new)
            out = list(map(codes.get, values))
        return np.asarray(out, dtype=np.int32)


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


@dataclass
class ParcelBatch:
    """Valid parcels of a batch of messages, as columns; `n` parcels, `m` items in all."""

    parcel_ids: list[str]                 # kept as strings for the output only
    manifest_ids: list[str]               # per parcel
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


@dataclass
class Reason:
    """One reason a parcel got its lane: a rule that fired, its contribution, the triggering values
    (numbers stay numbers) and `text`, the same worded for inspectors (screener/rules/reasons.py)."""

    rule_id: str
    contribution: float
    values: dict
    description: str = ""
    text: str = ""

    def as_dict(self) -> dict:
        """Wire form (see docs/wire-format.md)."""
        return {"rule_id": self.rule_id, "contribution": round(self.contribution, 6),
                "values": self.values, "description": self.description, "text": self.text}
