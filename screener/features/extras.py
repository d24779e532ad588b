"""Fields a source carries that the parcel record lacks (e.g. a KCS declarant or tax type), looked up by parcel_id.

The backtest and training read them from the source file and hand them to the feature builder beside
the parcel records; a worker without them gets missing values (NaN), which the trees handle.
"""

from __future__ import annotations

import numpy as np

from screener.pipeline.normalise import normalise


class ExtraRows:
    """The extra fields of one batch's parcels (row -1: a parcel without extras)."""

    def __init__(self, columns: ExtraColumns, rows: np.ndarray) -> None:
        self.columns = columns
        self.rows = rows

    def strings(self, name: str) -> list[str | None]:
        """Normalised strings of a text field (None when missing)."""
        col = self.columns.text.get(name)
        if col is None:
            return [None] * len(self.rows)
        return [col[r] if r >= 0 else None for r in self.rows.tolist()]

    def numbers(self, name: str) -> np.ndarray:
        """float64 values of a numeric field (NaN when missing)."""
        col = self.columns.number.get(name)
        if col is None:
            return np.full(len(self.rows), np.nan)
        return np.where(self.rows >= 0, col[np.maximum(self.rows, 0)], np.nan)


class ExtraColumns:
    """Extra fields of many parcels, as columns, with an index by parcel_id."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.text: dict[str, list[str | None]] = {}
        self.number: dict[str, np.ndarray] = {}

    def add(self, parcel_ids: list[str], text: dict[str, list[str]], number: dict[str, list[float]]) -> None:
        """Append the extra fields of parcels (all columns the same length as parcel_ids)."""
        start = len(self.index)
        self.index.update(zip(parcel_ids, range(start, start + len(parcel_ids))))
        for name, values in text.items():
            self.text.setdefault(name, [None] * start).extend((normalise(v) or None) if v else None for v in values)
        for name, values in number.items():
            old = self.number.get(name, np.full(start, np.nan))
            self.number[name] = np.concatenate([old, np.asarray(values, dtype=np.float64)])

    def merge(self, other: ExtraColumns) -> None:
        """Append another set's parcels (a later source replayed after this one)."""
        self.add(list(other.index), other.text, {k: v.tolist() for k, v in other.number.items()})

    def rows_for(self, parcel_ids: list[str]) -> ExtraRows:
        """The extra fields of these parcels."""
        get = self.index.get
        return ExtraRows(self, np.array([get(p, -1) for p in parcel_ids], dtype=np.int64))
