"""One settings object for every command: defaults, then SCREENER_* environment, then CLI flags."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "SCREENER_"


@dataclass(frozen=True)
class Settings:
    """Every tunable of the screener; field `x` is read from `SCREENER_X`."""

    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = "parcel-screener"
    topic_prefix: str = ""
    partitions: int = 4
    replication_factor: int = 1
    # Batching: the agent takes up to this many messages, or what arrived within batch_within_s.
    batch_max_messages: int = 64
    batch_within_s: float = 0.05
    max_message_bytes: int = 1 << 20
    # Largest record the worker produces (Kafka's default topic limit is 1 MiB): a manifest's decisions
    # are split into as many `decisions` records as this needs.
    max_record_bytes: int = 1_000_000
    # Past this many bad parcels in one message, one summary dead letter stands for all of them.
    dead_letters_per_message: int = 100
    # Distinct strings kept for interning before a fresh generation of vocabularies starts (bounds memory).
    vocabulary_max_strings: int = 2_000_000
    # Worker processes of `screener worker` (0 = one per core).
    processes: int = 0
    pack: str = "rules/default.toml"
    model: str = ""  # model directory from `screener train`; empty = rules only
    # How long (parcel event time) the facts of a selected parcel are kept for its inspection outcome.
    facts_retention_days: float = 14.0
    # Group timing: Faust's defaults made a new worker wait 32 s for its first event and
    # 111 s to resume after a SIGKILL on the embedded broker; these give 5 s and 14 s.
    broker_session_timeout: float = 6.0
    broker_heartbeat_interval: float = 1.0
    broker_rebalance_timeout: float = 10.0
    broker_commit_interval: float = 1.0
    # A starting worker that reaches no broker within this many seconds exits (0 = wait forever).
    broker_wait_s: float = 20.0
    # How long a fetch may wait for data (see screener/transport.py: the embedded broker holds it).
    fetch_max_wait_ms: int = 100
    metrics_port: int = 0  # 0 = no /metrics server
    web_port: int = 0  # 0 = Faust's web server disabled
    daily_volume: int = 20_000_000
    peak_factor: float = 10.0
    log_level: str = "WARNING"
    data_dir: str = ".screener-data"

    @property
    def bootstrap_servers(self) -> list[str]:
        """Broker URL as a list of host:port for plain Kafka clients."""
        url = self.broker
        for scheme in ("kafka://", "aiokafka://", "tcp://"):
            if url.startswith(scheme):
                url = url[len(scheme):]
        return [hp.strip() for hp in url.split(",") if hp.strip()]

    @property
    def faust_broker(self) -> str:
        """Broker URL in the form Faust expects (kafka://h:p;h:p)."""
        return "kafka://" + ";".join(self.bootstrap_servers)

    def topic(self, name: str) -> str:
        """Full topic name for one of manifests, decisions, flagged, dead-letter."""
        return f"{self.topic_prefix}{name}"

    @property
    def manifests_topic(self) -> str:
        """Input topic."""
        return self.topic("manifests")

    @property
    def decisions_topic(self) -> str:
        """Every parcel's decision."""
        return self.topic("decisions")

    @property
    def flagged_topic(self) -> str:
        """Yellow and red parcels, one message each, for inspectors."""
        return self.topic("flagged")

    @property
    def dead_letter_topic(self) -> str:
        """Bad messages and bad parcels with reason and original bytes."""
        return self.topic("dead-letter")

    @property
    def required_peak_rate(self) -> float:
        """Parcels per second the pipeline must sustain on a peak day."""
        return self.daily_volume * self.peak_factor / 86_400.0

    def replace(self, **changes: Any) -> Settings:
        """Copy with the given fields changed; None values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then SCREENER_* variables, then explicit overrides (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f, raw)
        for k, v in (overrides or {}).items():
            if v is not None:
                values[k] = v
        return cls(**values)


def _coerce(f: dataclasses.Field, raw: str) -> Any:
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str}.get(str(f.type), str)
    try:
        return kind(raw)
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected {kind.__name__}") from exc
