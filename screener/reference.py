"""Reference tables shipped with a rule pack (rules/reference/*.csv), read as plain rows."""

from __future__ import annotations

import csv
from pathlib import Path

DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parent.parent / "rules" / "reference"


def read_table(name: str, directory: str | Path | None = None) -> list[dict[str, str]]:
    """Rows of reference table `name` (file name without .csv) as dicts."""
    path = Path(directory or DEFAULT_REFERENCE_DIR) / f"{name}.csv"
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
