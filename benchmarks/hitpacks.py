"""Rule packs for the hit-rate and state benchmarks: the default pack plus the rules of
benchmarks/packs/<name>.toml, or plus the stateful rules of rules/stateful.toml.

The extra rules only add hits (or state), so a comparison with the default pack isolates what they
cost and nothing else. A composed pack reads the default pack's reference tables by absolute path and
is written where the caller asks.
"""

from __future__ import annotations

import re
from pathlib import Path

from .procs import REPO

PACKS = Path(__file__).resolve().parent / "packs"
DEFAULT_PACK = REPO / "rules" / "default.toml"
STATEFUL_PACK = REPO / "rules" / "stateful.toml"
_REFERENCE = re.compile(r'^reference\s*=\s*"([^"]*)"', re.MULTILINE)


def _write(name: str, extra: str, directory: Path) -> Path:
    """Write `<directory>/<name>.toml` = rules/default.toml (id `default.<name>`) + `extra`; its path."""
    text = DEFAULT_PACK.read_text()
    ref = _REFERENCE.search(text)
    reference = (DEFAULT_PACK.parent / (ref.group(1) if ref else "reference")).resolve()
    text = _REFERENCE.sub(f'reference = "{reference}"', text, count=1) if ref else text
    text = text.replace('id = "default"', f'id = "default.{name}"', 1)
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{name}.toml"
    out.write_text(text.rstrip("\n") + "\n\n" + extra)
    return out


def compose(name: str, directory: Path) -> Path:
    """Write `<directory>/<name>.toml` = rules/default.toml + benchmarks/packs/<name>.toml; its path."""
    return _write(name, (PACKS / f"{name}.toml").read_text(), directory)


def compose_stateful(directory: Path, capacity_per_hour: int = 100_000) -> Path:
    """Write `<directory>/stateful.toml` = rules/default.toml + rules/stateful.toml's rules + an hourly capacity."""
    text = STATEFUL_PACK.read_text()
    rules = text[text.index("[[rules]]"):].rstrip("\n")
    capacity = f"\n\n[capacity]\nyellow_per_hour = {capacity_per_hour}\nred_per_hour = {capacity_per_hour}\n"
    return _write("stateful", rules + capacity, directory)
