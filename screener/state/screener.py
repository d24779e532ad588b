"""A rule pack that reads state fields, behind the `Screener` seam: consignee state filled in, then the kernel.

`StatefulScreener` wraps the pack's compiled screener. Before the kernel runs it fills the consignee
state columns the pack reads (R2 windows, R3 yearly totals, R12 first seen: `screener/state/consignee.py`)
from one `ConsigneeState`, applying the batch's parcels in their `seq` order, so a parcel's columns depend
on the parcels before it in that order and on nothing else in the batch. Parcels of one consignee must all
reach the same store: `screener backtest` replays all of history through one store; the worker will need
parcels re-keyed by consignee first (docs/architecture.md, "State"), and refuses state fields until then.
"""

from __future__ import annotations

import numpy as np

from screener.pipeline.batch import ParcelBatch, Reason, ScreenResult
from screener.pipeline.normalise import normalise
from screener.rules.screener import PackScreener
from screener.rules.tables import Tables
from screener.state.consignee import ConsigneeState

# The state columns a ConsigneeState computes (the other STATE_NUMBER_FIELDS come from outcomes).
CONSIGNEE_FIELDS = ("consignee_24h_count", "consignee_24h_value_usd", "consignee_year_value_usd",
                    "consignee_parcels_before", "consignee_days_known", "consignee_late")


def state_fields(screener: PackScreener) -> list[str]:
    """The state fields the pack's enabled rules read (empty for a stateless pack)."""
    from screener.pipeline.batch import STATE_NUMBER_FIELDS

    return [c for c in screener.source.parcel_numbers if c in STATE_NUMBER_FIELDS]


def usd_rates(screener: PackScreener) -> dict[str, float]:
    """USD per unit of each currency in the pack's fx.csv (the rate value_usd uses)."""
    tables = Tables(screener.pack.reference_dir)
    return {row["currency"]: tables.number("fx", k, "usd_per_unit") for k, row in enumerate(tables.rows("fx"))}


class StatefulScreener:
    """The pack's screener with consignee state columns filled before each kernel call."""

    def __init__(self, rules: PackScreener, store: ConsigneeState | None = None) -> None:
        self.rules = rules
        self.ruleset_id, self.version, self.hash = rules.ruleset_id, rules.version, rules.hash
        self.rule_ids = rules.rule_ids
        self.store = store or ConsigneeState()
        self.fields = state_fields(rules)
        self._usd = usd_rates(rules)
        self._seq = 0
        self._keys: dict[int, list[str]] = {}   # per vocabulary object: normalised key of each code

    def _normalised(self, batch: ParcelBatch) -> list[str]:
        vocab = batch.vocab["consignee_id"]
        keys = self._keys.setdefault(id(vocab), [""])
        if len(self._keys) > 4:                 # vocabularies are replaced in generations: keep the latest
            self._keys = {id(vocab): keys}
        strings = vocab.strings
        keys.extend(normalise(s) for s in strings[len(keys):])
        return keys

    def fill(self, batch: ParcelBatch, seq: np.ndarray | None = None) -> None:
        """Apply the batch's parcels to the store in `seq` order (default `batch.seq`, set by the processor from
        input offsets, so a message retried or replayed is recognised and not counted twice)."""
        if batch.n == 0 or not any(f in CONSIGNEE_FIELDS for f in self.fields):
            return
        if seq is None:
            seq = batch.seq
        if seq is None:
            seq = np.arange(self._seq, self._seq + batch.n, dtype=np.int64)
            self._seq += batch.n
        codes = batch.strings["consignee_id"].tolist()     # codes before names (interned on first read)
        keys = self._normalised(batch)
        currency_codes = batch.strings["currency"]
        per_code = np.array([self._usd.get(c, np.nan) for c in batch.vocab["currency"].strings])
        rate = per_code[currency_codes]
        order = np.argsort(seq, kind="stable")
        slots = self.store.slots_of([keys[codes[i]] for i in order.tolist()])
        cols = self.store.apply(slots, seq[order], batch.event_time_ms[order],
                                (batch.numbers["declared_value"] * rate)[order], batch.parcel_hash[order])
        for name in CONSIGNEE_FIELDS:
            out = np.empty(batch.n)
            out[order] = cols[name]
            batch.numbers[name] = out

    def screen(self, batch: ParcelBatch) -> ScreenResult:
        """State columns filled, then the pack's kernel over the batch."""
        self.fill(batch)
        return self.rules.screen(batch)

    def explain(self, batch: ParcelBatch, result: ScreenResult, i: int) -> list[Reason]:
        """Reasons of parcel i (state fields explained with their values like any field)."""
        return self.rules.explain(batch, result, i)

    def explain_many(self, batch: ParcelBatch, result: ScreenResult, rows: np.ndarray) -> list[list[Reason]]:
        """Reasons of many parcels at once (columnar)."""
        return self.rules.explain_many(batch, result, rows)
