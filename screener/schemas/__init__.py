"""JSON Schemas of every message the screener reads or writes (see docs/wire-format.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
NAMES = ("manifest", "decision", "flagged", "dead-letter", "inspection")


@cache
def load(name: str) -> dict:
    """The JSON Schema document called `name` (one of NAMES)."""
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())


def validator(name: str):
    """A function that raises jsonschema.ValidationError when a value does not match schema `name`."""
    import jsonschema  # a test/tooling dependency, not needed by the worker
    from referencing import Registry, Resource

    # Schemas refer to each other by relative URL (flagged -> decision); register all by $id.
    registry = Registry().with_resources(
        (load(n)["$id"], Resource.from_contents(load(n))) for n in NAMES)
    v = jsonschema.Draft202012Validator(load(name), registry=registry)
    return v.validate
