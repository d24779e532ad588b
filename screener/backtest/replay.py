"""Replays a Source through the worker's own batch code (`BatchProcessor`), without a broker.

Messages go in event-time order, `batch_messages` at a time. Outcomes arrive late, as in life: a
parcel's outcome becomes visible `label_delay` after its event time, and is applied to the entity
statistics before the first batch whose earliest event time is at or past that moment. So no parcel's
features can depend on an outcome from its own future or from within the delay.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from screener.backtest.sources import Source
from screener.features.extras import ExtraColumns
from screener.model.screener import ModelScreener
from screener.pipeline.batch import ParcelBatch, ScreenResult
from screener.pipeline.decode import RawMessage
from screener.pipeline.processor import BatchProcessor

DAY_MS = 86_400_000
REPLAY_TOPIC = "replay"


@dataclass
class Screened:
    """What the replay recorded of every screened parcel, in screening order."""

    parcel_ids: list[str] = field(default_factory=list)
    time_ms: list[np.ndarray] = field(default_factory=list)
    lane: list[np.ndarray] = field(default_factory=list)
    score: list[np.ndarray] = field(default_factory=list)
    hits: list[np.ndarray] = field(default_factory=list)      # bool [n, rules]
    random: list[np.ndarray] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)  # only when asked for

    def concat(self, name: str) -> np.ndarray:
        """One array of a recorded column over all batches."""
        parts = getattr(self, name)
        return np.concatenate(parts) if parts else np.zeros(0)


@dataclass
class ReplayStats:
    """Counts of a replay."""

    messages: int = 0
    parcels: int = 0
    dead_letters: int = 0
    outcomes_applied: int = 0


class Replay:
    """Drives a ModelScreener through BatchProcessor over a Source, releasing outcomes after the label delay."""

    def __init__(self, screener: ModelScreener, label_delay_days: float = 14.0, batch_messages: int = 64,
                 keep_features: bool = False) -> None:
        self.screener = screener
        self.processor = BatchProcessor(screener)
        self.delay_ms = int(label_delay_days * DAY_MS)
        self.batch_messages = batch_messages
        self.keep_features = keep_features
        self.screened = Screened()
        self.stats = ReplayStats()
        self._pending: list[tuple[int, int, str]] = []  # (visible at, sequence, parcel_id)
        self._seq = 0
        self._outcomes: dict = {}
        screener.on_screen = self._record
        # Stateful rules (R11) learn from the same delayed outcomes: they keep the entities of parcels that
        # will get one, and see each outcome when the features do.
        self._stateful = screener.rules if hasattr(screener.rules, "observe") else None
        if self._stateful is not None:
            self._stateful.retain = self._outcomes

    def _record(self, batch: ParcelBatch, X: np.ndarray, result: ScreenResult) -> None:
        s = self.screened
        s.parcel_ids.extend(batch.parcel_ids)
        s.time_ms.append(batch.event_time_ms.copy())
        s.lane.append(result.lane.copy())
        s.score.append(result.score.copy())
        n_rules = len(self.screener.rule_ids)
        bits = np.unpackbits(np.ascontiguousarray(result.hits).view(np.uint8), axis=1, bitorder="little")
        s.hits.append(bits[:, :n_rules].astype(bool))
        s.random.append(result.random.copy())
        if self.keep_features:
            s.features.append(X)
        for pid, t in zip(batch.parcel_ids, batch.event_time_ms.tolist()):
            if pid in self._outcomes:
                heapq.heappush(self._pending, (t + self.delay_ms, self._seq, pid))
                self._seq += 1

    def release(self, until_ms: int) -> None:
        """Apply every outcome visible at `until_ms` to the entity statistics."""
        ready, visible = [], []
        while self._pending and self._pending[0][0] <= until_ms:
            at, _, pid = heapq.heappop(self._pending)
            ready.append(pid)
            visible.append(at)
        if ready:
            self.stats.outcomes_applied += self.screener.features.stats.observe(
                (pid, self._outcomes[pid].illicit) for pid in ready)
            if self._stateful is not None:
                self._stateful.observe((pid, self._outcomes[pid].illicit, at) for pid, at in zip(ready, visible))

    def release_all(self) -> None:
        """Apply every outcome still pending (the state at the end of history, e.g. for a model's snapshot)."""
        self.release(np.iinfo(np.int64).max)

    def run(self, source: Source, on_progress: Callable[[int], None] | None = None) -> None:
        """Replay every message of the source (state carries over between calls, for train-then-valid)."""
        self._outcomes.update(source.outcomes)
        if source.extras is not None:
            if self.screener.features.extras is None:
                self.screener.features.extras = ExtraColumns()
            self.screener.features.extras.merge(source.extras)
        msgs = source.messages
        for start in range(0, len(msgs), self.batch_messages):
            chunk = msgs[start:start + self.batch_messages]
            self.release(min(m.time_ms for m in chunk))
            raws = [RawMessage(m.value, REPLAY_TOPIC, 0, self.stats.messages + k) for k, m in enumerate(chunk)]
            outcome = self.processor.process(raws).outcome
            self.stats.messages += len(chunk)
            self.stats.parcels += outcome.parcels
            self.stats.dead_letters += sum(outcome.dead_letters.values())
            if on_progress is not None:
                on_progress(len(chunk))

