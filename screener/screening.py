"""The screening seam: `screen(batch) -> ScreenResult`, implemented by compiled kernels, tested without a broker."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from .batch import ParcelBatch, Reason, ScreenResult


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


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve_pack_path(pack_path: str) -> str:
    """A relative pack path that does not exist from the working directory is looked up in the project."""
    p = Path(pack_path)
    if not p.is_absolute() and not p.exists() and (PROJECT_ROOT / p).exists():
        return str(PROJECT_ROOT / p)
    return pack_path


def load_screener(pack_path: str | None) -> Screener:
    """The screener for a rule pack path; falls back to the starter kernel when no pack compiler exists."""
    try:
        from .rules import load_pack_screener  # provided by the rule-language package
    except ImportError:
        load_pack_screener = None
    if load_pack_screener is not None and pack_path:
        return load_pack_screener(resolve_pack_path(pack_path))
    from .kernels.starter import StarterScreener

    return StarterScreener()
