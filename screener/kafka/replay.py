"""Replays dead letters to the manifests topic: the runbook's step after a fix (a worker bug behind
`internal_error`, a raised size limit behind `too_large`, a new schema version behind `unknown_schema_version`).

The dead-letter topic is read from its start to the high-water marks it has now (see tail.py for why
high-water marks), the chosen reasons are selected and each original is published again as it was.
A whole-message dead letter carries the message bytes; a parcel-level one carries only the parcel's
JSON, which goes out as a manifest of one under its original `manifest_id` (manifest-level fields such
as `carrier_code` that the parcel inherited are not in the dead letter and do not come back). A
truncated original cannot be replayed and is counted instead.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from screener.kafka.publisher import Publisher
from screener.kafka.tail import Filter, highwaters, partitions_of, read_range, start_consumer


@dataclass
class ReplayCount:
    """What a replay found and did, by reason."""

    replayed: Counter = field(default_factory=Counter)
    truncated: Counter = field(default_factory=Counter)
    other_reasons: Counter = field(default_factory=Counter)


def replay_message(record: dict) -> bytes | None:
    """The message to publish again for one dead letter; None if its original was truncated."""
    if record.get("original_truncated"):
        return None
    original = record.get("original", "")
    data = base64.b64decode(original) if record.get("original_encoding") == "base64" else original.encode()
    if record.get("parcel_index") is None:
        return data
    return orjson.dumps({"schema_version": 1, "manifest_id": record.get("manifest_id") or "replayed",
                         "parcels": [orjson.loads(data)]})


async def replay(bootstrap: list[str], dead_letter_topic: str, manifests_topic: str, reasons: Iterable[str] | None,
                 dry_run: bool = False) -> ReplayCount:
    """Publish the originals of dead letters with the given reasons (None: all) to manifests_topic."""
    wanted = set(reasons) if reasons is not None else None
    count = ReplayCount()
    messages: list[bytes] = []
    consumer = await start_consumer(bootstrap)
    try:
        tps = await partitions_of(consumer, dead_letter_topic, bootstrap)
        end = await highwaters(bootstrap, tps)
        async for p in read_range(consumer, "dead-letter", {tp: 0 for tp in tps}, end, Filter()):
            reason = p.record.get("reason", "?")
            if wanted is not None and reason not in wanted:
                count.other_reasons[reason] += 1
                continue
            message = replay_message(p.record)
            if message is None:
                count.truncated[reason] += 1
            else:
                messages.append(message)
                count.replayed[reason] += 1
    finally:
        await consumer.stop()
    if messages and not dry_run:
        async with Publisher(bootstrap, manifests_topic) as pub:
            for message in messages:
                await pub.send(message)
    return count
