"""Re-keying for stateful packs: a batch's valid parcels regrouped by state partition, one record per partition.

Manifests arrive keyed by manifest and hold many consignees; consignee state lives in one state partition
per consignee (murmur2 of the normalised consignee id, Kafka's default partitioner, so any client agrees).
Stage one of a stateful worker decodes and validates a batch as usual (dead letters included), then
`Router` puts each manifest's valid parcels into segments, one per state partition they belong to, and
packs the batch's segments into one record per destination partition (more only when the record limit
needs it), never one per parcel. A record's value is a JSON header line (`{"segments": [{"source", "shard",
"shards", "dead_lettered", "size"}, ...]}`) and then the segments' bytes, each a manifest-shaped document
(`schema_version`, `manifest_id`, the manifest's carrier fields, `parcels` as received), so stage two
screens a segment with the same decoder, fast path included. `segments` turns a record back into
messages whose `route` carries the original manifest's source and the sequence of the segment's first
parcel in the partition: (record offset << 24) + parcels before it in the record.
"""

from __future__ import annotations

import orjson

from screener.kernels.partition import partitions_of
from screener.pipeline.decode import RawMessage
from screener.pipeline.normalise import normalise

PARCELS = "parcels"      # the kind (and topic name) of re-keyed records
_HEADER_SLACK = 4096


class Router:
    """Collects a batch's valid parcels by state partition; `flush` gives the records to produce."""

    def __init__(self, partitions: int, max_record_bytes: int = 1_000_000) -> None:
        self.partitions = partitions
        self.max_record_bytes = max_record_bytes
        self._normalised: dict[int, list[str]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget what the batch added so far."""
        self._by_partition: dict[int, list[tuple[dict, bytes]]] = {}

    def _partitions(self, batch, rows_codes) -> list[int]:
        vocab = batch.vocab["consignee_id"]
        keys = self._normalised.setdefault(id(vocab), [""])
        if len(self._normalised) > 4:
            self._normalised = {id(vocab): keys}
        strings = vocab.strings
        keys.extend(normalise(s) for s in strings[len(keys):])
        distinct = sorted(set(rows_codes))
        parts = partitions_of([keys[c].encode() for c in distinct], self.partitions).tolist()
        by_code = dict(zip(distinct, parts))
        return [by_code[c] for c in rows_codes]

    def add(self, messages, batch, parcel_json, outcome) -> None:
        """Segments of each message's rows, by state partition (a message with no valid parcel: one empty)."""
        codes = batch.strings["consignee_id"].tolist() if batch.n else []
        parts = self._partitions(batch, codes) if batch.n else []
        for m in messages:
            groups: dict[int, list[int]] = {}
            for row in range(m.lo, m.hi):
                groups.setdefault(parts[row], []).append(row)
            if not groups:
                groups[int(partitions_of([m.manifest_id.encode()], self.partitions)[0])] = []
            head = orjson.dumps({"schema_version": 1, "manifest_id": m.manifest_id, **m.manifest_fields})[:-1]
            chunks = []
            for partition, rows in sorted(groups.items()):
                for chunk in self._chunks(head, [parcel_json(r) for r in rows]):
                    chunks.append((partition, chunk))
            for k, (partition, body) in enumerate(chunks, start=1):
                meta = {"source": m.source, "shard": k, "shards": len(chunks),
                        "dead_lettered": m.dead_lettered if k == 1 else 0, "size": len(body)}
                self._by_partition.setdefault(partition, []).append((meta, body))
        outcome.messages["routed"] += len(messages)

    def _chunks(self, head: bytes, parcels: list[bytes]) -> list[bytes]:
        """Segment documents holding the parcels, each under the record limit (at least one, maybe empty)."""
        limit = self.max_record_bytes - _HEADER_SLACK - len(head)
        out, current, size = [], [], 0
        for p in parcels:
            if current and size + len(p) + 1 > limit:
                out.append(current)
                current, size = [], 0
            current.append(p)
            size += len(p) + 1
        out.append(current)
        return [head + b',"parcels":[' + b",".join(c) + b"]}" for c in out]

    def flush(self) -> list[tuple[str, bytes | None, bytes, int]]:
        """One record per destination partition (several when the limit needs), in partition order."""
        records = []
        for partition, segments in sorted(self._by_partition.items()):
            start = 0
            while start < len(segments):
                end, size = start, 0
                while end < len(segments) and (end == start or size + segments[end][0]["size"] + 200
                                                < self.max_record_bytes - _HEADER_SLACK):
                    size += segments[end][0]["size"] + 200
                    end += 1
                group = segments[start:end]
                value = orjson.dumps({"segments": [meta for meta, _ in group]}) + b"\n" + b"".join(b for _, b in group)
                records.append((PARCELS, None, value, partition))
                start = end
        self.reset()
        return records


def segments(value: bytes, topic: str, partition: int, offset: int, timestamp_ms: int = 0) -> list[RawMessage]:
    """The segments of a re-keyed record as messages for stage two (raises ValueError on a malformed one)."""
    newline = value.index(b"\n")
    header = orjson.loads(value[:newline])
    out, at, before = [], newline + 1, 0
    for meta in header["segments"]:
        body = value[at:at + meta["size"]]
        at += meta["size"]
        route = {"source": meta["source"], "shard": meta["shard"], "shards": meta["shards"],
                 "dead_lettered": meta["dead_lettered"], "seq": (offset << 24) + before}
        out.append(RawMessage(body, topic, partition, offset, timestamp_ms, None, route))
        before += _parcel_count(body)
    return out


def _parcel_count(body: bytes) -> int:
    """At least the segment's parcels (each has the key), for sequence numbering: positions only need to grow."""
    return body.count(b'"parcel_id"') + 1
