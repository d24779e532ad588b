"""The screening seam: `screen(batch) -> ScreenResult`, implemented by compiled kernels, tested without a broker."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from screener.pipeline.batch import ParcelBatch, Reason, ScreenResult


class Screener(Protocol):
    """A rule set compiled for a worker: screens whole batches, explains single parcels."""

    ruleset_id: str
    version: str
    hash: str

    def screen(self, batch: ParcelBatch) -> ScreenResult:
        """Lane, score, hit mask and random flag for every parcel of the batch (one kernel call)."""
        ...

    def explain(self, batch: ParcelBatch, result: ScreenResult, i: int) -> list[Reason]:
        """Reasons for parcel i: each fired rule with its contribution and triggering values."""
        ...

    def explain_many(self, batch: ParcelBatch, result: ScreenResult, rows: np.ndarray) -> list[list[Reason]]:
        """Reasons of many parcels at once (columnar; what the worker uses), in the order of `rows`."""
        ...


PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve_pack_path(pack_path: str) -> str:
    """A relative pack path that does not exist from the working directory is looked up in the project."""
    p = Path(pack_path)
    if not p.is_absolute() and not p.exists() and (PROJECT_ROOT / p).exists():
        return str(PROJECT_ROOT / p)
    return pack_path


def load_screener(pack_path: str) -> Screener:
    """The compiled screener of the rule pack at `pack_path` (relative paths also tried in the project)."""
    from screener.rules import load_pack_screener

    return load_pack_screener(resolve_pack_path(pack_path))
