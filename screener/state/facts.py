"""What the screener keeps of a parcel it selected for inspection, so that an outcome can be joined to it.

An inspection outcome names only a parcel_id; R11 needs the parcel's entities (risk kinds of
screener/state/risk.py). The worker writes the *facts* of every parcel it selects (final lane yellow or red,
after capacity control) to the `parcel-facts` topic: one record per destination partition per batch, the
partition Kafka's default partitioner gives the parcel_id over the topic's partitions, so an outcome (keyed
by parcel_id on `inspections`, same partition count) and its parcel's facts share a partition number. A
record is JSON lines, one fact per line: `{"parcel_id", "event_ms", "entities": {kind: [key, ...]}}`.

Green parcels are not kept: outcomes come for the parcels selected for inspection, and keeping every parcel
would add a record to each decision. `FactStore` holds one partition's facts for `retention_ms` of parcel
event time (default 14 days, the time an inspection takes to come back at worst), measured from the newest
event seen: expiry depends only on the facts observed, never on when they were read.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import orjson

from screener.kernels.partition import partitions_of
from screener.state.risk import DAY_MS, JoinedOutcome

FACTS_TOPIC = "parcel-facts"
DEFAULT_FACTS_RETENTION_MS = 14 * DAY_MS

Fact = tuple[str, int, dict[str, list[str]]]   # (parcel_id, event_ms, entities)


def fact_line(parcel_id: str, event_ms: int, entities: dict[str, list[str]]) -> bytes:
    """One fact as a JSON line."""
    return orjson.dumps({"parcel_id": parcel_id, "event_ms": int(event_ms), "entities": entities}) + b"\n"


def facts_records(facts: list[Fact], partitions: int, max_record_bytes: int) -> list[tuple[int, bytes]]:
    """(partition, value) records of a batch's facts: one per partition, split where a record would pass
    `max_record_bytes` (a fact is a few hundred bytes, so no single fact comes near it)."""
    if not facts:
        return []
    dest = partitions_of([f[0].encode() for f in facts], partitions).tolist()
    out: dict[int, list[bytearray]] = {}
    for (pid, ms, entities), p in zip(facts, dest):
        line = fact_line(pid, ms, entities)
        chunks = out.setdefault(p, [bytearray()])
        if chunks[-1] and len(chunks[-1]) + len(line) > max_record_bytes:
            chunks.append(bytearray())
        chunks[-1] += line
    return [(p, bytes(chunk)) for p in sorted(out) for chunk in out[p]]


def read_facts(value: bytes) -> list[Fact]:
    """The facts of one `parcel-facts` record; ValueError when it is not one written by `facts_records`."""
    facts = []
    for line in value.splitlines():
        try:
            d = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"fact is not JSON: {exc}") from None
        pid, ms, entities = (d.get("parcel_id"), d.get("event_ms"), d.get("entities")) if type(d) is dict else (
            None, None, None)
        if type(pid) is not str or type(ms) is not int or type(entities) is not dict:
            raise ValueError("a fact needs parcel_id (string), event_ms (int) and entities (object)")
        facts.append((pid, ms, entities))
    return facts


class FactStore:
    """One partition's facts by parcel_id, forgotten `retention_ms` of event time after the newest one seen."""

    def __init__(self, retention_ms: int = DEFAULT_FACTS_RETENTION_MS) -> None:
        self.retention_ms = int(retention_ms)
        self.watermark_ms: int | None = None
        self.unreadable = 0   # records `add_records` could not read
        self._facts: dict[str, tuple[int, dict[str, list[str]]]] = {}
        self._expiry: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._facts)

    def add(self, facts: Iterable[Fact]) -> None:
        """Keep facts (a parcel screened again replaces its fact); older than the retention: not kept."""
        for pid, ms, entities in facts:
            if self.watermark_ms is None or ms > self.watermark_ms:
                self.watermark_ms = ms
                self._forget_until(ms - self.retention_ms)
            if ms <= self.watermark_ms - self.retention_ms:
                continue
            old = self._facts.get(pid)
            self._facts[pid] = (ms, entities)
            if old is None or old[0] != ms:
                heapq.heappush(self._expiry, (ms, pid))

    def add_records(self, values: Iterable[bytes | None]) -> None:
        """Keep the facts of `parcel-facts` records (topic order); unreadable records are counted, not kept."""
        for value in values:
            if not value:
                continue
            try:
                self.add(read_facts(value))
            except ValueError:
                self.unreadable += 1

    def _forget_until(self, horizon: int) -> None:
        heap, facts = self._expiry, self._facts
        while heap and heap[0][0] <= horizon:
            ms, pid = heapq.heappop(heap)
            kept = facts.get(pid)
            if kept is not None and kept[0] == ms:
                del facts[pid]

    def join(self, parcel_id: str, inspected_ms: int, illicit: bool) -> JoinedOutcome | None:
        """The outcome joined to its parcel's entities; None when no fact of that parcel is kept."""
        kept = self._facts.get(parcel_id)
        if kept is None:
            return None
        return JoinedOutcome(parcel_id, int(inspected_ms), bool(illicit), kept[1])
