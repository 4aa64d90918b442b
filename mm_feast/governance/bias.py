"""Bias in the joint embedding space: the Word Embedding Association Test (Caliskan et al., 2017)
on vectors of any modality that share one space (text concepts against image or audio groups)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WeatResult:
    effect_size: float  # Caliskan's d: difference of mean associations over their pooled std
    p_value: float  # one-sided permutation test: P(statistic of a random split >= observed)
    statistic: float
    permutations: int


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or len(rows) == 0:
        raise ValueError("each set must be a non-empty 2-D array of vectors")
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def weat(X: np.ndarray, Y: np.ndarray, A: np.ndarray, B: np.ndarray, permutations: int = 10000, seed: int = 0) -> WeatResult:
    """Is target set X closer to attribute set A (and Y to B) than chance allows?

    s(w) = mean cos(w, A) − mean cos(w, B); the statistic is Σ_X s − Σ_Y s; the effect size is
    (mean_X s − mean_Y s) / std_{X∪Y} s. The p-value counts random equal-size re-splits of X∪Y
    whose statistic reaches the observed one, (count + 1) / (permutations + 1), so it is never 0."""
    X, Y, A, B = (_unit(m) for m in (X, Y, A, B))
    if len({m.shape[1] for m in (X, Y, A, B)}) != 1:
        raise ValueError("all four sets must be vectors of one space (the same dimension)")
    targets = np.vstack([X, Y])
    association = (targets @ A.T).mean(axis=1) - (targets @ B.T).mean(axis=1)
    n_x = len(X)
    observed = float(association[:n_x].sum() - association[n_x:].sum())
    spread = float(association.std(ddof=1)) if len(association) > 1 else 0.0
    effect = float((association[:n_x].mean() - association[n_x:].mean()) / spread) if spread > 0 else 0.0
    rng = np.random.default_rng(seed)
    total = float(association.sum())
    reached = 0
    for _ in range(int(permutations)):
        first = rng.permutation(len(association))[:n_x]
        split = association[first].sum()
        if 2 * split - total >= observed - 1e-12:  # Σ_Xi s − Σ_Yi s = 2 Σ_Xi s − Σ s
            reached += 1
    return WeatResult(effect, (reached + 1) / (int(permutations) + 1), observed, int(permutations))
