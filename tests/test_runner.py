"""LocalRunner: batch stages see every item, chunk stages stream, and the prefetch stages run one
chunk ahead in a worker thread when asked (or when a core is free for them); results are the same
either way."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from mm_feast.pipeline.context import RunContext
from mm_feast.pipeline.runner import LocalRunner, core_free_for_decoding
from mm_feast.pipeline.stage import Quarantined, SourceRun, Stage, StageOutput, Work
from mm_feast.sources import ManifestRow

NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)


class Decode(Stage):
    name, scope, prefetch = "decode", "chunk", True

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        self.threads.add(threading.current_thread().name)
        run.context.once(("shared", len(works)), lambda: run.context.get("anything"))  # reads the context from the worker
        bad = [w for w in works if w.row.item_id.endswith("7")]
        return StageOutput([w for w in works if w not in bad], [Quarantined(w, self.name, "sevens are refused") for w in bad])


class Model(Stage):
    name, scope = "model", "chunk"

    def __init__(self) -> None:
        self.chunks: list[int] = []

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        self.chunks.append(len(works))
        for w in works:
            w.rows = [{"item_id": w.row.item_id}]
        return StageOutput(works)


class Gate(Stage):
    name, scope = "gate", "batch"

    def run(self, works: list[Work], run: SourceRun) -> StageOutput:
        return StageOutput(works[:-1], [Quarantined(works[-1], self.name, "the last one")])


def run_with(prefetch):
    decode, model = Decode(), Model()
    works = [Work(ManifestRow(f"item{i:02d}", f"/x/{i}", "text", NOW)) for i in range(20)]
    run = SourceRun(source=None, encoder=SimpleNamespace(device="cpu"), gate=None, context=RunContext(None), now=NOW)
    kept, refused = LocalRunner(chunk_items=6, prefetch=prefetch).run([decode, model, Gate()], works, run)
    return decode, model, [w.row.item_id for w in kept], sorted((q.work.row.item_id, q.stage) for q in refused)


@pytest.mark.parametrize("prefetch", [True, False])
def test_results_and_order_do_not_depend_on_prefetch(prefetch: bool) -> None:
    decode, model, kept, refused = run_with(prefetch)
    assert kept == [f"item{i:02d}" for i in range(20) if i not in (7, 17, 19)]
    assert refused == [("item07", "decode"), ("item17", "decode"), ("item19", "gate")]
    assert model.chunks == [6, 5, 5, 2]  # chunks of 6, minus what decode refused
    worker = any(name.startswith("mm-feast-prefetch") for name in decode.threads)
    assert worker is prefetch and (threading.current_thread().name in decode.threads) is not prefetch


def test_prefetch_is_on_when_the_model_leaves_a_core_free(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import torch

    assert core_free_for_decoding(SimpleNamespace(device="cuda:0"))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not core_free_for_decoding(SimpleNamespace(device="cpu"))
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert core_free_for_decoding(SimpleNamespace(device="cpu"))
