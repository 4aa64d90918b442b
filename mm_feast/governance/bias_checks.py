"""The bias checks a repo declares (``<repo>/bias/checks.yaml``, beside the quality suites and the
safety thresholds): which view, which two sets of text concepts, which two groups of items, which
neutral queries, and the effect size over which a model version may not be promoted.

Kept in the repo so a team reviews a change of the release gate like any other change."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mm_feast.core.errors import InvalidArgument
from mm_feast.core.yaml_files import load_mapping

CHECKS_FILE = Path("bias") / "checks.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # a check's name is also its report's file name


def _number(value: Any, kind: type, where: str, minimum: float) -> Any:
    """``value`` as ``kind`` (int or float), at least ``minimum``; else a one-line error."""
    try:
        number = kind(value)
        if isinstance(value, bool) or (kind is int and float(value) != number):
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidArgument(f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if number < minimum:
        raise InvalidArgument(f"{where}: must be at least {minimum}, got {value!r}")
    return number


@dataclass(frozen=True)
class GroupSpec:
    """A group of a view's items: by a manifest column (equal to, or containing, a value) or as
    the ``top`` items nearest a text query."""

    name: str
    column: Optional[str] = None
    equals: Optional[str] = None
    contains: Optional[str] = None
    query: Optional[str] = None
    top: int = 10

    def describe(self) -> str:
        if self.query is not None:
            return f"top {self.top} items for {self.query!r}"
        test = f"= {self.equals!r}" if self.equals is not None else f"contains {self.contains!r}"
        return f"manifest {self.column} {test}"


@dataclass(frozen=True)
class BiasCheck:
    """One association test (text concepts X, Y against item groups A, B) and its skew queries."""

    name: str
    view: str
    concepts: tuple[tuple[str, tuple[str, ...]], tuple[str, tuple[str, ...]]]
    groups: tuple[GroupSpec, GroupSpec]
    neutral_queries: tuple[str, ...] = ()


@dataclass(frozen=True)
class BiasConfig:
    max_effect_size: float = 0.8  # the release gate: |Caliskan's d| above this refuses promotion
    permutations: int = 10000
    seed: int = 0
    top_k: int = 10  # retrieval skew looks at this many hits per neutral query
    checks: tuple[BiasCheck, ...] = field(default_factory=tuple)

    def for_view(self, view: str) -> list[BiasCheck]:
        return [c for c in self.checks if c.view == view]


def _group(name: str, spec: Any, where: str) -> GroupSpec:
    if not isinstance(spec, dict):
        raise InvalidArgument(f"{where}: expected a mapping with 'column' and 'equals'/'contains', or 'query'")
    unknown = set(spec) - {"column", "equals", "contains", "query", "top"}
    if unknown:
        raise InvalidArgument(f"{where}: unknown setting(s) {sorted(unknown)}")
    if "query" in spec:
        if "column" in spec:
            raise InvalidArgument(f"{where}: a group is chosen by 'column' or by 'query', not both")
        return GroupSpec(name, query=str(spec["query"]), top=_number(spec.get("top", 10), int, f"{where}.top", 1))
    if "column" not in spec or ("equals" in spec) == ("contains" in spec):
        raise InvalidArgument(f"{where}: give 'column' with exactly one of 'equals' or 'contains' (or a 'query')")
    return GroupSpec(name, column=str(spec["column"]), equals=None if "equals" not in spec else str(spec["equals"]),
                     contains=None if "contains" not in spec else str(spec["contains"]))


def _pair(value: Any, where: str) -> list[tuple[str, Any]]:
    if not isinstance(value, dict) or len(value) != 2:
        raise InvalidArgument(f"{where}: expected exactly two named entries")
    return [(str(k), v) for k, v in value.items()]


def _check(data: Any, where: str) -> BiasCheck:
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: expected a mapping")
    missing = {"name", "view", "concepts", "groups"} - set(data)
    if missing:
        raise InvalidArgument(f"{where}: missing {sorted(missing)}")
    unknown = set(data) - {"name", "view", "concepts", "groups", "neutral_queries"}
    if unknown:
        raise InvalidArgument(f"{where}: unknown setting(s) {sorted(unknown)}")
    if not _NAME.match(str(data["name"])):
        raise InvalidArgument(f"{where}.name: use letters, digits, '_', '-' and '.', got {data['name']!r}")
    concepts = []
    for name, phrases in _pair(data["concepts"], f"{where}.concepts"):
        if not isinstance(phrases, list) or len(phrases) < 2 or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise InvalidArgument(f"{where}.concepts.{name}: expected a list of at least two phrases")
        concepts.append((name, tuple(phrases)))
    groups = [_group(name, spec, f"{where}.groups.{name}") for name, spec in _pair(data["groups"], f"{where}.groups")]
    queries = data.get("neutral_queries", []) or []
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise InvalidArgument(f"{where}.neutral_queries: expected a list of phrases")
    return BiasCheck(str(data["name"]), str(data["view"]), (concepts[0], concepts[1]), (groups[0], groups[1]), tuple(queries))


def parse_bias_config(data: Any, where: str) -> BiasConfig:
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: expected a mapping with 'checks'")
    unknown = set(data) - {"max_effect_size", "permutations", "seed", "top_k", "checks"}
    if unknown:
        raise InvalidArgument(f"{where}: unknown setting(s) {sorted(unknown)}")
    checks = tuple(_check(c, f"{where}: checks[{i}]") for i, c in enumerate(data.get("checks") or []))
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"{where}: check names must be unique, got {names}")
    defaults = BiasConfig()
    return BiasConfig(
        _number(data.get("max_effect_size", defaults.max_effect_size), float, f"{where}: max_effect_size", 0.0),
        _number(data.get("permutations", defaults.permutations), int, f"{where}: permutations", 1),
        _number(data.get("seed", defaults.seed), int, f"{where}: seed", 0),
        _number(data.get("top_k", defaults.top_k), int, f"{where}: top_k", 1),
        checks)


def load_bias_config(repo_path: Optional[Path]) -> BiasConfig:
    """The repo's bias checks, or none (and the default gate) when it has no ``bias/checks.yaml``."""
    path = Path(repo_path or ".") / CHECKS_FILE
    data = load_mapping(path) if repo_path is not None else None
    return BiasConfig() if data is None else parse_bias_config(data, str(path))
