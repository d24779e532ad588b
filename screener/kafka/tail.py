"""Reads an output topic (decisions, flagged, dead-letter) like kcat and renders its parcels for people.

The unit is the parcel, not the message: a decisions message carries every parcel of a manifest,
so `-n 5` means the five most recent parcels of the topic (by message timestamp, across partitions).

Where a partition ends: the embedded broker answers ListOffsets (`end_offsets`) wrongly (1 for a
partition holding 1,000 records), while the high-water marks in its fetch responses are right, so
the end of each partition is read from `consumer.highwater()` after a small fetch, as
screener/ops/observability.py does for lag. For the same reason `--since` reads from the beginning
and filters by timestamp instead of asking the broker for offsets by time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from screener.kafka.connectivity import quiet_client_logs, unreachable_message

LANE_STYLE = {"green": "green", "yellow": "yellow", "red": "bold red"}
FETCH_TIMEOUT_MS = 500


class TailError(Exception):
    """A problem worth one line to the user (missing topic, unreachable broker)."""


@dataclass(frozen=True)
class Parcel:
    """One parcel-level record of a topic: a decision, a flagged parcel or a dead letter."""

    timestamp_ms: int
    partition: int
    offset: int
    index: int  # position within its message
    key: bytes | None
    record: dict
    manifest_id: str | None


def _consumer(bootstrap: list[str], small: bool = False, fetch_max_wait_ms: int = 500) -> AIOKafkaConsumer:
    # `small` reads high-water marks: a fetch of one batch is enough to learn them.
    size = 1024 if small else 8 << 20
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                            auto_offset_reset="earliest", fetch_max_bytes=size if small else 16 << 20,
                            max_partition_fetch_bytes=size, request_timeout_ms=10_000,
                            fetch_max_wait_ms=fetch_max_wait_ms, client_id=f"screener-tail-{uuid.uuid4().hex[:6]}")


async def start_consumer(bootstrap: list[str], small: bool = False, fetch_max_wait_ms: int = 500) -> AIOKafkaConsumer:
    """A started consumer without a group; TailError if no broker answers. `fetch_max_wait_ms`: how long a
    fetch may wait for data (the embedded broker holds it long: screener/kafka/transport.py)."""
    consumer = _consumer(bootstrap, small, fetch_max_wait_ms)
    try:
        await consumer.start()
    except KafkaConnectionError:
        await consumer.stop()
        raise TailError(await unreachable_message(bootstrap)) from None
    return consumer


async def partitions_of(consumer: AIOKafkaConsumer, topic: str, bootstrap: list[str]) -> list[TopicPartition]:
    """The topic's partitions; TailError if the topic does not exist."""
    if topic not in await consumer.topics():
        raise TailError(f"topic {topic!r} does not exist on {','.join(bootstrap)} "
                        "(no worker has run with this --topic-prefix yet?)")
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def highwaters(bootstrap: list[str], tps: list[TopicPartition], timeout_s: float = 10.0) -> dict:
    """High-water mark per partition, from fetch responses (not ListOffsets, see the module doc)."""
    consumer = await start_consumer(bootstrap, small=True)
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any(consumer.highwater(tp) is None for tp in tps) and loop.time() < deadline:
            await consumer.getmany(*[tp for tp in tps if consumer.highwater(tp) is None], timeout_ms=200,
                                   max_records=1)
        return {tp: consumer.highwater(tp) or 0 for tp in tps}
    finally:
        await consumer.stop()


def parcels_of(kind: str, msg, value: dict | None) -> Iterator[Parcel]:
    """The parcel-level records one message carries."""
    base = (msg.timestamp or 0, msg.partition, msg.offset)
    if value is None:
        yield Parcel(*base, 0, msg.key, {"undecodable": True}, None)
    elif kind == "decisions":
        for i, d in enumerate(value.get("decisions", [])):
            yield Parcel(*base, i, msg.key, d, value.get("manifest_id"))
    else:
        yield Parcel(*base, 0, msg.key, value, value.get("manifest_id"))


@dataclass
class Filter:
    """Which parcels to show: lanes, a key (message key, parcel_id or manifest_id), a start time."""

    lanes: set[str] | None = None
    key: str | None = None
    since_ms: int | None = None

    def __call__(self, p: Parcel) -> bool:
        """True if the parcel passes every filter."""
        if self.since_ms is not None and p.timestamp_ms < self.since_ms:
            return False
        if self.lanes and p.record.get("lane") not in self.lanes:
            return False
        if self.key is not None:
            keys = {p.record.get("parcel_id"), p.manifest_id, p.key.decode(errors="replace") if p.key else None}
            return self.key in keys
        return True


async def read_range(consumer: AIOKafkaConsumer, kind: str, start: dict, end: dict | None,
                     keep: Callable[[Parcel], bool]) -> AsyncIterator[Parcel]:
    """Parcels from `start` offsets up to `end` offsets (None: forever), in fetch order."""
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    open_tps = {tp for tp in start if end is None or start[tp] < end[tp]}
    while open_tps:
        batch = await consumer.getmany(*open_tps, timeout_ms=FETCH_TIMEOUT_MS, max_records=2000)
        for tp, msgs in batch.items():
            for msg in msgs:
                if end is not None and msg.offset >= end[tp]:
                    break
                try:
                    value = orjson.loads(msg.value) if msg.value else None
                except orjson.JSONDecodeError:
                    value = None
                for p in parcels_of(kind, msg, value):
                    if keep(p):
                        yield p
        if end is not None:
            open_tps = {tp for tp in open_tps if await consumer.position(tp) < end[tp]}


async def last_parcels(consumer: AIOKafkaConsumer, kind: str, end: dict, n: int,
                       keep: Callable[[Parcel], bool]) -> list[Parcel]:
    """The n most recent parcels that pass `keep`; reads further back until it has them or hits the start."""
    back = max(n, 1)
    while True:
        start = {tp: max(0, hw - back) for tp, hw in end.items()}
        found = [p async for p in read_range(consumer, kind, start, end, keep)]
        if len(found) >= n or all(offset == 0 for offset in start.values()):
            found.sort(key=lambda p: (p.timestamp_ms, p.partition, p.offset, p.index))
            return found[-n:] if n else []
        back *= 4


def render(kind: str, p: Parcel) -> list[Text]:
    """Lines describing one parcel-level record of the given topic kind."""
    value = p.record
    if value.get("undecodable"):
        return [Text(f"(undecodable record at partition {p.partition} offset {p.offset})", style="dim")]
    if kind == "dead-letter":
        where = value.get("source", {})
        return [Text.assemble(("DEAD ", "bold magenta"), (value.get("reason", "?"), "magenta"),
                              f"  {value.get('message', '')}",
                              (f"  [{where.get('topic')}/{where.get('partition')}@{where.get('offset')}", "dim"),
                              (f" manifest={value.get('manifest_id')} parcel={value.get('parcel_id')}]", "dim"))]
    lane = value.get("lane", "?")
    lines = [Text.assemble((f"{lane.upper():6}", LANE_STYLE.get(lane, "")), f" {value.get('parcel_id')}",
                           (f"  score={value.get('score')}", "cyan"), (f"  {p.manifest_id or ''}", "dim"))]
    if value.get("summary"):  # flagged records: the reasons worded for inspectors, in one line
        lines.append(Text(f"    {value['summary']}", style="dim"))
        return lines
    for r in value.get("reasons", []):
        if r.get("text"):
            lines.append(Text(f"    - {r.get('rule_id')}: {r['text']}", style="dim"))
            continue
        vals = r.get("values", {})
        cond = vals.get("condition") or ", ".join(f"{k}={v}" for k, v in vals.items())
        lines.append(Text(f"    - {r.get('rule_id')} (+{r.get('contribution')}): {cond}", style="dim"))
    return lines


@dataclass
class TailRequest:
    """Where to start, when to stop and what to show (the `screener tail` flags)."""

    last: int | None = 10  # the most recent N parcels; None when another start is given
    from_beginning: bool = False
    offset: int | None = None  # absolute per partition; negative counts back from the end (kcat -o)
    follow: bool = False  # otherwise exit at the end of the topic (kcat -e)
    as_json: bool = False
    keep: Filter | None = None


def tail(bootstrap: list[str], topic: str, kind: str, request: TailRequest,
         console: Console | None = None) -> int:
    """Print the requested parcels of topic; returns how many were shown. Raises TailError."""
    console = console or Console()
    keep = request.keep or Filter()
    quiet_client_logs()
    shown = 0

    def show(p: Parcel) -> None:
        nonlocal shown
        shown += 1
        if request.as_json:
            out = dict(p.record, manifest_id=p.manifest_id) if kind == "decisions" else p.record
            console.print(escape(orjson.dumps(out).decode()), soft_wrap=True, highlight=False)
        else:
            for line in render(kind, p):
                console.print(line)

    async def run() -> None:
        consumer = await start_consumer(bootstrap)
        try:
            tps = await partitions_of(consumer, topic, bootstrap)
            end = await highwaters(bootstrap, tps)
            if request.offset is not None:
                start = {tp: max(0, min(hw, hw + request.offset if request.offset < 0 else request.offset))
                         for tp, hw in end.items()}
            elif request.from_beginning or keep.since_ms is not None:
                start = {tp: 0 for tp in tps}
            else:
                for p in await last_parcels(consumer, kind, end, request.last or 0, keep):
                    show(p)
                start = dict(end)
            if request.follow or start != end:
                async for p in read_range(consumer, kind, start, None if request.follow else end, keep):
                    show(p)
        finally:
            await consumer.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return shown


async def read_topic(bootstrap: list[str], topic: str, from_beginning: bool = True,
                     idle_timeout: float | None = None, group_id: str | None = None) -> AsyncIterator[tuple]:
    """Yield (message, decoded value or None) from topic; stop after `idle_timeout` s without data."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group_id,
                                auto_offset_reset="earliest" if from_beginning else "latest",
                                enable_auto_commit=group_id is not None, fetch_max_bytes=16 << 20,
                                max_partition_fetch_bytes=8 << 20, client_id=f"screener-tail-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    try:
        idle = 0.0
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            if not batch:
                idle += 0.5
                if idle_timeout is not None and idle >= idle_timeout:
                    return
                continue
            idle = 0.0
            for records in batch.values():
                for msg in records:
                    try:
                        value = orjson.loads(msg.value) if msg.value else None
                    except orjson.JSONDecodeError:
                        value = None
                    yield msg, value
    finally:
        await consumer.stop()
