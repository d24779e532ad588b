"""Reads an output topic (decisions, flagged, dead-letter) and renders its records for people."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.text import Text

LANE_STYLE = {"green": "green", "yellow": "yellow", "red": "bold red"}


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


def render(kind: str, value: dict | None) -> list[Text]:
    """Lines describing one record of the given topic kind."""
    if value is None:
        return [Text("(undecodable record)", style="dim")]
    if kind == "dead-letter":
        where = value.get("source", {})
        line = Text.assemble(("DEAD ", "bold magenta"), (value.get("reason", "?"), "magenta"),
                             f"  {value.get('message', '')}",
                             (f"  [{where.get('topic')}/{where.get('partition')}@{where.get('offset')}", "dim"),
                             (f" manifest={value.get('manifest_id')} parcel={value.get('parcel_id')}]", "dim"))
        return [line]
    decisions = value.get("decisions", [value])
    lines = []
    for d in decisions:
        lane = d.get("lane", "?")
        line = Text.assemble((f"{lane.upper():6}", LANE_STYLE.get(lane, "")), f" {d.get('parcel_id')}",
                             (f"  score={d.get('score')}", "cyan"), (f"  {value.get('manifest_id')}", "dim"))
        lines.append(line)
        for r in d.get("reasons", []):
            vals = r.get("values", {})
            cond = vals.get("condition") or ", ".join(f"{k}={v}" for k, v in vals.items())
            lines.append(Text(f"    - {r.get('rule_id')} (+{r.get('contribution')}): {cond}", style="dim"))
    return lines


def tail(bootstrap: list[str], topic: str, kind: str, limit: int, follow: bool, lanes: set[str] | None) -> int:
    """Pretty-print records of topic; returns how many were shown."""
    console = Console()
    shown = 0

    async def run() -> None:
        nonlocal shown
        async for _msg, value in read_topic(bootstrap, topic, idle_timeout=None if follow else 3.0):
            if lanes and kind != "dead-letter":
                ds = value.get("decisions", [value]) if value else []
                value = dict(value, decisions=[d for d in ds if d.get("lane") in lanes]) if value else value
                if not value or not value["decisions"]:
                    continue
            for line in render(kind, value):
                console.print(line)
            shown += 1
            if limit and shown >= limit:
                return

    asyncio.run(run())
    return shown
