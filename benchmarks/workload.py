"""Benchmark inputs: a pool of generated manifests re-published as distinct copies.

The generator makes ~21k parcels/s, too slow to feed millions of parcels, so each measurement
generates a small pool once and re-publishes it with the parcel and manifest id prefixes
rewritten per copy (a byte-level replace), so every parcel on the wire is distinct. With
`fresh_consignees`, every copy also renames its consignees (id, name, phone, address), so the
number of distinct consignees grows with the traffic as on a real day instead of recycling the
pool's few thousand.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from screener.generator import GeneratorConfig, ManifestGenerator

_MANIFEST_ID = re.compile(rb'"manifest_id":"([^"]+)"')


@dataclass
class Pool:
    """Encoded messages of one shape (bare parcels or manifests of k parcels) and how to copy them."""

    messages: list[bytes]
    parcels_per_message: int
    seed: int
    fresh_consignees: bool = False   # what stream() does unless told: copies rename their consignees

    @property
    def parcels(self) -> int:
        """Parcels in one pass over the pool."""
        return len(self.messages) * self.parcels_per_message

    def copy(self, i: int, tag: bytes = b"", fresh_consignees: bool = False) -> bytes:
        """Message i of the endless stream: pool entry i % len, ids made unique by the copy number."""
        r = i // len(self.messages)
        msg = self.messages[i % len(self.messages)]
        pid, mid = b'"P%03d-' % self.seed, b'"M%03d-' % self.seed
        suffix = b"%sr%d-" % (tag, r)
        msg = msg.replace(pid, pid[:-1] + suffix).replace(mid, mid[:-1] + suffix)
        return rename_consignees(msg, suffix) if fresh_consignees and r else msg

    def stream(self, count: int, tag: bytes = b"", start: int = 0,
               fresh_consignees: bool | None = None) -> Iterator[bytes]:
        """`count` distinct messages (and, with `fresh_consignees`, new consignees in every copy of the pool)."""
        fresh = self.fresh_consignees if fresh_consignees is None else fresh_consignees
        for i in range(start, start + count):
            yield self.copy(i, tag, fresh)

    def messages_for(self, parcels: int) -> int:
        """Messages needed to carry at least `parcels` parcels."""
        return max(1, -(-parcels // self.parcels_per_message))


def make_pool(parcels_per_message: int, pool_parcels: int, seed: int) -> Pool:
    """Generate a pool of about `pool_parcels` parcels as manifests of k parcels (k = 1: bare parcel records)."""
    if parcels_per_message == 1:
        gen = ManifestGenerator(GeneratorConfig(manifests=max(1, pool_parcels // 500),
                                                parcels_per_manifest=min(pool_parcels, 500), seed=seed))
        msgs = []
        for m in gen.manifests():
            head = {"schema_version": m["schema_version"], "carrier_code": m["carrier_code"],
                    "master_bill_no": m["master_bill_no"]}
            msgs.extend(orjson.dumps({**head, **p}) for p in m["parcels"])
        return Pool(msgs, 1, seed)
    gen = ManifestGenerator(GeneratorConfig(manifests=max(1, pool_parcels // parcels_per_message),
                                            parcels_per_manifest=parcels_per_message, seed=seed))
    return Pool([orjson.dumps(m) for m in gen.manifests()], parcels_per_message, seed)


def rename_consignees(msg: bytes, tag: bytes) -> bytes:
    """The message with every consignee renamed: new id, name, phone and address strings."""
    for old in (b'"C-', b'"name-', b'"addr-', b'"+86-'):
        msg = msg.replace(old, old + tag)
    return msg


def manifest_id(message: bytes) -> bytes | None:
    """The manifest id of an encoded manifest, without decoding it (None for a bare parcel)."""
    m = _MANIFEST_ID.search(message, 0, 200)
    return m.group(1) if m else None


def count_parcels(value: bytes) -> int:
    """Parcels in a decisions message (one `parcel_id` key per decided parcel), without decoding it."""
    return value.count(b'"parcel_id"')
