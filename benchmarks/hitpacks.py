"""Rule packs for the hit-rate benchmarks: the default pack plus the rules of benchmarks/packs/<name>.toml.

The extra rules only add hits, so a comparison with the default pack isolates what a higher hit
rate costs (reasons, flagged records) and nothing else. The composed pack reads the default
pack's reference tables by absolute path and is written where the caller asks.
"""

from __future__ import annotations

import re
from pathlib import Path

from .procs import REPO

PACKS = Path(__file__).resolve().parent / "packs"
DEFAULT_PACK = REPO / "rules" / "default.toml"
_REFERENCE = re.compile(r'^reference\s*=\s*"([^"]*)"', re.MULTILINE)


def compose(name: str, directory: Path) -> Path:
    """Write `<directory>/<name>.toml` = rules/default.toml + benchmarks/packs/<name>.toml; its path."""
    text = DEFAULT_PACK.read_text()
    ref = _REFERENCE.search(text)
    reference = (DEFAULT_PACK.parent / (ref.group(1) if ref else "reference")).resolve()
    text = _REFERENCE.sub(f'reference = "{reference}"', text, count=1) if ref else text
    text = text.replace('id = "default"', f'id = "default.{name}"', 1)
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{name}.toml"
    out.write_text(text.rstrip("\n") + "\n\n" + (PACKS / f"{name}.toml").read_text())
    return out

