"""Shared helpers for the benchmarks: latency percentiles and a markdown table row."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Latency:
    name: str
    samples_ms: np.ndarray

    @property
    def p50(self) -> float:
        return float(np.percentile(self.samples_ms, 50))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.samples_ms, 95))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.samples_ms, 99))

    @property
    def qps(self) -> float:
        return 1000.0 / float(np.mean(self.samples_ms))

    def row(self, extra: str = "") -> str:
        return f"| {self.name} | {self.p50:.2f} | {self.p95:.2f} | {self.p99:.2f} | {self.qps:.0f} | {extra} |"


def measure(name: str, fn: Callable[[int], object], repeats: int, warmup: int = 5) -> Latency:
    """Time ``fn(i)`` for ``repeats`` calls after ``warmup`` untimed calls."""
    for i in range(warmup):
        fn(i)
    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - start) * 1000.0)
    return Latency(name, np.asarray(samples))


LATENCY_HEADER = "| what | p50 ms | p95 ms | p99 ms | throughput /s | notes |\n|---|---|---|---|---|---|"


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Word-level edit distance over the whole set, divided by the reference word count."""
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref, hyp = reference.split(), hypothesis.split()
        row = list(range(len(hyp) + 1))
        for i, r in enumerate(ref, 1):
            previous, row[0] = row[0], i
            for j, h in enumerate(hyp, 1):
                previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
        errors += row[-1]
        words += len(ref)
    return errors / max(words, 1)
