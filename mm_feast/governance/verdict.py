"""What a content filter says about one input: allow, flag or block, with each finding located.

A finding is one filter's observation at one place (a character span, an audio window, a frame,
a metadata field) with a score; the thresholds turn scores into a level, and a file's verdict is
its most severe finding's level."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

Level = Literal["allow", "flag", "block"]
LEVELS: tuple[Level, ...] = ("allow", "flag", "block")


def worst(levels: Iterable[str]) -> Level:
    """The most severe of ``levels`` (allow when there are none)."""
    return max(levels, key=LEVELS.index, default="allow")  # type: ignore[return-value]


@dataclass(frozen=True)
class Finding:
    """One filter's observation: where, how strong, and what it means."""

    filter: str
    locator: str
    score: float
    level: Level
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verdict:
    """A file's (or a query's) verdict: the most severe level among its findings."""

    uri: str
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a filter that could not run says so here

    @property
    def verdict(self) -> Level:
        return worst(f.level for f in self.findings)

    @property
    def reasons(self) -> list[str]:
        """One line per finding that is not ``allow``: the filter, where, and why."""
        return [f"{f.filter} at {f.locator}: {f.reason}" for f in self.findings if f.level != "allow"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "findings": [{"filter": f.filter, "locator": f.locator, "score": f.score, "level": f.level, "reason": f.reason}
                         for f in self.findings],
            "errors": list(self.errors),
        }
