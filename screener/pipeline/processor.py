"""One batch of raw messages in, the messages to produce out: decode, validate, screen, encode.

Pure compute, no Kafka: the Faust agent (screener/kafka/worker.py), the benchmarks and the tests all drive
the same `BatchProcessor.process`. It never raises on input: a failure inside a batch is retried
message by message, and a message that still fails is dead-lettered as `internal_error`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson

from screener.pipeline.batch import LANE_NAMES, STATE_NUMBER_FIELDS, ParcelBatch, ScreenResult, Vocabularies
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


@dataclass
class Part:
    """Decoded messages screened together: their parcels as one batch, and how to encode them."""

    batch: ParcelBatch
    messages: list[MessageOut]
    raws: list[RawMessage]
    parcel_json: Callable[[int], bytes]


@dataclass
class Prepared:
    """A batch decoded and validated, not yet screened: its parts in input order, and its dead letters so far."""

    raws: list[RawMessage]
    parts: list[Part]
    result: BatchResult
    decided_at: str

    @property
    def batches(self) -> list[ParcelBatch]:
        """The parcel batches of the parts (where state columns are filled before `finish`)."""
        return [part.batch for part in self.parts]


class BatchProcessor:
    """Screens batches of raw messages with one screener and a bounded set of vocabularies.

    Messages the fast decoder (fast_columns.py) can prove valid go bytes -> columns in Numba; every
    other message is decoded and validated alone by the reference path (decode.py + columns.py),
    which says exactly what is wrong with it. Both intern into the same vocabularies, so a parcel gets
    the same columns, and the same decision, whichever path and whatever batch it came in.

    `process` is `prepare` then `finish`; a stateful worker fills the batches' consignee columns in
    between, from the state partitions' answers (screener/kafka/state_client.py).
    """

    def __init__(self, screener: Screener, max_message_bytes: int = 1 << 20, *, fast: bool = True,
                 max_record_bytes: int = 1_000_000, dead_letters_per_message: int = 100,
                 vocabulary_max_strings: int = 2_000_000) -> None:
        """Screens with `screener`; the rest bounds input, output and memory (see Settings)."""
        self.screener = screener
        self.max_message_bytes = max_message_bytes
        self.fast = fast
        self.max_record_bytes = max_record_bytes
        self.dead_letters_per_message = dead_letters_per_message
        self.vocabularies = VocabularyGenerations(max_message_bytes, vocabulary_max_strings)

    @property
    def generations(self) -> int:
        """How many generations of vocabularies there have been."""
        return self.vocabularies.count

    @property
    def vocab(self) -> Vocabularies:
        """The current generation of vocabularies (entities seen lately)."""
        return self.vocabularies.vocab

    def process(self, raws: list[RawMessage]) -> BatchResult:
        """Screen a batch; every message ends as decisions and/or dead-letter records."""
        return self.finish(self.prepare(raws))

    def prepare(self, raws: list[RawMessage]) -> Prepared:
        """Decode and validate a batch (dead letters made here); never raises on input."""
        self.vocabularies.bound()
        decided_at = now_iso()
        try:
            return self._prepare(raws, decided_at)
        except Exception:  # a bug must not stop the worker or lose the batch
            log.exception("decoding a batch of %d messages failed; retrying one message at a time", len(raws))
        prepared = Prepared(raws, [], BatchResult([], BatchOutcome()), decided_at)
        for raw in raws:
            try:
                one = self._prepare([raw], decided_at)
            except Exception as exc:
                log.exception("message %s/%s@%s failed", raw.topic, raw.partition, raw.offset)
                _internal_error(prepared.result, raw, exc)
                continue
            prepared.parts += one.parts
            prepared.result.records += one.result.records
            prepared.result.outcome.merge(one.result.outcome)
        return prepared

    def finish(self, prepared: Prepared, failed: dict[int, str] | None = None) -> BatchResult:
        """Screen and encode the prepared parts (state columns filled); `failed`: parts whose state lookup
        failed, by index, with why (their messages are dead-lettered). Never raises on input."""
        result = prepared.result
        for k, part in enumerate(prepared.parts):
            if failed and k in failed:
                for raw in part.raws:
                    _internal_error(result, raw, RuntimeError(failed[k]))
                continue
            try:
                one = BatchResult([], BatchOutcome())
                self._screen(part, prepared.decided_at, one)
            except Exception:
                log.exception("screening %d messages failed; retrying one message at a time", len(part.raws))
                one = self._screen_one_by_one(part, prepared.decided_at)
            result.records += one.records
            result.outcome.merge(one.outcome)
        return result

    def _screen_one_by_one(self, part: Part, decided_at: str) -> BatchResult:
        """Each message of a part decoded and screened alone, with the state columns the part was given."""
        out = BatchResult([], BatchOutcome())
        for m, raw in zip(part.messages, part.raws):
            try:
                one = self._prepare([raw], decided_at)
                for sub in one.parts:
                    if sub.batch.n != m.hi - m.lo:
                        raise RuntimeError("the message decoded alone gave other parcels")
                    for name in STATE_NUMBER_FIELDS:
                        if name in part.batch.numbers:
                            sub.batch.numbers[name] = part.batch.numbers[name][m.lo:m.hi].copy()
                    self._screen(sub, decided_at, one.result)
            except Exception as exc:
                log.exception("message %s/%s@%s failed", raw.topic, raw.partition, raw.offset)
                one = Prepared([raw], [], BatchResult([], BatchOutcome()), decided_at)
                _internal_error(one.result, raw, exc)
            out.records += one.result.records
            out.outcome.merge(one.result.outcome)
        return out

    def _prepare(self, raws: list[RawMessage], decided_at: str) -> Prepared:
        prepared = Prepared(raws, [], BatchResult([], BatchOutcome()), decided_at)
        left: list[int] = list(range(len(raws)))
        if self.fast and raws:
            fast = self.vocabularies.decoder.build([r.value for r in raws])
            left = fast.left
            if left and getattr(self.screener, "in_input_order", False):
                # State sees parcels in input order (a parcel behind its own sequence is a replay): a batch
                # with messages the fast path refuses goes the reference way whole, in order.
                left = list(range(len(raws)))
            elif len(fast.taken):
                prepared.parts.append(self._fast_part(raws, fast, prepared.result))
        for j in left:
            part = self._reference_message(raws[j], decided_at, prepared.result)
            if part is not None:
                prepared.parts.append(part)
        return prepared

    def _fast_part(self, raws: list[RawMessage], fast: FastDecoded, result: BatchResult) -> Part:
        batch = fast.batch
        bounds = np.searchsorted(batch.message_index, np.arange(len(fast.taken) + 1)).tolist()
        taken = [raws[j] for j in fast.taken.tolist()]
        messages = [MessageOut(fast.manifest_ids[k], raw.source(), bounds[k], bounds[k + 1], 0,
                               fast.manifest_fields(k)) for k, raw in enumerate(taken)]
        span = fast.parcel_span
        buf = fast.buf

        def parcel_json(i: int) -> bytes:
            return buf[span[0, i]:span[1, i]].tobytes()

        result.outcome.messages["ok"] += len(messages)
        _sequence(messages, taken, batch)
        return Part(batch, messages, taken, parcel_json)

    def _reference_message(self, raw: RawMessage, decided_at: str, result: BatchResult) -> Part | None:
        """Decode and validate one message with the reference path (it says what is wrong, parcel by parcel)."""
        records, outcome = result.records, result.outcome
        dec = decode(raw, self.max_message_bytes)
        if isinstance(dec, Rejection):
            key, value = dead_letter(raw, dec, raw.value or b"", at=decided_at)
            records.append((DEAD_LETTER, key, value))
            outcome.messages["dead_letter"] += 1
            outcome.dead_letters[dec.reason] += 1
            return None
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
        message = MessageOut(dec.manifest_id, raw.source(), 0, batch.n, len(rejected), dict(dec.meta))
        rows = dec.parcels

        def parcel_json(i: int) -> bytes:
            return orjson.dumps(rows[int(batch.source_row[i])])

        _sequence([message], [raw], batch)
        return Part(batch, [message], [raw], parcel_json)

    def _screen(self, part: Part, decided_at: str, result: BatchResult) -> None:
        """Screen one part and encode its decisions (a receipt even for no parcels)."""
        batch, messages, raws, parcel_json = part.batch, part.messages, part.raws, part.parcel_json
        outcome = result.outcome
        if batch.n == 0:
            screened = ScreenResult.empty()
        else:
            t0 = time.perf_counter()
            screened = self.screener.screen(batch)
            outcome.kernel_seconds += time.perf_counter() - t0
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


def _internal_error(result: BatchResult, raw: RawMessage, exc: BaseException) -> None:
    """Dead-letter a whole message a bug (or a failed state lookup) kept from being screened."""
    rej = Rejection("internal_error", f"screening failed: {type(exc).__name__}: {exc}")
    key, value = dead_letter(raw, rej, raw.value or b"")
    result.records.append((DEAD_LETTER, key, value))
    result.outcome.messages["dead_letter"] += 1
    result.outcome.dead_letters["internal_error"] += 1


def _sequence(messages: list[MessageOut], raws: list[RawMessage], batch: ParcelBatch) -> None:
    """Each parcel's seq, (offset << 24) | position in its message (its place in its partition, the same on a
    replay), and its input partition."""
    if batch.n == 0:
        return
    seq = np.empty(batch.n, dtype=np.int64)
    partition = np.empty(batch.n, dtype=np.int32)
    for m, raw in zip(messages, raws):
        base = max(int(raw.offset), 0) << 24
        if batch.source_row is not None:        # reference path: positions among the message's parcels
            seq[m.lo:m.hi] = base + batch.source_row[m.lo:m.hi]
        else:
            seq[m.lo:m.hi] = base + np.arange(m.hi - m.lo)
        partition[m.lo:m.hi] = raw.partition
    batch.seq, batch.partition = seq, partition


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
