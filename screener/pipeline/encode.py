"""Encodes screening results: `decisions` records (one or more per input manifest) and `flagged` records
(one per yellow/red parcel, keyed by parcel_id). See docs/wire-format.md.

Decisions are assembled in bulk (screener/kernels/assemble.py): only parcels with a reason (a rule
hit or a random pick) cost Python, to encode their reasons. A manifest's decisions are split into
as many records (`part` k of `parts`) as the producer's record limit needs, so no valid manifest can
produce a record the broker refuses; a single parcel whose own decision or flagged record cannot fit
is reported back for dead-lettering.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson

from screener.kernels.assemble import assemble_records, entry_sizes
from screener.pipeline.batch import LANE_GREEN, LANE_NAMES, ParcelBatch, ScreenResult, SpanStrings
from screener.pipeline.screening import Screener
from screener.rules.reasons import batch_facts, summary

DECISION_SCHEMA_VERSION = 1
# Room kept in a record for the envelope's part counters and Kafka's own record overhead.
_ENVELOPE_SLACK = 256


@dataclass
class MessageOut:
    """One input message as the encoder needs it: identity, where it came from, which batch rows are its."""

    manifest_id: str
    source: dict
    lo: int                       # its parcels are batch rows [lo, hi)
    hi: int
    dead_lettered: int = 0        # its parcels set aside in dead-letter
    manifest_fields: dict = field(default_factory=dict)   # carrier_code / master_bill_no, when the manifest has them


@dataclass
class Encoded:
    """Records to produce, and parcels whose own output is too large to produce (to dead-letter)."""

    decisions: list[tuple[bytes, bytes]]
    flagged: list[tuple[bytes, bytes]]
    too_large: list[tuple[int, int, int]]     # (message index, batch row, bytes needed)


def ruleset_info(screener: Screener) -> dict:
    """Id, version and hash of the rule set, carried by every decision."""
    return {"id": screener.ruleset_id, "version": str(screener.version), "hash": screener.hash}


def explained_indices(result: ScreenResult) -> np.ndarray:
    """Parcels that need reasons: any rule hit or a random pick (most parcels need none)."""
    return np.flatnonzero(result.hits.any(axis=1) | result.random)


def _packed(parts: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    starts = np.zeros(len(parts), dtype=np.int64)
    if len(parts) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    return np.frombuffer(b"".join(parts), dtype=np.uint8), starts, lengths


def parcel_id_json(ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each parcel_id's JSON string content (escaped, without quotes) as one buffer with spans."""
    if isinstance(ids, SpanStrings):
        # The fast decoder only takes ids without escapes or control characters: their bytes are JSON already.
        return ids.buf, ids.start, ids.length
    return _packed([orjson.dumps(p)[1:-1] for p in ids])


def encode(messages: list[MessageOut], batch: ParcelBatch, result: ScreenResult, screener: Screener,
           decided_at: str, parcel_json, max_record_bytes: int) -> Encoded:
    """Decisions and flagged records of a batch; `parcel_json(row)` gives a flagged parcel's original JSON."""
    ruleset = ruleset_info(screener)
    n = batch.n
    pid_buf, pid_start, pid_len = parcel_id_json(batch.parcel_ids)
    explained = explained_indices(result) if n else np.zeros(0, dtype=np.int64)
    # The template (kernels/assemble.py) says green, score 0, no reasons: any other parcel gets its own entry
    # (a screener whose score is not the rules' alone, say, scores parcels no rule touched).
    own_entry = np.zeros(n, dtype=np.bool_)
    own_entry[explained] = True
    if n:
        own_entry |= (result.lane != LANE_GREEN) | (result.score != 0.0)
    entries: dict[int, bytes] = {}
    explained_reasons: dict[int, list] = {}
    pid_bytes: dict[int, bytes] = {}
    rows = np.flatnonzero(own_entry)
    if len(rows):
        reasons_of = dict(zip(explained.tolist(), screener.explain_many(batch, result, explained))) \
            if len(explained) else {}
        lanes = result.lane[rows].tolist()
        # One orjson call writes every score (a float's JSON has no comma), the same bytes as one call each.
        scores = orjson.dumps(np.round(result.score[rows], 6).tolist())[1:-1].split(b",")
        starts, ends = pid_start[rows].tolist(), (pid_start[rows] + pid_len[rows]).tolist()
        ids = memoryview(pid_buf)    # for the fast path, the whole batch's buffer: sliced, never copied whole
        heads = [b'","lane":"' + name.encode() + b'","score":' for name in LANE_NAMES]
        no_reasons: list = []
        for i, lane, score, a, b in zip(rows.tolist(), lanes, scores, starts, ends):
            reasons = explained_reasons[i] = reasons_of.get(i, no_reasons)
            pid = pid_bytes[i] = bytes(ids[a:b])
            # The same bytes orjson gives for the dict, without decoding the id or building the dict.
            entries[i] = b"".join((b'{"parcel_id":"', pid, heads[lane], score, b',"reasons":',
                                   orjson.dumps(reasons), b"}"))
    entry_len = np.full(n, -1, dtype=np.int64)
    entry_start = np.zeros(n, dtype=np.int64)
    if entries:
        ebuf, estart, elen = _packed([entries[i] for i in rows.tolist()])
        entry_start[rows], entry_len[rows] = estart, elen
    else:
        ebuf = np.zeros(0, dtype=np.uint8)
    sizes = entry_sizes(pid_len, entry_len) if n else np.zeros(0, dtype=np.int64)

    too_large: list[tuple[int, int, int]] = []
    envelopes = [{"schema_version": DECISION_SCHEMA_VERSION, "manifest_id": m.manifest_id, "source": m.source,
                  "ruleset": ruleset, "decided_at": decided_at, "dead_lettered": m.dead_lettered}
                 for m in messages]
    # Most messages fit one record: their rows are [lo, hi) as they stand, checked with one reduceat per batch.
    los = np.asarray([m.lo for m in messages], dtype=np.int64)
    his = np.asarray([m.hi for m in messages], dtype=np.int64)
    padded = np.append(sizes + 1, 0)
    totals = np.add.reduceat(padded, np.minimum(los, n))
    totals[los == his] = 0
    largest = np.maximum.reduceat(np.append(sizes, 0), np.minimum(los, n))
    largest[los == his] = 0
    row_lists, bounds, heads, keys = [], [0], [], []
    for k, (msg, env, total, big) in enumerate(zip(messages, envelopes, totals.tolist(), largest.tolist())):
        head = orjson.dumps({**env, "part": 1, "parts": 1})
        budget = max_record_bytes - len(head) - _ENVELOPE_SLACK
        if total <= budget:
            row_lists.append(np.arange(msg.lo, msg.hi, dtype=np.int64))
            bounds.append(bounds[-1] + (msg.hi - msg.lo))
            heads.append(head[:-1] + b',"decisions":[')
            keys.append(msg.manifest_id.encode())
            continue
        rows = np.arange(msg.lo, msg.hi, dtype=np.int64)
        if big > budget:
            fits = sizes[rows] <= budget
            too_large += [(k, int(r), int(sizes[r])) for r in rows[~fits].tolist()]
            rows = rows[fits]
        groups = _split(sizes[rows] + 1, budget)
        for part, (a, b) in enumerate(groups, start=1):
            row_lists.append(rows[a:b])
            bounds.append(bounds[-1] + (b - a))
            heads.append(orjson.dumps({**env, "part": part, "parts": len(groups)})[:-1] + b',"decisions":[')
            keys.append(msg.manifest_id.encode())
    all_rows = np.concatenate(row_lists) if row_lists else np.zeros(0, dtype=np.int64)
    values = assemble_records(pid_buf, pid_start, pid_len, ebuf, entry_start, entry_len, all_rows,
                              np.asarray(bounds, dtype=np.int64), heads)
    decisions = list(zip(keys, values))

    flagged_out: list[tuple[bytes, bytes]] = []
    flagged = np.flatnonzero(result.lane != LANE_GREEN) if n else np.zeros(0, dtype=np.int64)
    if len(flagged):
        owner = np.searchsorted(np.asarray([m.hi for m in messages]), flagged, side="right")
        tails: dict[int, bytes] = {}
        oversize = {r for _, r, _ in too_large}
        facts = batch_facts(batch, flagged)
        lanes = result.lane[flagged].tolist()
        scores = result.score[flagged].tolist()
        for i, k, fact, lane, score in zip(flagged.tolist(), owner.tolist(), facts, lanes, scores):
            if i in oversize:
                continue
            tail = tails.get(k)
            if tail is None:
                msg = messages[k]
                extra = {"manifest_id": msg.manifest_id, "ruleset": ruleset, "decided_at": decided_at,
                         "source": msg.source}
                if msg.manifest_fields:
                    extra["manifest_fields"] = msg.manifest_fields
                tail = tails[k] = b"," + orjson.dumps(extra)[1:-1] + b',"parcel":'
            line = summary(LANE_NAMES[lane], score, explained_reasons[i], fact)
            record = (b'{"schema_version":1,' + entries[i][1:-1] + b',"summary":' + orjson.dumps(line) + tail
                      + parcel_json(i) + b"}")
            if len(record) > max_record_bytes:
                too_large.append((k, i, len(record)))
                continue
            flagged_out.append((_unescaped(pid_bytes[i]), record))
    return Encoded(decisions, flagged_out, too_large)


def _unescaped(pid_json: bytes) -> bytes:
    """The UTF-8 key of a parcel id from its JSON string content (escapes only on the reference path)."""
    return orjson.loads(b'"' + pid_json + b'"').encode() if b"\\" in pid_json else pid_json


def _split(sizes: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive [a, b) groups of entries whose sizes sum to at most `budget` (at least one group)."""
    if len(sizes) == 0 or int(sizes.sum()) <= budget:
        return [(0, len(sizes))]
    groups, a = [], 0
    cum = np.cumsum(sizes)
    while a < len(sizes):
        base = cum[a - 1] if a else 0
        b = int(np.searchsorted(cum, base + budget, side="right"))
        b = max(b, a + 1)
        groups.append((a, b))
        a = b
    return groups
