"""Explanations that attribute one decision across modalities: exact Shapley values over every
coalition of modalities (an absent modality takes its baseline), then a modality's share split
over its segments (a frame, a window, a text block)."""

from __future__ import annotations

from itertools import combinations
from math import factorial
from typing import Any, Callable, Mapping, Sequence

MAX_PLAYERS = 6  # 2**6 = 64 evaluations of f: exact, and cheap next to one model call


def _exact(players: Sequence[str], value: Callable[[frozenset[str]], float]) -> dict[str, float]:
    n = len(players)
    values = {frozenset(c): float(value(frozenset(c))) for k in range(n + 1) for c in combinations(players, k)}
    weights = [factorial(k) * factorial(n - k - 1) / factorial(n) for k in range(n)]
    out = {}
    for player in players:
        others = [p for p in players if p != player]
        out[player] = sum(
            weights[k] * (values[frozenset(c) | {player}] - values[frozenset(c)])
            for k in range(n) for c in combinations(others, k)
        )
    return out


def shapley(f: Callable[[dict[str, Any]], float], inputs: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, float]:
    """Each modality's exact Shapley value for ``f(inputs)`` against ``f(baseline)``; they sum to
    ``f(inputs) − f(baseline)``. ``inputs`` and ``baseline`` map modality names to embeddings (or
    segment lists); a coalition's input takes ``inputs`` for its members and ``baseline`` else."""
    players = list(inputs)
    if set(players) != set(baseline):
        raise ValueError(f"inputs and baseline must name the same modalities: {sorted(inputs)} vs {sorted(baseline)}")
    if not 1 <= len(players) <= MAX_PLAYERS:
        raise ValueError(f"exact Shapley takes 1 to {MAX_PLAYERS} modalities, got {len(players)}")
    return _exact(players, lambda coalition: f({m: inputs[m] if m in coalition else baseline[m] for m in players}))


def segment_shapley(f: Callable[[dict[str, Any]], float], inputs: Mapping[str, Sequence[Any]], baseline: Mapping[str, Sequence[Any]],
                    modality: str) -> list[float]:
    """A modality's share split over its segments (exact, up to ``MAX_PLAYERS`` segments): the
    other modalities stay as in ``inputs``, and an absent segment takes its baseline segment."""
    segments, empty = list(inputs[modality]), list(baseline[modality])
    if len(segments) != len(empty):
        raise ValueError(f"{modality}: inputs and baseline must have the same number of segments")
    names = [str(i) for i in range(len(segments))]
    if not 1 <= len(names) <= MAX_PLAYERS:
        raise ValueError(f"exact segment attribution takes 1 to {MAX_PLAYERS} segments, got {len(names)}")

    def value(coalition: frozenset[str]) -> float:
        mixed = [segments[i] if str(i) in coalition else empty[i] for i in range(len(segments))]
        return f({**inputs, modality: mixed})

    values = _exact(names, value)
    return [values[name] for name in names]
