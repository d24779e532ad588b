"""Encodes screening results as `decisions` messages (one per input message) and `flagged` messages
(one per yellow/red parcel, keyed by parcel_id). See docs/wire-format.md."""

from __future__ import annotations

from itertools import chain

import numpy as np
import orjson

from screener.pipeline.batch import LANE_GREEN, LANE_NAMES, ParcelBatch, ScreenResult
from screener.pipeline.decode import DecodedMessage
from screener.pipeline.screening import Screener

DECISION_SCHEMA_VERSION = 1


def ruleset_info(screener: Screener) -> dict:
    """Id, version and hash of the rule set, carried by every decision."""
    return {"id": screener.ruleset_id, "version": str(screener.version), "hash": screener.hash}


def explained_indices(result: ScreenResult) -> np.ndarray:
    """Parcels that need reasons: any rule hit or a random pick (most parcels need none)."""
    return np.flatnonzero(result.hits.any(axis=1) | result.random)


def encode(messages: list[DecodedMessage], batch: ParcelBatch, result: ScreenResult, screener: Screener,
           decided_at: str) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """(decisions, flagged) as lists of (key, value) for the whole batch."""
    ruleset = ruleset_info(screener)
    lanes = [LANE_NAMES[x] for x in result.lane.tolist()]
    scores = np.round(result.score, 6).tolist()
    decisions = [{"parcel_id": p, "lane": ln, "score": s, "reasons": []}
                 for p, ln, s in zip(batch.parcel_ids, lanes, scores)]
    for i in explained_indices(result).tolist():
        decisions[i]["reasons"] = [r.as_dict() for r in screener.explain(batch, result, i)]

    out_decisions: list[tuple[bytes, bytes]] = []
    out_flagged: list[tuple[bytes, bytes]] = []
    msg_index = batch.message_index
    bounds = np.searchsorted(msg_index, np.arange(len(messages) + 1)).tolist()
    for m, msg in enumerate(messages):
        lo, hi = bounds[m], bounds[m + 1]
        if lo == hi:
            continue
        envelope = {"schema_version": DECISION_SCHEMA_VERSION, "manifest_id": msg.manifest_id,
                    "source": msg.raw.source(), "ruleset": ruleset, "decided_at": decided_at}
        out_decisions.append((msg.manifest_id.encode(), orjson.dumps({**envelope, "decisions": decisions[lo:hi]})))
    flagged = np.flatnonzero(result.lane != LANE_GREEN).tolist()
    if flagged:
        rows = list(chain.from_iterable(m.parcels for m in messages))
        for i in flagged:
            msg = messages[int(msg_index[i])]
            record = {"schema_version": DECISION_SCHEMA_VERSION, **decisions[i], "manifest_id": msg.manifest_id,
                      "ruleset": ruleset, "decided_at": decided_at, "source": msg.raw.source(),
                      "parcel": rows[int(batch.source_row[i])]}
            out_flagged.append((batch.parcel_ids[i].encode(), orjson.dumps(record)))
    return out_decisions, out_flagged
