"""Reference tables of a pack (CSV files in its reference directory), read once and tracked for the pack hash.

A table file is refused, with its path, line and column, when it is not plain UTF-8 (a Latin-1
byte, a byte-order mark that would hide in the first column name), when a quote is left open (the
csv module would read on into the next row, so a watchlisted seller would silently vanish), when
a row has more or fewer fields than the header, or when a dated row ends before it starts. Values
never legitimately span lines, so a quoted field that does is an unterminated quote.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from pathlib import Path

from screener.rules.errors import Problem
from screener.rules.ir import TIME_MAX, TIME_MIN, Entry

DAY_MS = 86_400_000
_BOM = b"\xef\xbb\xbf"


class TableError(Exception):
    """A reference table that cannot be used (missing file, unknown column, bad date)."""


class TableFileError(TableError):
    """A defect inside a table file, at a line and column; reported once per file, not per rule."""

    def __init__(self, path: Path, line: int, col: int, message: str) -> None:
        self.path, self.line, self.col, self.message = path, line, col, message
        super().__init__(f"{_shown(path)} line {line} column {col}: {message}")

    def problem(self) -> Problem:
        """The pack problem for this defect (no rule: the file is at fault, whoever reads it)."""
        return Problem(self.message, where=f"{_shown(self.path)} line {self.line} column {self.col}")


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is below it (shorter errors), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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


def _field_starts(line: str) -> list[int]:
    """0-based character offsets where the fields of one CSV line start (commas inside quotes skipped)."""
    starts, quoted = [0], False
    for k, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            starts.append(k + 1)
    return starts


def _open_quote(line: str) -> int | None:
    """1-based column of a quote this line opens and never closes, if any."""
    opened, quoted = None, False
    for k, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
            opened = k + 1 if quoted else opened
    return opened if quoted else None


def text_position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, character column) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, len(data[line_start:offset].decode("utf-8", "replace")) + 1


def read_csv(path: Path, data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) rows of a table file; raises TableFileError on any defect."""
    if data.startswith(_BOM):
        raise TableFileError(path, 1, 1, "the file starts with a UTF-8 byte-order mark (BOM), which would become "
                                         "part of the first column name; save it as UTF-8 without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = text_position(data, exc.start)
        raise TableFileError(path, line, col, f"byte 0x{data[exc.start]:02x} is not UTF-8 (a Latin-1 or "
                                              f"Windows-1252 file?); save the table as UTF-8") from None
    lines = text.splitlines()

    def fail(line: int, field: int | None, message: str, col: int | None = None):
        raw = lines[line - 1] if 0 < line <= len(lines) else ""
        if col is None:
            starts = _field_starts(raw)
            col = starts[field] + 1 if field is not None and field < len(starts) else len(raw) + 1
        return TableFileError(path, line, col, message)

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    last = 0   # physical line where the previous record ended
    try:
        for fields in reader:
            first, last = last + 1, reader.line_num
            if last > first:
                col = _open_quote(lines[first - 1]) or 1
                raise fail(first, None, f"unterminated quote: the quoted value runs on to line {last}; "
                                        "close the quote (table values never span lines)", col)
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue   # blank line
            if header is None:
                header = [f.strip() for f in fields]
                for k, name in enumerate(header):
                    if not name:
                        raise fail(first, k, f"column {k + 1} of the header has no name")
                    if name in header[:k]:
                        raise fail(first, k, f"column name {name!r} appears twice in the header")
                continue
            if len(fields) != len(header):
                more = len(fields) > len(header)
                raise fail(first, len(header) if more else len(fields),
                           f"{len(fields)} fields where the header has {len(header)} "
                           f"({'extra' if more else 'missing'} field(s); a value with a comma needs quotes)")
            rows.append((first, [f.strip() for f in fields]))
    except csv.Error as exc:
        line = last + 1
        col = _open_quote(lines[line - 1]) if 0 < line <= len(lines) else None
        what = "unterminated quote" if col else f"not valid CSV ({exc})"
        raise fail(min(line, max(len(lines), 1)), None, what, col or 1) from None
    if header is None:
        raise TableFileError(path, 1, 1, "the file is empty: a header line naming the columns is required")
    return header, rows


class Tables:
    """Lazily loaded CSV tables of one reference directory; remembers which files a pack used.

    A defective file is reported once, in `problems` (file, line, column); every later use of it
    raises TableFileError so the rules that read it fail without repeating the report.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._rows: dict[str, list[dict[str, str]]] = {}
        self._lines: dict[str, list[int]] = {}
        self._columns: dict[str, list[str]] = {}
        self._broken: dict[str, TableFileError] = {}
        self.digests: dict[str, str] = {}
        self.problems: list[Problem] = []

    def path(self, name: str) -> Path:
        """The file of table `name`."""
        return self.directory / f"{name}.csv"

    def rows(self, name: str) -> list[dict[str, str]]:
        """All rows of table `name` (file `name.csv`)."""
        if name in self._broken:
            raise self._broken[name]
        if name not in self._rows:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise TableError(f"bad table name {name!r}: letters, digits, _ and - only")
            path = self.path(name)
            if not path.is_file():
                raise TableError(f"missing reference file {path}")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise TableError(f"cannot read reference file {path}: {exc.strerror or exc}") from exc
            self.digests[name] = hashlib.sha256(data).hexdigest()
            try:
                header, rows = read_csv(path, data)
                self._columns[name] = header
                self._rows[name] = [dict(zip(header, fields)) for _, fields in rows]
                self._lines[name] = [line for line, _ in rows]
                self._check_dates(name)
            except TableFileError as exc:
                self._rows.pop(name, None)
                self._broken[name] = exc
                self.problems.append(exc.problem())
                raise
        return self._rows[name]

    def fail(self, name: str, k: int, column: str, message: str) -> TableFileError:
        """The error for row k of a table at one column (its line and character column in the file)."""
        path = self.path(name)
        line = self._lines[name][k]
        raw = path.read_bytes().decode("utf-8").splitlines()[line - 1]
        starts = _field_starts(raw)
        field = self._columns[name].index(column)
        return TableFileError(path, line, starts[field] + 1 if field < len(starts) else 1, message)

    def number(self, name: str, k: int, column: str, *, empty: float | None = None) -> float:
        """The value of row k, column `column` as a number (`empty` for an empty cell, if allowed)."""
        text = self._rows[name][k][column]
        if text == "" and empty is not None:
            return empty
        try:
            return float(text)
        except ValueError:
            exc = self.fail(name, k, column, f"{column} must be a number, got {text!r}")
        self._broken[name] = exc
        self.problems.append(exc.problem())
        raise exc

    def _check_dates(self, name: str) -> None:
        cols = self._columns[name]
        if "valid_from" not in cols and "valid_until" not in cols:
            return
        for k, row in enumerate(self._rows[name]):
            bounds = []
            for column, end in (("valid_from", False), ("valid_until", True)):
                try:
                    bounds.append(parse_time(row.get(column), end=end))
                except TableError as exc:
                    raise self.fail(name, k, column, f"{column}: {exc}") from None
            if bounds[0] >= bounds[1]:
                raise self.fail(name, k, "valid_from", f"valid_from {row['valid_from']} is after valid_until "
                                                       f"{row['valid_until']}: the row could never apply")

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
        timed = self.has_validity(name)
        out = []
        for row in self.rows(name):
            if any(row.get(k, "") != v for k, v in filters.items()) or not row[column]:
                continue
            if timed:   # dates were checked when the file was read
                out.append(Entry(row[column], parse_time(row.get("valid_from"), end=False),
                                 parse_time(row.get("valid_until"), end=True)))
            else:
                out.append(Entry(row[column]))
        return tuple(out)

    def has_validity(self, name: str) -> bool:
        """True when the table carries valid_from / valid_until columns."""
        cols = self.columns(name)
        return "valid_from" in cols or "valid_until" in cols
