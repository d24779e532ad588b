"""One batch of raw messages in, the messages to produce out: decode, validate, screen, encode.

Pure compute, no Kafka: the Faust agent (screener/kafka/worker.py), the benchmarks and the tests all drive
the same `BatchProcessor.process`. It never raises on input: a failure inside a batch is retried
message by message, and a message that still fails is dead-lettered as `internal_error`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import orjson

from screener.kernels.json_scan import ScanResult
from screener.pipeline.batch import LANE_NAMES, ParcelBatch, ScreenResult, Vocabularies
from screener.pipeline.columns import BatchBuilder
from screener.pipeline.deadletter import dead_letter, now_iso, summary_dead_letter
from screener.pipeline.decode import RawMessage, Rejection, decode
from screener.pipeline.encode import MessageOut, encode
from screener.pipeline.fast_columns import FastDecoded, FastDecoder
from screener.pipeline.screening import Screener

log = logging.getLogger(__name__)

DECISIONS, FLAGGED, DEAD_LETTER = "decisions", "flagged", "dead-letter"


@dataclass
class BatchOutcome:
    """Counts of one batch, for metrics and summaries (never per-parcel objects)."""

    parcels: int = 0
    lanes: dict = field(default_factory=lambda: {name: 0 for name in LANE_NAMES})
    messages: Counter = field(default_factory=Counter)
    dead_letters: Counter = field(default_factory=Counter)
    rule_hits: Counter = field(default_factory=Counter)
    kernel_seconds: float = 0.0

    def merge(self, other: BatchOutcome) -> None:
        """Add another outcome's counts into this one."""
        self.parcels += other.parcels
        for k, v in other.lanes.items():
            self.lanes[k] = self.lanes.get(k, 0) + v
        self.messages.update(other.messages)
        self.dead_letters.update(other.dead_letters)
        self.rule_hits.update(other.rule_hits)
        self.kernel_seconds += other.kernel_seconds


@dataclass
class BatchResult:
    """What to produce (kind, key, value) and the counts."""

    records: list[tuple[str, bytes | None, bytes]]
    outcome: BatchOutcome


class VocabularyGenerations:
    """The current generation of vocabularies, with its reference builder and fast decoder.

    Codes are only meaningful within one Vocabularies object; lookups follow the object (see rules/lookups.py),
    so swapping it between batches frees every string without changing a decision. Several processors may
    share one (a stateful worker's shards): each string is then interned, and its lookups evaluated, once.
    """

    def __init__(self, max_message_bytes: int = 1 << 20, max_strings: int = 2_000_000) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_strings = max_strings
        self.count = 0
        self.renew()

    def renew(self) -> None:
        """Start a new generation (nothing interned yet)."""
        self.vocab = Vocabularies()
        self.builder = BatchBuilder(self.vocab)
        self.decoder = FastDecoder(self.vocab, self.max_message_bytes)
        self.count += 1

    def bound(self) -> None:
        """A new generation when this one holds over max_strings strings (called between batches)."""
        if sum(self.vocab.sizes().values()) > self.max_strings:
            self.renew()


class BatchProcessor:
    """Screens batches of raw messages with one screener and a bounded set of vocabularies.

    Messages the fast decoder (fast_columns.py) can prove valid go bytes -> columns in Numba; every
    other message is decoded and validated alone by the reference path (decode.py + columns.py),
    which says exactly what is wrong with it. Both intern into the same vocabularies, so a parcel gets
    the same columns, and the same decision, whichever path and whatever batch it came in.
    """

    def __init__(self, screener: Screener, max_message_bytes: int = 1 << 20, *, fast: bool = True,
                 max_record_bytes: int = 1_000_000, dead_letters_per_message: int = 100,
                 vocabulary_max_strings: int = 2_000_000, router=None,
                 vocabularies: VocabularyGenerations | None = None) -> None:
        """`router` (screener/state/route.py): decode and validate only, re-keying valid parcels to it;
        `vocabularies`: generations shared with other processors (else its own)."""
        self.screener = screener
        self.router = router
        self.max_message_bytes = max_message_bytes
        self.fast = fast
        self.max_record_bytes = max_record_bytes
        self.dead_letters_per_message = dead_letters_per_message
        self.vocabularies = vocabularies or VocabularyGenerations(max_message_bytes, vocabulary_max_strings)

    @property
    def generations(self) -> int:
        """How many generations of vocabularies there have been."""
        return self.vocabularies.count

    @property
    def vocab(self) -> Vocabularies:
        """The current generation of vocabularies (entities seen lately)."""
        return self.vocabularies.vocab

    def process(self, raws: list[RawMessage], scanned: ScanResult | None = None) -> BatchResult:
        """Screen a batch; every message ends as decisions and/or dead-letter records.

        `scanned`: the scan of the messages' values laid end to end, when known (re-keyed records carry it)."""
        self.vocabularies.bound()
        try:
            return self._process(raws, scanned)
        except Exception:  # a bug must not stop the worker or lose the batch
            log.exception("batch of %d messages failed; retrying one message at a time", len(raws))
        records, outcome = [], BatchOutcome()
        for raw in raws:
            try:
                one = self._process([raw])
            except Exception as exc:
                log.exception("message %s/%s@%s failed", raw.topic, raw.partition, raw.offset)
                rej = Rejection("internal_error", f"screening failed: {type(exc).__name__}: {exc}")
                key, value = dead_letter(raw, rej, raw.value or b"")
                one = BatchResult([(DEAD_LETTER, key, value)], BatchOutcome())
                one.outcome.messages["dead_letter"] += 1
                one.outcome.dead_letters["internal_error"] += 1
            records.extend(one.records)
            outcome.merge(one.outcome)
        return BatchResult(records, outcome)

    def _process(self, raws: list[RawMessage], scanned: ScanResult | None = None) -> BatchResult:
        decided_at = now_iso()
        result = BatchResult([], BatchOutcome())
        if self.router is not None:
            self.router.reset()       # a retried batch starts its re-keyed output afresh
        left: list[int] = list(range(len(raws)))
        if self.fast and raws:
            fast = self.vocabularies.decoder.build([r.value for r in raws], scanned)
            left = fast.left
            if left and (self.router is not None or getattr(self.screener, "in_input_order", False)):
                # State sees parcels in input order (a parcel behind its own sequence is a replay), and so
                # do re-keyed records: a batch with messages the fast path refuses goes the reference way
                # whole, in order.
                left = list(range(len(raws)))
            elif len(fast.taken):
                self._fast_part(raws, fast, decided_at, result)
        for j in left:
            self._reference_message(raws[j], decided_at, result)
        if self.router is not None:
            result.records.extend(self.router.flush())
        return result

    def _fast_part(self, raws: list[RawMessage], fast: FastDecoded, decided_at: str, result: BatchResult) -> None:
        batch = fast.batch
        bounds = np.searchsorted(batch.message_index, np.arange(len(fast.taken) + 1)).tolist()
        messages = []
        for k, j in enumerate(fast.taken.tolist()):
            fields = fast.manifest_fields(k)
            dead, shard = _routed(raws[j], 0)
            messages.append(MessageOut(fast.manifest_ids[k], raws[j].source(), bounds[k], bounds[k + 1],
                                       dead, fields, shard))
        span = fast.parcel_span
        buf = fast.buf

        def parcel_json(i: int) -> bytes:
            return buf[span[0, i]:span[1, i]].tobytes()

        result.outcome.messages["ok"] += len(messages)
        self._screen(batch, messages, [raws[j] for j in fast.taken.tolist()], parcel_json, decided_at, result,
                     (buf, fast.rows))

    def _reference_message(self, raw: RawMessage, decided_at: str, result: BatchResult) -> None:
        """Decode and validate one message with the reference path (it says what is wrong, parcel by parcel)."""
        records, outcome = result.records, result.outcome
        dec = decode(raw, self.max_message_bytes)
        if isinstance(dec, Rejection):
            key, value = dead_letter(raw, dec, raw.value or b"", at=decided_at)
            records.append((DEAD_LETTER, key, value))
            outcome.messages["dead_letter"] += 1
            outcome.dead_letters[dec.reason] += 1
            return
        outcome.messages["ok"] += 1
        batch, rejected = self.vocabularies.builder.build([dec])
        for rej in rejected:
            outcome.dead_letters[rej.rejection.reason] += 1
        if len(rejected) > self.dead_letters_per_message:
            records.append((DEAD_LETTER, *summary_dead_letter(dec, rejected, decided_at)))
        else:
            for rej in rejected:
                pid = rej.parcel.get("parcel_id") if type(rej.parcel) is dict else None
                key, value = dead_letter(raw, rej.rejection, orjson.dumps(rej.parcel),
                                         manifest_id=dec.manifest_id, parcel_index=rej.parcel_index,
                                         parcel_id=pid if type(pid) is str else None, at=decided_at)
                records.append((DEAD_LETTER, key, value))
        dead, shard = _routed(raw, len(rejected))
        message = MessageOut(dec.manifest_id, raw.source(), 0, batch.n, dead, dict(dec.meta), shard)
        rows = dec.parcels

        def parcel_json(i: int) -> bytes:
            return orjson.dumps(rows[int(batch.source_row[i])])

        self._screen(batch, [message], [raw], parcel_json, decided_at, result)

    def _screen(self, batch: ParcelBatch, messages: list[MessageOut], raws: list[RawMessage], parcel_json,
                decided_at: str, result: BatchResult, scanned: tuple | None = None) -> None:
        """Screen one batch of parcels and encode its decisions (a receipt even for no parcels); `scanned`:
        (buffer, scan of the rows) of the fast path, for the router."""
        outcome = result.outcome
        if batch.n:
            batch.seq = _sequence(messages, raws, batch)
        if batch.n == 0 or self.router is not None:
            screened = ScreenResult.empty()
        else:
            t0 = time.perf_counter()
            screened = self.screener.screen(batch)
            outcome.kernel_seconds += time.perf_counter() - t0
        if self.router is not None:       # stage one of a stateful worker: re-key, screen in stage two
            self.router.add(messages, batch, parcel_json, result.outcome, scanned)
            return
        out = encode(messages, batch, screened, self.screener, decided_at, parcel_json, self.max_record_bytes)
        result.records.extend((DECISIONS, k, v) for k, v in out.decisions)
        result.records.extend((FLAGGED, k, v) for k, v in out.flagged)
        for k, row, size in out.too_large:
            rej = Rejection("output_too_large",
                            f"this parcel's decision or flagged record needs {size} bytes, over the "
                            f"{self.max_record_bytes}-byte record limit", None)
            key, value = dead_letter(raws[k], rej, parcel_json(row), manifest_id=messages[k].manifest_id,
                                     parcel_id=batch.parcel_ids[row], at=decided_at)
            result.records.append((DEAD_LETTER, key, value))
            outcome.dead_letters["output_too_large"] += 1
        if batch.n == 0:
            return
        outcome.parcels += batch.n
        counts = np.bincount(screened.lane, minlength=len(LANE_NAMES))
        for name, c in zip(LANE_NAMES, counts.tolist()):
            outcome.lanes[name] += c
        outcome.rule_hits.update(_rule_hits(screened.hits, getattr(self.screener, "rule_ids", None)))
        if screened.random.any():
            outcome.rule_hits["random"] += int(screened.random.sum())


def _routed(raw: RawMessage, rejected: int) -> tuple[int, tuple[int, int] | None]:
    """Dead-letter count and shard of a message: a re-keyed segment carries its manifest's."""
    if raw.route is None:
        return rejected, None
    return raw.route["dead_lettered"] + rejected, (raw.route["shard"], raw.route["shards"])


def _sequence(messages: list[MessageOut], raws: list[RawMessage], batch: ParcelBatch) -> np.ndarray:
    """(offset << 24) | position of each parcel in its message: its place in its partition, the same on a replay."""
    seq = np.empty(batch.n, dtype=np.int64)
    for m, raw in zip(messages, raws):
        base = raw.route["seq"] if raw.route is not None else max(int(raw.offset), 0) << 24
        if batch.source_row is not None:        # reference path: positions among the message's parcels
            seq[m.lo:m.hi] = base + batch.source_row[m.lo:m.hi]
        else:
            seq[m.lo:m.hi] = base + np.arange(m.hi - m.lo)
    return seq


def _rule_hits(hits: np.ndarray, rule_ids: list[str] | None) -> Counter:
    """Hits per rule id from the uint64 [n, words] masks (bit r = rule r)."""
    out: Counter = Counter()
    if not rule_ids or hits.size == 0:
        return out
    bits = np.unpackbits(np.ascontiguousarray(hits).view(np.uint8), axis=1, bitorder="little").sum(axis=0)
    for r, rid in enumerate(rule_ids):
        if r < len(bits) and bits[r]:
            out[rid] = int(bits[r])
    return out
