"""Problems found in a rule pack, and the exception that refuses a pack carrying any of them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pack: where (rule id, position in its condition) and what."""

    message: str
    rule_id: str | None = None       # None for pack-level problems
    line: int | None = None          # 1-based line inside the condition text
    col: int | None = None           # 1-based column inside the condition text
    where: str = ""                  # extra location, e.g. "(pack line 41)" or "reference/fx.csv line 3 column 5"
    key: str | None = None           # the rule's key at fault ("weight", "condition", "examples[2]", ...)

    def __str__(self) -> str:
        """Human form: `rule R1 condition 1:14: message`."""
        parts = []
        if self.rule_id is not None:
            parts.append(f"rule {self.rule_id}")
        if self.line is not None:
            parts.append(f"condition {self.line}:{self.col}")
        if self.where:
            parts.append(self.where)
        prefix = " ".join(parts) if parts else "pack"
        return f"{prefix}: {self.message}"


class PackError(Exception):
    """A rule pack refused as a whole; `problems` lists every problem found."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"rule pack {path} refused, {len(self.problems)} problem(s):\n{lines}")
