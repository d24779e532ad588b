"""Repeat-offender rates (R11): smoothed past illicit rates per entity, from joined inspection outcomes.

Global, not partitioned: every worker holds all of it (outcomes are a small fraction of parcels) and builds it
from the compacted topic `outcomes-joined` (key = parcel_id, value = `encode_joined`), read from the start.

A *joined outcome* is an inspection outcome with the entities of the parcel it judged, taken from what the
screener kept of the decided parcel: `entities` maps a kind (RISK_KINDS: consignee, seller, origin, hs6,
origin_hs6) to the parcel's normalised keys of that kind (several for hs6 and origin_hs6, one per distinct item
value; `pair_key(origin, hs6)` = "cn|610910" for the pair). Empty keys are ignored; a key listed twice in one
kind counts once. Kinds not in the store's `kinds` are ignored.

Rates: an entity with `k` illicit outcomes among `l` outcomes of parcels it appears in has rate
`(k + m * p0) / (l + m)`, with m = PRIOR_STRENGTH and p0 the Laplace-smoothed global rate (K + 1) / (L + 2)
over all outcomes (each outcome counted once, whatever its entities): the formula of
screener/features/entity.py, so the worker's R11 and the model's entity features agree.

Idempotence. The store keeps, per parcel_id, what its outcome contributed (time, illicit, entity slots).
An outcome for a parcel already kept replaces it: its contribution is taken back and the new one added, so a
re-inspection, or a replay of the input after a crash, never counts a parcel twice; the last outcome observed
wins (the order of one key in Kafka, and what compaction of `outcomes-joined` keeps). An outcome identical to
the kept one (same inspected_ms, illicit and entities) changes nothing.

Retention bounds that map: W = max inspected_ms observed so far (taken with the outcome itself included). A
kept parcel with inspected_ms <= W - retention_ms is forgotten from the map, but its counts stay in the
rates; an outcome that arrives with inspected_ms <= W - retention_ms is not applied (counted in `too_old`),
since it could not be de-duplicated if it came again. So an outcome is counted once as long as its repeats
arrive less than retention_ms (default 400 days) of inspection time apart. Forgetting depends only on the
sequence of observed outcomes, never on when or how they were batched.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import orjson

from screener.features.entity import PRIOR_STRENGTH, EntityTable

RISK_KINDS = ("consignee", "seller", "origin", "hs6", "origin_hs6")
JOINED_TOPIC = "outcomes-joined"  # settings.topic(JOINED_TOPIC); compacted, key = parcel_id
DAY_MS = 86_400_000
DEFAULT_RETENTION_MS = 400 * DAY_MS
JOINED_VERSION = 1
_SLOT_BITS = 40  # a kept contribution is int64 codes (kind index << 40 | slot)


@dataclass(frozen=True, slots=True)
class JoinedOutcome:
    """An inspection outcome with the normalised entity keys of its parcel, per kind."""

    parcel_id: str
    inspected_ms: int
    illicit: bool
    entities: dict[str, list[str]]


def pair_key(a: str, b: str) -> str:
    """Key of a pair kind such as origin_hs6: "cn|610910" (parts already normalised)."""
    return f"{a}|{b}"


# The two formulas of screener/features/entity.py (EntityStats.prior_rate and read_and_count), written as
# functions here until they are shared from there.
def laplace_rate(illicit: float, labelled: float) -> float:
    """p0: the Laplace-smoothed global illicit rate."""
    return (illicit + 1.0) / (labelled + 2.0)


def smoothed_rate(illicit, labelled, p0: float):
    """Mean of the Beta posterior with PRIOR_STRENGTH pseudo-outcomes at rate p0 (scalars or arrays)."""
    return (illicit + PRIOR_STRENGTH * p0) / (labelled + PRIOR_STRENGTH)


# What a kept parcel contributed: (inspected_ms, illicit, codes), codes = sorted int64 (kind index << 40 | slot)
# as bytes: about 250 bytes a kept parcel with its map and expiry entries.
_Kept = tuple[int, bool, bytes]
_MASK = (1 << _SLOT_BITS) - 1


class RiskStats:
    """Counts per entity kind of labelled and illicit outcomes; idempotent per parcel_id within the retention."""

    def __init__(self, kinds: Iterable[str] = RISK_KINDS, retention_ms: int = DEFAULT_RETENTION_MS) -> None:
        self.kinds = tuple(kinds)
        self._kind_index = {k: i for i, k in enumerate(self.kinds)}
        self.tables = {k: EntityTable() for k in self.kinds}
        self._by_index = [self.tables[k] for k in self.kinds]
        self.retention_ms = int(retention_ms)
        self.outcomes = 0.0  # L: outcomes counted
        self.illicit_outcomes = 0.0  # K
        self.watermark_ms: int | None = None
        self.too_old = 0  # outcomes not applied: inspected before the retention horizon
        self.unreadable = 0  # records `rebuild` could not decode
        self._kept: dict[str, _Kept] = {}
        self._expiry: list[tuple[int, str]] = []  # (inspected_ms, parcel_id), stale entries skipped on pop

    @property
    def kept(self) -> int:
        """Parcels whose contribution is kept for de-duplication."""
        return len(self._kept)

    def prior_rate(self) -> float:
        """p0 over every outcome counted."""
        return laplace_rate(self.illicit_outcomes, self.outcomes)

    def _codes(self, entities: dict[str, list[str]]) -> bytes:
        codes: set[int] = set()
        for kind, keys in entities.items():
            k = self._kind_index.get(kind)
            if k is None:
                continue
            table = self.tables[kind]
            get = table.slot_of.get
            for key in keys:
                if key:
                    slot = get(key)
                    if slot is None:
                        slot = int(table.slots([key])[0])
                    codes.add((k << _SLOT_BITS) | slot)
        return array("q", sorted(codes)).tobytes()

    def _add(self, kept: _Kept, sign: float) -> None:
        y = sign if kept[1] else 0.0
        codes = array("q")
        codes.frombytes(kept[2])
        for code in codes:
            table = self._by_index[code >> _SLOT_BITS]
            slot = code & _MASK
            table.labelled[slot] += sign
            table.illicit[slot] += y
        self.outcomes += sign
        self.illicit_outcomes += y

    def _forget_until(self, horizon: int) -> None:
        heap, kept = self._expiry, self._kept
        while heap and heap[0][0] <= horizon:
            ms, pid = heapq.heappop(heap)
            entry = kept.get(pid)
            if entry is not None and entry[0] == ms:
                del kept[pid]

    def observe(self, joined: Iterable[JoinedOutcome]) -> int:
        """Apply outcomes in order; returns how many changed what is kept (new parcels and replacements).

        A replay of the outcome kept for its parcel and an outcome past the retention horizon are not applied.
        """
        applied = 0
        for o in joined:
            ms = int(o.inspected_ms)
            if self.watermark_ms is None or ms > self.watermark_ms:
                self.watermark_ms = ms
                self._forget_until(ms - self.retention_ms)
            if ms <= self.watermark_ms - self.retention_ms:
                self.too_old += 1
                continue
            new = (ms, bool(o.illicit), self._codes(o.entities))
            old = self._kept.get(o.parcel_id)
            if old == new:
                continue
            if old is not None:
                self._add(old, -1.0)
            self._add(new, 1.0)
            self._kept[o.parcel_id] = new
            if old is None or old[0] != ms:
                heapq.heappush(self._expiry, (ms, o.parcel_id))
            applied += 1
        return applied

    def rates(self, kind: str, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(rate, labelled) float64 arrays for normalised keys of one kind; a key with no outcomes has rate p0
        and labelled 0; a missing key ("" or None) has NaN for both."""
        table = self.tables[kind]
        get = table.slot_of.get
        slots = np.fromiter((get(k, -1) if k else -2 for k in keys), dtype=np.int64, count=len(keys))
        known = slots >= 0
        labelled = np.zeros(len(keys))
        illicit = np.zeros(len(keys))
        labelled[known] = table.labelled[slots[known]]
        illicit[known] = table.illicit[slots[known]]
        rate = smoothed_rate(illicit, labelled, self.prior_rate())
        missing = slots == -2
        rate[missing] = np.nan
        labelled[missing] = np.nan
        return rate, labelled

    def rebuild(self, values: Iterable[bytes | None]) -> int:
        """Observe the records of `outcomes-joined` (values in topic order); tombstones are skipped, records
        that do not decode are counted in `unreadable`. Returns how many were applied."""
        applied = 0
        for value in values:
            if not value:
                continue
            try:
                joined = decode_joined(value)
            except ValueError:
                self.unreadable += 1
                continue
            applied += self.observe((joined,))
        return applied


def encode_joined(o: JoinedOutcome) -> tuple[bytes, bytes]:
    """(key, value) of a record of `outcomes-joined`: key = parcel_id (UTF-8), value = compact JSON."""
    value = {"v": JOINED_VERSION, "parcel_id": o.parcel_id, "inspected_ms": int(o.inspected_ms),
             "illicit": bool(o.illicit), "entities": {k: list(v) for k, v in o.entities.items()}}
    return o.parcel_id.encode(), orjson.dumps(value)


def decode_joined(value: bytes) -> JoinedOutcome:
    """The joined outcome of a record written by `encode_joined`; ValueError when it is not one."""
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"joined outcome is not JSON: {exc}") from None
    if type(d) is not dict or d.get("v") != JOINED_VERSION:
        raise ValueError(f"not a version-{JOINED_VERSION} joined outcome")
    pid, ms, illicit, entities = d.get("parcel_id"), d.get("inspected_ms"), d.get("illicit"), d.get("entities")
    if type(pid) is not str or type(ms) is not int or type(illicit) is not bool or type(entities) is not dict:
        raise ValueError("joined outcome needs parcel_id (string), inspected_ms (int), illicit (bool), entities")
    for kind, keys in entities.items():
        if type(keys) is not list or not all(type(k) is str for k in keys):
            raise ValueError(f"joined outcome: entities[{kind!r}] must be a list of strings")
    return JoinedOutcome(pid, ms, illicit, entities)
