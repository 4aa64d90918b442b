"""Runs a stage list over the items of one source, in this process.

"batch" stages see all items at once; each run of consecutive "chunk" stages streams chunks of
items, and its leading ``prefetch`` stages (decoding) work on the next chunk in a worker thread
while the later ones (the model) work on this one. ``mm_feast.pipeline.ray_runner`` runs the same
stage list on a Ray cluster.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional, Sequence

from mm_feast.pipeline.stage import Quarantined, SourceRun, Stage, Work


def run_chain(stages: Sequence[Stage], works: list[Work], run: SourceRun) -> tuple[list[Work], list[Quarantined]]:
    quarantined: list[Quarantined] = []
    for stage in stages:
        started = time.perf_counter()
        out = stage.run(works, run)
        run.add_seconds({stage.name: time.perf_counter() - started})
        works = out.kept
        quarantined += out.quarantined
    return works, quarantined


def core_free_for_decoding(encoder: Any) -> bool:
    """Whether a decode thread beside the model has a core of its own: always when the model runs
    on an accelerator, on the CPU only when torch leaves a core unused (with none free, a decode
    thread can only take time from the model; on 2 cores the difference was within noise,
    docs/benchmarks.md)."""
    if str(getattr(encoder, "device", "cpu")) != "cpu":
        return True
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else 1
    return (os.cpu_count() or 1) > threads


class StageRunner:
    """Runs a stage list: each "batch" stage here on every item, each run of consecutive "chunk"
    stages through :meth:`stream`, which is what runners differ in."""

    def run(self, stages: Sequence[Stage], works: list[Work], run: SourceRun) -> tuple[list[Work], list[Quarantined]]:
        quarantined: list[Quarantined] = []
        i = 0
        while i < len(stages):
            if stages[i].scope == "batch":
                works, refused = run_chain([stages[i]], works, run)
                i += 1
            else:
                j = i
                while j < len(stages) and stages[j].scope == "chunk":
                    j += 1
                works, refused = self.stream(stages[i:j], works, run)
                i = j
            quarantined += refused
        return works, quarantined

    def stream(self, stages: Sequence[Stage], works: list[Work], run: SourceRun) -> tuple[list[Work], list[Quarantined]]:
        """Run chunk stages over ``works`` chunk by chunk, calling ``run.chunk_done`` per chunk."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the runner holds (workers, a cluster it started)."""


class LocalRunner(StageRunner):
    """``prefetch``: run the decode stages one chunk ahead in a thread; None decides per encoder
    (:func:`core_free_for_decoding`)."""

    def __init__(self, chunk_items: int = 32, prefetch: Optional[bool] = None):
        self.chunk_items = max(1, int(chunk_items))
        self.prefetch = prefetch

    def stream(self, stages: Sequence[Stage], works: list[Work], run: SourceRun) -> tuple[list[Work], list[Quarantined]]:
        split = 0
        prefetch = self.prefetch if self.prefetch is not None else core_free_for_decoding(run.encoder)
        while prefetch and split < len(stages) and stages[split].prefetch:
            split += 1
        head, tail = stages[:split], stages[split:]
        chunks = [works[k : k + self.chunk_items] for k in range(0, len(works), self.chunk_items)]
        kept: list[Work] = []
        quarantined: list[Quarantined] = []
        if not chunks:
            return kept, quarantined
        if not head:  # no prefetch: every stage in this thread, chunk after chunk
            for chunk in chunks:
                done, refused = run_chain(stages, chunk, run)
                run.chunk_done(done, refused)
                kept += done
                quarantined += refused
            return kept, quarantined
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mm-feast-prefetch") as pool:
            pending: Future = pool.submit(run_chain, head, chunks[0], run)
            for index in range(len(chunks)):
                ready, refused = pending.result()
                if index + 1 < len(chunks):
                    pending = pool.submit(run_chain, head, chunks[index + 1], run)
                done, refused_later = run_chain(tail, ready, run)
                run.chunk_done(done, refused + refused_later)
                kept += done
                quarantined += refused + refused_later
        return kept, quarantined
