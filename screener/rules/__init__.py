"""Rule packs: analysts' TOML rules checked into IR, compiled to one Numba kernel, explained per parcel."""

from __future__ import annotations

from screener.rules.errors import PackError, Problem
from screener.rules.pack import Pack, load_pack, read_pack
from screener.rules.screener import PackScreener, load_pack_screener

__all__ = ["Pack", "PackError", "PackScreener", "Problem", "load_pack", "load_pack_screener", "read_pack"]
