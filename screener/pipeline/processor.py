"""One batch of raw messages in, the messages to produce out: decode, validate, screen, encode.

Pure compute, no Kafka: the Faust agent (screener/app.py), the benchmarks and the tests all drive
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

from screener.pipeline.batch import LANE_NAMES, Vocabularies
from screener.pipeline.columns import BatchBuilder
from screener.pipeline.deadletter import dead_letter, now_iso
from screener.pipeline.decode import DecodedMessage, RawMessage, Rejection, decode_many
from screener.pipeline.encode import encode
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


class BatchProcessor:
    """Screens batches of raw messages with one screener and one growing set of vocabularies."""

    def __init__(self, screener: Screener, max_message_bytes: int = 1 << 20,
                 vocab: Vocabularies | None = None) -> None:
        self.screener = screener
        self.max_message_bytes = max_message_bytes
        self.builder = BatchBuilder(vocab)

    @property
    def vocab(self) -> Vocabularies:
        """The worker's vocabularies (entities seen so far)."""
        return self.builder.vocab

    def process(self, raws: list[RawMessage]) -> BatchResult:
        """Screen a batch; every message ends as decisions and/or dead-letter records."""
        try:
            return self._process(raws)
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

    def _process(self, raws: list[RawMessage]) -> BatchResult:
        decided_at = now_iso()
        outcome = BatchOutcome()
        records: list[tuple[str, bytes | None, bytes]] = []
        good: list[DecodedMessage] = []
        for raw, dec in zip(raws, decode_many(raws, self.max_message_bytes)):
            if isinstance(dec, Rejection):
                key, value = dead_letter(raw, dec, raw.value or b"", at=decided_at)
                records.append((DEAD_LETTER, key, value))
                outcome.messages["dead_letter"] += 1
                outcome.dead_letters[dec.reason] += 1
            else:
                good.append(dec)
                outcome.messages["ok"] += 1
        if not good:
            return BatchResult(records, outcome)

        batch, rejected = self.builder.build(good)
        for rej in rejected:
            msg = good[rej.message_index]
            pid = rej.parcel.get("parcel_id") if type(rej.parcel) is dict else None
            key, value = dead_letter(msg.raw, rej.rejection, orjson.dumps(rej.parcel),
                                     manifest_id=msg.manifest_id, parcel_index=rej.parcel_index,
                                     parcel_id=pid if type(pid) is str else None, at=decided_at)
            records.append((DEAD_LETTER, key, value))
            outcome.dead_letters[rej.rejection.reason] += 1
        if batch.n == 0:
            return BatchResult(records, outcome)

        t0 = time.perf_counter()
        result = self.screener.screen(batch)
        outcome.kernel_seconds = time.perf_counter() - t0
        decisions, flagged = encode(good, batch, result, self.screener, decided_at)
        records.extend((DECISIONS, k, v) for k, v in decisions)
        records.extend((FLAGGED, k, v) for k, v in flagged)

        outcome.parcels = batch.n
        counts = np.bincount(result.lane, minlength=len(LANE_NAMES))
        outcome.lanes = {name: int(c) for name, c in zip(LANE_NAMES, counts)}
        outcome.rule_hits = _rule_hits(result.hits, getattr(self.screener, "rule_ids", None))
        if result.random.any():
            outcome.rule_hits["random"] += int(result.random.sum())
        return BatchResult(records, outcome)


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
