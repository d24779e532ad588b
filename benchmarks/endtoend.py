"""The screener's topics, and a profile of `screener worker` draining a published backlog."""

from __future__ import annotations

import time
from pathlib import Path

from .measure import drain
from .procs import screener_worker

OUTPUTS = ("decisions", "flagged", "dead-letter")
STATE_TOPICS = ("state-requests", "state-answers", "state-changelog")   # a stateful worker's own


def topics(prefix: str) -> list[str]:
    """Input and output topics of a worker with this prefix (the harness creates them up front)."""
    return [prefix + "manifests"] + [prefix + name for name in OUTPUTS + STATE_TOPICS]


async def profile(bootstrap: str, broker_url: str, workdir: Path, prefix: str, partitions: int, parcels: int,
                  out: Path, timeout: float, seconds: float = 10.0, pack: Path | None = None) -> dict:
    """An untimed second pass over the same backlog with py-spy attached from the first decision on."""
    proc = screener_worker("profiled-" + prefix.strip("-"), broker_url, prefix, partitions, workdir, pack=pack)
    return await drain([proc], bootstrap, prefix + "decisions", partitions, parcels, timeout, profile=out,
                       profile_s=seconds, since_ms=int(time.time() * 1000))
