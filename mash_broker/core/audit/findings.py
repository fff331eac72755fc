"""What `mash audit verify` found: each place that does not match, and the figures it checked. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One place where the log does not match: a machine code, the place, and what is wrong."""

    code: str
    place: str
    detail: str

    def __str__(self) -> str:
        return f"{self.place}: {self.detail}"


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    covered: int = 0  # entries under the newest checkpoint
    problems: list[Problem] = field(default_factory=list)
    more: dict[str, int] = field(default_factory=dict)  # problems of a code past the first (or a cap), counted
    copies: int = 0  # stored copies checked against a hash the audited log recorded
    # Stored rows the log records no hash for (written before hashes were recorded, or never audited, such as
    # receipts in the outbox), by "table.column": a warning, not a failure.
    unrecorded: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: Problem, *, first_only: bool = False, cap: int | None = None) -> None:
        """Record a problem; with ``first_only`` (or past ``cap`` of its code) only count it in ``more``."""
        seen = sum(p.code == problem.code for p in self.problems) if first_only or cap is not None else 0
        if (first_only and seen) or (cap is not None and seen >= cap):
            self.more[problem.code] = self.more.get(problem.code, 0) + 1
        else:
            self.problems.append(problem)
