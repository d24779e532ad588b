"""`screener inspect`: publish inspection outcomes to the `inspections` topic, one from flags or a file of them.

    screener inspect --parcel-id P --illicit|--clean [--inspected-at T] [--lane red] [--revenue X] ...
    screener inspect FILE|-          # JSONL (or any JSON documents `screener publish` reads) or CSV with a header

Every record is checked by the worker's own validation (screener/pipeline/outcomes.py) before anything is
sent; a file with one bad record is refused whole, with one error line naming the line and the problem.
JSON records are published as they are written; a CSV row or the flags become a JSON object of the given
fields (empty cells are absent). Key = parcel_id.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import sys
from collections import Counter
from dataclasses import dataclass

import click
import orjson

from screener.pipeline.outcomes import FIELDS, LANES, REQUIRED_FIELDS, Outcome, decode_outcome
from screener.settings import Settings

TOPIC_NAME = "inspections"
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_CSV_NUMBERS = ("revenue",)


@dataclass(frozen=True, slots=True)
class Record:
    """One outcome ready to send: where it came from (for errors), its key and its bytes."""

    where: str
    key: bytes
    value: bytes


class InputError(ValueError):
    """A record that cannot be published; the message names where it is."""


def check(where: str, value: bytes) -> Record:
    """The record if `value` is a valid outcome, else InputError naming `where` (if any) and the problem."""
    result = decode_outcome(value)
    if type(result) is not Outcome:
        raise InputError(f"{where + ': ' if where else ''}{result.message} ({result.reason})")
    return Record(where, result.parcel_id.encode(), value)


def json_records(data: bytes) -> tuple[list[Record], str]:
    """Records of JSON input (what `screener publish` reads: JSONL, pretty-printed documents or an array) and
    its shape: JSONL when every record is one line, else JSON."""
    from screener.kafka.publisher import FeedError, documents

    records = []
    elements: Counter = Counter()
    shapes: Counter = Counter()
    try:
        for doc in documents(io.BytesIO(data)):
            shapes[doc.shape] += 1
            where = f"line {doc.line}"
            if doc.shape == "array element":
                elements[doc.line] += 1
                where += f" (array element {elements[doc.line]})"
            records.append(check(where, doc.data))
    except FeedError as exc:
        raise InputError(str(exc)) from None
    return records, "JSONL" if set(shapes) == {"line"} else "JSON"


def csv_value(name: str, cell: str, where: str) -> object:
    """A CSV cell as the JSON value of field `name`."""
    if name == "illicit":
        flag = BOOLEANS.get(cell.strip().lower())
        if flag is None:
            raise InputError(f"{where}: `illicit` must be one of true/false/1/0/yes/no, got {cell!r:.60}")
        return flag
    if name in _CSV_NUMBERS:
        try:
            return float(cell)
        except ValueError:
            raise InputError(f"{where}: `{name}` must be a number, got {cell!r:.60}") from None
    if name == "schema_version" or (name == "inspected_at" and cell.isascii() and cell.isdigit()):
        try:
            return int(cell)  # epoch milliseconds; schema_version 1
        except ValueError:
            raise InputError(f"{where}: `{name}` must be an integer, got {cell!r:.60}") from None
    return cell


def csv_records(data: bytes) -> list[Record]:
    """Records of CSV input with a header of field names; booleans true/false/1/0/yes/no, empty cell = absent."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise InputError("no CSV header")
        names = [h.strip() for h in header]
        unknown = [n for n in names if n not in FIELDS]
        if unknown:
            raise InputError(f"line 1: unknown column {unknown[0]!r} (columns are {', '.join(FIELDS)})")
        missing = [n for n in REQUIRED_FIELDS if n not in names]
        if missing:
            raise InputError(f"line 1: the header has no {missing[0]!r} column")
        repeated = [n for n, c in Counter(names).items() if c > 1]
        if repeated:
            raise InputError(f"line 1: column {repeated[0]!r} appears twice")
        records = []
        start = reader.line_num + 1
        for row in reader:
            where, start = f"line {start}", reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                raise InputError(f"{where}: {len(row)} cells, the header has {len(names)}")
            obj = {n: csv_value(n, cell, where) for n, cell in zip(names, row) if cell != ""}
            records.append(check(where, orjson.dumps(obj)))
    except csv.Error as exc:
        raise InputError(f"line {reader.line_num}: not CSV ({exc})") from None
    return records


def read_records(data: bytes, fmt: str) -> tuple[list[Record], str]:
    """Records of a whole input and the format it was read as (JSONL, JSON or CSV); `fmt` auto sniffs."""
    if fmt == "auto":
        fmt = "json" if data.lstrip()[:1] in (b"{", b"[") else "csv"
    if fmt == "csv":
        return csv_records(data), "CSV"
    return json_records(data)


def now_iso() -> str:
    """The current time as ISO 8601 UTC with milliseconds, e.g. 2026-11-11T00:21:00.412Z."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def send(bootstrap: list[str], topic: str, records: list[Record]) -> int:
    """Send every record (key = parcel_id) and wait for all acknowledgements."""
    from screener.kafka.publisher import Publisher

    async with Publisher(bootstrap, topic) as pub:
        for r in records:
            await pub.send(r.value, key=r.key)
    return pub.messages


@click.command("inspect")
@click.argument("source", required=False, type=click.Path(allow_dash=True, dir_okay=False, exists=True))
@click.option("--broker", default=None,
              help="Kafka bootstrap servers, kafka://host:port[,host:port] (env SCREENER_BROKER).")
@click.option("--topic-prefix", default=None, help="Prefix of all topic names (env SCREENER_TOPIC_PREFIX).")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "csv"]), default="auto", show_default=True,
              help="Format of FILE (auto: JSON when it starts with { or [, else CSV).")
@click.option("--parcel-id", default=None, help="The inspected parcel (one outcome from flags, without FILE).")
@click.option("--illicit/--clean", "illicit", default=None, help="What the inspection found.")
@click.option("--inspected-at", default=None, help="ISO 8601 time or epoch milliseconds (default: now).")
@click.option("--lane", type=click.Choice(LANES), default=None, help="The lane the parcel was inspected in.")
@click.option("--revenue", type=float, default=None, help="Duty or penalty recovered (>= 0).")
@click.option("--finding-code", default=None, help="Finding code, e.g. UNDERVALUED (at most 64 characters).")
@click.option("--note", default=None, help="Free text (at most 1024 characters).")
@click.option("--manifest-id", default=None, help="The parcel's manifest.")
def inspect(source: str | None, broker: str | None, topic_prefix: str | None, fmt: str, parcel_id: str | None,
            illicit: bool | None, inspected_at: str | None, lane: str | None, revenue: float | None,
            finding_code: str | None, note: str | None, manifest_id: str | None) -> None:
    """Publish inspection outcomes: one from --parcel-id and --illicit/--clean, or FILE (- for stdin) of them.

    FILE is JSONL (one outcome object a line; pretty-printed documents and arrays work too) or CSV with a
    header naming the fields (illicit as true/false/1/0/yes/no; empty cell = absent). Every record is
    validated first; one bad record refuses the whole file and nothing is sent.
    """
    from aiokafka.errors import KafkaConnectionError

    from screener.kafka.connectivity import quiet_client_logs, unreachable_message

    try:
        settings = Settings.load({"broker": broker, "topic_prefix": topic_prefix})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    flags = {"inspected_at": inspected_at, "lane": lane, "revenue": revenue, "finding_code": finding_code,
             "note": note, "manifest_id": manifest_id}
    if source is not None:
        given = [f"--{n.replace('_', '-')}" for n, v in {"parcel_id": parcel_id, "illicit": illicit, **flags}.items()
                 if v is not None]
        if given:
            raise click.UsageError(f"give FILE or --parcel-id with its flags, not both ({', '.join(given)})")
        name = "stdin" if source == "-" else source
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as fh:
                data = fh.read()
        try:
            records, shape = read_records(data, {"jsonl": "json"}.get(fmt, fmt))
        except InputError as exc:
            raise click.ClickException(f"{name}: {exc}; nothing was published") from None
        if not records:
            raise click.ClickException(f"{name}: no outcomes; nothing was published")
    else:
        if parcel_id is None or illicit is None:
            raise click.UsageError("give FILE, or --parcel-id and --illicit or --clean")
        when: object = inspected_at if inspected_at is not None else now_iso()
        if isinstance(when, str) and when.isascii() and when.isdigit():
            when = int(when)  # epoch milliseconds
        obj = {"parcel_id": parcel_id, "inspected_at": when, "illicit": illicit,
               **{k: v for k, v in flags.items() if v is not None and k != "inspected_at"}}
        try:
            records, shape = [check("", orjson.dumps(obj))], ""
        except InputError as exc:
            raise click.ClickException(f"{exc}; nothing was published") from None
    topic = settings.topic(TOPIC_NAME)
    quiet_client_logs()
    try:
        sent = asyncio.run(send(settings.bootstrap_servers, topic, records))
    except KafkaConnectionError:
        raise click.ClickException(asyncio.run(unreachable_message(settings.bootstrap_servers))
                                   + "; nothing was published") from None
    what = f"{sent:,} outcome{'s' if sent != 1 else ''}"
    click.echo(f"published {what}{f' ({shape})' if shape else ''} to {topic}")
