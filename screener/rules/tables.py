"""Reference tables of a pack (CSV files in its reference directory), read once and tracked for the pack hash."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path

from screener.rules.ir import TIME_MAX, TIME_MIN, Entry

DAY_MS = 86_400_000


class TableError(Exception):
    """A reference table that cannot be used (missing file, unknown column, bad date)."""


def parse_time(value, *, end: bool) -> int:
    """ms since epoch of a date / datetime (TOML value or ISO text); `end` makes a date inclusive.

    A plain date as an upper bound means "through that whole day", so it becomes the next
    midnight (exclusive). A datetime upper bound is inclusive of that instant (+1 ms).
    """
    if value is None or value == "":
        return TIME_MAX if end else TIME_MIN
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise TableError(f"not a date or datetime: {text!r}") from exc
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        ms = int(value.timestamp() * 1000)
        return ms + 1 if end else ms
    if isinstance(value, dt.date):
        ms = int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp() * 1000)
        return ms + DAY_MS if end else ms
    raise TableError(f"not a date or datetime: {value!r}")


class Tables:
    """Lazily loaded CSV tables of one reference directory; remembers which files a pack used."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._rows: dict[str, list[dict[str, str]]] = {}
        self._columns: dict[str, list[str]] = {}
        self.digests: dict[str, str] = {}

    def rows(self, name: str) -> list[dict[str, str]]:
        """All rows of table `name` (file `name.csv`)."""
        if name not in self._rows:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise TableError(f"bad table name {name!r}: letters, digits, _ and - only")
            path = self.directory / f"{name}.csv"
            if not path.is_file():
                raise TableError(f"missing reference file {path}")
            data = path.read_bytes()
            self.digests[name] = hashlib.sha256(data).hexdigest()
            reader = csv.DictReader(data.decode("utf-8").splitlines())
            self._columns[name] = [c.strip() for c in (reader.fieldnames or [])]
            self._rows[name] = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
        return self._rows[name]

    def columns(self, name: str) -> list[str]:
        """Column names of table `name`."""
        self.rows(name)
        return self._columns[name]

    def require(self, name: str, *columns: str) -> None:
        """Raise TableError unless the table exists with all these columns."""
        have = self.columns(name)
        missing = [c for c in columns if c not in have]
        if missing:
            raise TableError(f"table {name!r} has no column {', '.join(map(repr, missing))} "
                             f"(columns: {', '.join(have)})")

    def entries(self, name: str, column: str, filters: dict[str, str] | None = None) -> tuple[Entry, ...]:
        """Terms of one column, filtered by column == value, with validity dates when the table has them."""
        filters = filters or {}
        self.require(name, column, *filters)
        cols = self.columns(name)
        timed = "valid_from" in cols or "valid_until" in cols
        out = []
        for n, row in enumerate(self.rows(name), start=2):
            if any(row.get(k, "") != v for k, v in filters.items()) or not row[column]:
                continue
            if timed:
                try:
                    lo = parse_time(row.get("valid_from"), end=False)
                    hi = parse_time(row.get("valid_until"), end=True)
                except TableError as exc:
                    raise TableError(f"table {name!r} line {n}: {exc}") from exc
                out.append(Entry(row[column], lo, hi))
            else:
                out.append(Entry(row[column]))
        return tuple(out)

    def has_validity(self, name: str) -> bool:
        """True when the table carries valid_from / valid_until columns."""
        cols = self.columns(name)
        return "valid_from" in cols or "valid_until" in cols
