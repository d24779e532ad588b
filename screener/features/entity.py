"""Online entity statistics: per importer, seller, declarant, HS6, origin and pairs of them, counts of parcels
seen and of inspection outcomes, and a smoothed past illicit rate.

Smoothing (a Beta prior): an entity with `k` illicit outcomes among `l` labelled parcels has rate
`(k + m * p0) / (l + m)`, the mean of the Beta(k + m p0, l - k + m (1 - p0)) posterior, where `p0` is the
global illicit rate of all outcomes seen so far (Laplace-smoothed: (K + 1) / (L + 2)) and `m` =
PRIOR_STRENGTH pseudo-outcomes: an entity with no outcomes has rate p0, and its own outcomes
outweigh the prior after about m of them.

Time order: a parcel's statistics are read before it is counted, parcels of a batch are counted in
batch order (parcel i of a batch sees parcels 0..i-1 of it), and an outcome changes statistics only
when `observe` is called, which the caller does once the outcome is visible (after the label delay).
Keys are strings in `normalise()` form, so a snapshot moves between processes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

PRIOR_STRENGTH = 10.0
# Entity kinds: name -> the key sources combined into its key (a pair when two).
ENTITY_KINDS: dict[str, tuple[str, ...]] = {
    "importer": ("consignee_id",),
    "seller": ("seller_id",),
    "declarant": ("declarant_id",),
    "hs6": ("hs6",),
    "origin": ("origin_country",),
    "office": ("destination_office",),
    "importer_hs6": ("consignee_id", "hs6"),
    "seller_hs6": ("seller_id", "hs6"),
    "declarant_importer": ("declarant_id", "consignee_id"),
    "declarant_hs6": ("declarant_id", "hs6"),
    "origin_hs6": ("origin_country", "hs6"),
    "importer_origin": ("consignee_id", "origin_country"),
}
STAT_NAMES = ("rate", "labelled", "seen")


class EntityTable:
    """Counts of one entity kind in growable arrays, one slot per distinct key."""

    def __init__(self) -> None:
        self.slot_of: dict[str, int] = {}
        self.keys: list[str] = []
        self.seen = np.zeros(1024)
        self.labelled = np.zeros(1024)
        self.illicit = np.zeros(1024)

    def __len__(self) -> int:
        return len(self.keys)

    def slots(self, keys: list[str | None]) -> np.ndarray:
        """int64 slot of each key (new keys get new zeroed slots); -1 for a missing key."""
        get = self.slot_of.get
        out = [get(k, -2) if k is not None else -1 for k in keys]
        if -2 in out:
            for i, k in enumerate(keys):
                if out[i] == -2:
                    slot = self.slot_of.get(k)
                    if slot is None:
                        slot = len(self.keys)
                        self.slot_of[k] = slot
                        self.keys.append(k)
                    out[i] = slot
            self._grow(len(self.keys))
        return np.asarray(out, dtype=np.int64)

    def _grow(self, size: int) -> None:
        if size > len(self.seen):
            cap = max(size, 2 * len(self.seen))
            for name in ("seen", "labelled", "illicit"):
                old = getattr(self, name)
                new = np.zeros(cap)
                new[:len(old)] = old
                setattr(self, name, new)


def prior_counts(slots: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions of the array hold the same slot (batch-order cumcount)."""
    n = len(slots)
    order = np.argsort(slots, kind="stable")
    s = slots[order]
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1] if n else np.zeros(0, dtype=np.int64)
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    out = np.empty(n, dtype=np.float64)
    out[order] = np.arange(n) - run_start
    return out


class EntityStats:
    """All entity kinds: statistics for a batch before counting it, outcomes applied when visible."""

    def __init__(self, kinds: dict[str, tuple[str, ...]] | None = None, retain: bool = True) -> None:
        self.kinds = dict(kinds or ENTITY_KINDS)
        self.tables = {name: EntityTable() for name in self.kinds}
        self.retain = retain
        self.parcel_slots: dict[str, np.ndarray] = {}  # parcel_id -> slot per kind, until its outcome arrives
        self.outcomes = 0.0
        self.illicit_outcomes = 0.0

    @property
    def feature_names(self) -> list[str]:
        """Names of the columns `read_and_count` returns, kind by kind."""
        return [f"{kind}_{stat}" for kind in self.kinds for stat in STAT_NAMES]

    def prior_rate(self) -> float:
        """p0: the Laplace-smoothed global illicit rate of the outcomes seen so far."""
        return (self.illicit_outcomes + 1.0) / (self.outcomes + 2.0)

    def read_and_count(self, parcel_ids: list[str], sources: dict[str, list[str | None]]) -> np.ndarray:
        """Statistics [n, kinds * 3] for a batch (rate, labelled, seen; NaN for a missing key), then count it.

        `sources` maps each key source to the batch's normalised strings (None when missing).
        """
        n = len(parcel_ids)
        out = np.full((n, 3 * len(self.kinds)), np.nan)
        p0 = self.prior_rate()
        all_slots = np.empty((n, len(self.kinds)), dtype=np.int64)
        for k, (kind, parts) in enumerate(self.kinds.items()):
            table = self.tables[kind]
            cols = [sources[p] for p in parts]
            keys = cols[0] if len(cols) == 1 else [
                None if None in vals else "\x1f".join(vals) for vals in zip(*cols)]
            slots = table.slots(keys)
            all_slots[:, k] = slots
            have = slots >= 0
            s = slots[have]
            labelled = table.labelled[s]
            out[have, 3 * k] = (table.illicit[s] + PRIOR_STRENGTH * p0) / (labelled + PRIOR_STRENGTH)
            out[have, 3 * k + 1] = labelled
            out[have, 3 * k + 2] = table.seen[s] + prior_counts(s)
            np.add.at(table.seen, s, 1.0)
        if self.retain:
            self.parcel_slots.update(zip(parcel_ids, all_slots))
        return out

    def observe(self, outcomes: Iterable[tuple[str, bool]]) -> int:
        """Apply visible outcomes (parcel_id, illicit); outcomes of parcels never counted are skipped."""
        applied = 0
        pop = self.parcel_slots.pop
        tables = list(self.tables.values())
        for pid, illicit in outcomes:
            slots = pop(pid, None)
            if slots is None:
                continue
            y = 1.0 if illicit else 0.0
            for table, slot in zip(tables, slots.tolist()):
                if slot >= 0:
                    table.labelled[slot] += 1.0
                    table.illicit[slot] += y
            self.outcomes += 1.0
            self.illicit_outcomes += y
            applied += 1
        return applied

    def snapshot(self) -> dict[str, np.ndarray]:
        """Arrays to save (keys and counts per kind, global outcome counts)."""
        out: dict[str, np.ndarray] = {"global": np.array([self.outcomes, self.illicit_outcomes])}
        for kind, t in self.tables.items():
            n = len(t)
            out[f"{kind}.keys"] = np.array(t.keys, dtype=str)
            out[f"{kind}.counts"] = np.stack([t.seen[:n], t.labelled[:n], t.illicit[:n]])
        return out

    def restore(self, arrays) -> None:
        """Load counts written by `snapshot` (kinds absent from the snapshot start empty)."""
        self.outcomes, self.illicit_outcomes = (float(x) for x in arrays["global"])
        for kind, t in self.tables.items():
            if f"{kind}.keys" not in arrays:
                continue
            keys = [str(k) for k in arrays[f"{kind}.keys"]]
            counts = arrays[f"{kind}.counts"]
            slots = t.slots(keys)
            t.seen[slots], t.labelled[slots], t.illicit[slots] = counts[0], counts[1], counts[2]
