"""A rule pack that reads state fields, behind the `Screener` seam: entity state filled in, then the kernel.

`StatefulScreener` wraps the pack's compiled screener. Before the kernel runs it fills the state columns
the pack reads: repeat-offender rates from the inspection outcomes observed so far (R11,
`screener/state/risk.py`; outcomes joined to the entities kept for the parcels in `retain`), then the
consignee columns (R2 windows, R3 yearly totals, R12 first seen: `screener/state/consignee.py`)
from one `ConsigneeState`, applying the batch's parcels in their `seq` order, so a parcel's columns depend
on the parcels before it in that order and on nothing else in the batch. Parcels of one consignee must all
reach the same store: `screener backtest` replays all of history through one store; in the worker
(`remote=True`) the consignee columns come from the state partitions' answers instead, filled in before
`screen` (screener/state/lookup.py, screener/kafka/state_client.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from screener.pipeline.batch import LANE_NAMES, ParcelBatch, PerCode, Reason, ScreenResult
from screener.rules.screener import PackScreener
from screener.rules.tables import Tables
from screener.state.capacity import CapacityCounters, demote
from screener.state.consignee import ConsigneeState
from screener.state.risk import JoinedOutcome, RiskStats, pair_key

# The state columns a ConsigneeState computes (the other STATE_NUMBER_FIELDS come from outcomes).
CONSIGNEE_FIELDS = ("consignee_24h_count", "consignee_24h_value_usd", "consignee_year_value_usd",
                    "consignee_parcels_before", "consignee_days_known", "consignee_late")

# Repeat-offender columns (R11) from inspection outcomes: parcel-level kinds, then item-level ones (max over items).
RISK_FIELDS = {"consignee_illicit_rate": "consignee", "consignee_inspections": "consignee",
               "seller_illicit_rate": "seller", "seller_inspections": "seller", "origin_illicit_rate": "origin",
               "hs6_illicit_rate": "hs6", "origin_hs6_illicit_rate": "origin_hs6"}
_PARCEL_KEYS = {"consignee": "consignee_id", "seller": "seller_id", "origin": "origin_country"}


def state_fields(screener: PackScreener) -> list[str]:
    """The state fields the pack's enabled rules read (empty for a stateless pack)."""
    from screener.pipeline.batch import STATE_NUMBER_FIELDS

    return [c for c in screener.source.parcel_numbers if c in STATE_NUMBER_FIELDS]


def reads_outcomes(screener: PackScreener) -> bool:
    """Whether the pack reads repeat-offender rates (R11), learned from inspection outcomes."""
    return any(f in RISK_FIELDS for f in state_fields(screener))


def needs_state(screener: PackScreener) -> bool:
    """Whether the pack reads state fields or limits selections by capacity (R15)."""
    return bool(state_fields(screener)) or any(screener.pack.capacity_per_hour)


CAPACITY_DESCRIPTION = "inspection capacity: near the hourly limit, the lowest-scored selections are demoted"


@dataclass
class StateScreenResult(ScreenResult):
    """A screening result after capacity control: which parcels were demoted, from which lane, how full it was."""

    demoted: np.ndarray | None = None     # bool [n]
    selected: np.ndarray | None = None    # uint8 [n]: the lane before demotion
    used: np.ndarray | None = None        # int64 [n]: selections already made in that lane and hour


def usd_rates(screener: PackScreener) -> dict[str, float]:
    """USD per unit of each currency in the pack's fx.csv (the rate value_usd uses)."""
    tables = Tables(screener.pack.reference_dir)
    return {row["currency"]: tables.number("fx", k, "usd_per_unit") for k, row in enumerate(tables.rows("fx"))}


class StatefulScreener:
    """The pack's screener with consignee state columns filled before each kernel call."""

    in_input_order = True     # BatchProcessor screens a batch's messages in input order (state depends on it)

    def __init__(self, rules: PackScreener, store: ConsigneeState | None = None, risk: RiskStats | None = None,
                 retain=None, capacity_shares: int = 1, keep_selected: bool = False, remote: bool = False) -> None:
        """`retain`: parcel ids whose entities to keep until their outcome is observed (a container; None: none).
        `capacity_shares`: how many input partitions split the pack's hourly capacity (each limits its share).
        `keep_selected`: collect the facts of selected parcels for `take_selected` (the worker's outcome join).
        `remote`: the consignee columns are filled in by the caller (the worker asks the state partitions)."""
        self.rules = rules
        self.risk = risk if risk is not None else RiskStats()
        self.retain = retain
        self._facts: dict[str, dict[str, list[str]]] = {}
        self.ruleset_id, self.version, self.hash = rules.ruleset_id, rules.version, rules.hash
        self.rule_ids = rules.rule_ids
        self.remote = remote
        self.store = None if remote else store if store is not None else ConsigneeState()   # empty: falsy
        self.fields = state_fields(rules)
        self._usd = usd_rates(rules)
        self._seq = 0
        self._changed: list[np.ndarray] = []     # store slots changed since take_changed()
        self.keep_selected = keep_selected
        self._selected: list[tuple[str, int, dict[str, list[str]]]] = []
        # Each input partition limits its share of the capacity, rounded up, in the order of its own parcels.
        self.capacity = -(-np.array(rules.pack.capacity_per_hour, dtype=np.int64) // max(capacity_shares, 1))
        self.near = rules.pack.capacity_near
        self.counters: dict[int, CapacityCounters] = {}   # by input partition (-1: no partition given)
        self._hs6: tuple[object, list[str]] = (None, [])   # HS6 of each item_hs_code code, grown with the vocabulary
        self._slots = PerCode(self._store_slots)    # store slot of each consignee code: _consignee_slots

    def _entity_codes(self, batch: ParcelBatch, kinds) -> dict[str, tuple[np.ndarray, list[str]]]:
        """Per risk kind of `kinds`: (codes, normalised key of each code); hs6 kinds per item."""
        out = {}
        for kind, field in _PARCEL_KEYS.items():
            if kind in kinds:
                out[kind] = (batch.strings[field], batch.vocab[field].normalised)
        if "hs6" in kinds:
            hs = batch.item_strings["hs_code"]
            vocab = batch.vocab["item_hs_code"]
            if self._hs6[0] is not vocab:        # a new generation of vocabularies
                self._hs6 = (vocab, [])
            hs_keys = self._hs6[1]
            hs_keys.extend(k[:6] for k in vocab.normalised[len(hs_keys):])
            out["hs6"] = (hs, hs_keys)
        return out

    def _fill_risk(self, batch: ParcelBatch) -> None:
        wanted = [f for f in self.fields if f in RISK_FIELDS]
        if not wanted:
            return
        kinds = {RISK_FIELDS[f] for f in wanted}
        ents = self._entity_codes(batch, kinds | ({"origin", "hs6"} if "origin_hs6" in kinds else set()))
        parent = np.repeat(np.arange(batch.n), np.diff(batch.item_offsets))
        rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}    # kind: (rate, labelled) per parcel or item
        for kind in kinds:           # once per kind, though a pack may read its rate and its count
            if kind == "origin_hs6":
                origin_codes, origin_keys = ents["origin"]
                hs_codes, hs_keys = ents["hs6"]
                # One key per distinct (origin, HS6 code) pair of the batch, not one per item.
                width = len(hs_keys)
                distinct, inverse = np.unique(origin_codes[parent].astype(np.int64) * width + hs_codes,
                                              return_inverse=True)
                keys = [pair_key(origin_keys[o], hs_keys[h]) if origin_keys[o] and hs_keys[h] else ""
                        for o, h in zip((distinct // width).tolist(), (distinct % width).tolist())]
            else:
                codes, names = ents[kind]
                distinct, inverse = np.unique(codes, return_inverse=True)
                keys = [names[c] for c in distinct.tolist()]
            rate, labelled = self.risk.rates(kind, keys)
            rows[kind] = (rate[inverse], labelled[inverse])
        for name in wanted:
            kind = RISK_FIELDS[name]
            values = rows[kind][1 if name.endswith("_inspections") else 0]
            if kind in ("hs6", "origin_hs6"):       # an item-level rate: the parcel's highest
                col = np.full(batch.n, np.nan)
                np.fmax.at(col, parent, values)
                values = col
            batch.numbers[name] = np.ascontiguousarray(values, dtype=np.float64)

    def _facts_of(self, batch: ParcelBatch, rows: list[int]) -> list[dict[str, list[str]]]:
        """Normalised entity keys per risk kind of parcels `rows` (what an outcome is joined to)."""
        ents = self._entity_codes(batch, ("consignee", "seller", "origin", "hs6"))
        off = batch.item_offsets.tolist()
        out = []
        for i in rows:
            facts = {kind: [ents[kind][1][int(ents[kind][0][i])]] for kind in _PARCEL_KEYS}
            hs6 = sorted({ents["hs6"][1][c] for c in ents["hs6"][0][off[i]:off[i + 1]].tolist()} - {""})
            facts["hs6"] = hs6
            facts["origin_hs6"] = [pair_key(facts["origin"][0], h) for h in hs6] if facts["origin"][0] else []
            out.append(facts)
        return out

    def _keep_facts(self, batch: ParcelBatch) -> None:
        """Entities of the parcels whose outcome will come (the join an outcome needs)."""
        rows = [i for i, pid in enumerate(batch.parcel_ids) if pid in self.retain]
        for i, facts in zip(rows, self._facts_of(batch, rows)):
            self._facts[batch.parcel_ids[i]] = facts

    def _collect_selected(self, batch: ParcelBatch, lane: np.ndarray) -> None:
        """Facts of the parcels selected for inspection (final lane yellow or red), for take_selected()."""
        rows = np.flatnonzero(lane > 0).tolist()
        if rows:
            ids, times = batch.parcel_ids, batch.event_time_ms
            self._selected += [(ids[i], int(times[i]), f) for i, f in zip(rows, self._facts_of(batch, rows))]

    def take_selected(self) -> list[tuple[str, int, dict[str, list[str]]]]:
        """(parcel_id, event_ms, entities) of the parcels selected since the last call."""
        out, self._selected = self._selected, []
        return out

    def observe(self, outcomes) -> int:
        """Apply visible outcomes (parcel_id, illicit, inspected_ms) of kept parcels to the R11 rates."""
        joined = []
        for pid, illicit, inspected_ms in outcomes:
            facts = self._facts.pop(pid, None)
            if facts is not None:
                joined.append(JoinedOutcome(pid, int(inspected_ms), bool(illicit), facts))
        return self.risk.observe(joined)

    def fill(self, batch: ParcelBatch, seq: np.ndarray | None = None) -> None:
        """Apply the batch's parcels to the store in `seq` order (default `batch.seq`, set by the processor from
        input offsets, so a message retried or replayed is recognised and not counted twice)."""
        if batch.n == 0:
            return
        if self.retain:
            self._keep_facts(batch)
        self._fill_risk(batch)
        if self.remote or not self.consignee_state:
            return
        if seq is None:
            seq = batch.seq
        if seq is None:
            seq = np.arange(self._seq, self._seq + batch.n, dtype=np.int64)
            self._seq += batch.n
        order = np.argsort(seq, kind="stable")
        slots = self._consignee_slots(batch)[order]
        cols = self.store.apply(slots, seq[order], batch.event_time_ms[order], self.value_usd(batch)[order],
                                batch.parcel_hash[order])
        self._changed.append(self.store.changed_slots.copy())
        for name in CONSIGNEE_FIELDS:
            out = np.empty(batch.n)
            out[order] = cols[name]
            batch.numbers[name] = out

    @property
    def consignee_state(self) -> bool:
        """Whether the pack reads consignee columns (R2, R3, R12): the state partitions are asked for them."""
        return any(f in CONSIGNEE_FIELDS for f in self.fields)

    def value_usd(self, batch: ParcelBatch) -> np.ndarray:
        """Each parcel's declared value in USD (NaN for a currency the pack has no rate for)."""
        currency_codes = batch.strings["currency"]
        per_code = np.array([self._usd.get(c, np.nan) for c in batch.vocab["currency"].strings])
        return batch.numbers["declared_value"] * per_code[currency_codes]

    def _consignee_slots(self, batch: ParcelBatch) -> np.ndarray:
        """The store slot of each parcel's consignee; a vocabulary code is looked up in the store once (a slot
        lasts while the store's vocabulary does: a compaction replaces it)."""
        codes = batch.strings["consignee_id"]       # read first: reading the column interns it
        return self._slots(batch.vocab["consignee_id"], codes, self.store.vocab)

    def _store_slots(self, vocab, codes: np.ndarray) -> np.ndarray:
        keys = vocab.normalised
        return self.store.slots_of([keys[c] for c in codes.tolist()])

    def take_changed(self) -> np.ndarray:
        """Store slots changed since the last call (distinct): the entities to write to the changelog."""
        changed = np.unique(np.concatenate(self._changed)) if self._changed else np.zeros(0, dtype=np.int64)
        self._changed = []
        return changed[changed >= 0]

    def screen(self, batch: ParcelBatch) -> ScreenResult:
        """State columns filled, the pack's kernel over the batch, then capacity control (R15)."""
        self.fill(batch)
        result = self.rules.screen(batch)
        if not self.capacity.any() or batch.n == 0:
            if self.keep_selected and batch.n:
                self._collect_selected(batch, result.lane)
            return result
        seq = batch.seq if batch.seq is not None else np.arange(batch.n)
        order = np.argsort(seq, kind="stable")
        fired = np.unpackbits(np.ascontiguousarray(result.hits).view(np.uint8), axis=1,
                              bitorder="little")[:, :len(self.rules.rules)].astype(bool)
        floors = np.where(fired, self.rules.floor[None, :], 0).max(axis=1, initial=0).astype(np.uint8)
        hour = batch.event_time_ms // 3_600_000
        out = StateScreenResult(result.lane.copy(), result.score, result.hits, result.random,
                                np.zeros(batch.n, dtype=np.bool_), result.lane.copy(), np.zeros(batch.n, np.int64))
        partition = batch.partition if batch.partition is not None else np.full(batch.n, -1, np.int32)
        for p in np.unique(partition).tolist():
            rows = order[partition[order] == p]
            counters = self.counters.setdefault(p, CapacityCounters())
            new_lane, demoted, used = demote(result.lane[rows], result.score[rows], floors[rows], result.random[rows],
                                             hour[rows], counters, self.capacity, self.near)
            out.lane[rows], out.demoted[rows], out.used[rows] = new_lane, demoted, used
        if self.keep_selected:
            self._collect_selected(batch, out.lane)
        return out

    def explain(self, batch: ParcelBatch, result: ScreenResult, i: int) -> list[Reason]:
        """Reasons of parcel i (state fields explained with their values like any field)."""
        return self.explain_many(batch, result, np.array([i]))[0]

    def explain_many(self, batch: ParcelBatch, result: ScreenResult, rows: np.ndarray) -> list[list[Reason]]:
        """Reasons of many parcels at once (columnar), then R15_CAPACITY for a demoted parcel."""
        out = self.rules.explain_many(batch, result, rows)
        demoted = getattr(result, "demoted", None)
        if demoted is None:
            return out
        for pos, i in enumerate(np.asarray(rows).reshape(-1).tolist()):
            if demoted[i]:
                was, now = LANE_NAMES[int(result.selected[i])], LANE_NAMES[int(result.lane[i])]
                cap, used = int(self.capacity[int(result.selected[i])]), int(result.used[i])
                values = {"selected_lane": was, "lane": now, "used": used, "capacity_per_hour": cap,
                          "near": self.near}
                text = (f"{CAPACITY_DESCRIPTION}: {was} lane holds {used:,} of {cap:,} selections this hour; "
                        f"score {float(result.score[i]):.2f} is under the bar, so {was} became {now}")
                out[pos].append(Reason("R15_CAPACITY", 0.0, values, CAPACITY_DESCRIPTION, text))
        return out
