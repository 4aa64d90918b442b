"""One `feast materialize` is one pass: each media source is scanned once, each file opened once
(its hash, type, probe and decode share one read) and decoded at most once per modality (two text views with one segmentation share the decode),
each offline parquet read at most once, and pooled views reuse their parents' rows from memory.
`get_historical_features` only reads: no scan, no decode, no file written.

Counted by wrapping the real functions in this process (Feast's SDK, Milvus Lite, real models).
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore
from PIL import Image

import mm_feast.pipeline.segments as segments_module
from mm_feast.sources import MediaSource
from mm_feast.plugin.views import item, segment
from feast_repo import write_feature_store_yaml
from mm_feast.synthetic import AUDIO_SAMPLE_RATE, SOUNDS, render_shape, render_sound, write_video, write_wav

pytestmark = pytest.mark.slow


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "docs").mkdir()
    for i, colour in enumerate(["red", "green", "blue"]):
        (repo / "docs" / f"doc{i}.txt").write_text(f"A {colour} circle.\n\nA {colour} square on grey.\n")
    Image.fromarray(render_shape("red", "circle", size=64)).save(repo / "docs" / "red_circle.png")
    write_video(repo / "docs" / "clip.mp4", [render_shape(c, "square", size=64) for c in ["red", "blue"] * 6], fps=6)
    write_wav(repo / "docs" / "tone.wav", render_sound(sorted(SOUNDS)[0], 1.5), AUDIO_SAMPLE_RATE)
    (repo / "definitions.py").write_text(textwrap.dedent("""\
        from mm_feast.sources import MediaSource
        from mm_feast.plugin.views import item_embedding_view, segment_embedding_view

        notes = MediaSource(name="notes", root="docs")
        clip_blocks = segment_embedding_view("clip_blocks", notes, "text", "mm-feast/clip-shapes")
        minilm_blocks = segment_embedding_view("minilm_blocks", notes, "text", "sentence-transformers/all-MiniLM-L6-v2")
        minilm_docs = item_embedding_view("minilm_docs", minilm_blocks)
        clip_docs = item_embedding_view("clip_docs", clip_blocks)
        images = segment_embedding_view("images", notes, "image", "mm-feast/clip-shapes")
        frames = segment_embedding_view("frames", notes, "video", "mm-feast/clip-shapes")
        windows = segment_embedding_view("windows", notes, "audio", "mm-feast/clap-sounds")
        """))
    write_feature_store_yaml(repo, "one_pass", show_progress=False)
    return repo


_OPENS: Counter = Counter()
_COUNTING: list[bool] = [False]


def _audit(event: str, args: tuple) -> None:
    if _COUNTING[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENS[os.path.realpath(os.fsdecode(args[0]))] += 1


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one counts only while a test asks


@pytest.fixture()
def counters(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counter]:
    """Scans, every open of a file (Python's ``open`` seen by an audit hook, and PyAV's C-level
    ``av.open`` of a path), decodes per modality and parquet reads."""
    import av

    counts: dict[str, Counter] = {"scans": Counter(), "opens": _OPENS, "decodes": Counter(), "parquet_reads": Counter()}
    real_scan, real_av_open = MediaSource.scan, av.open
    real_segment, real_read = segments_module.segment_file, pd.read_parquet

    def scan(self, *args, **kwargs):
        counts["scans"][self.name] += 1
        return real_scan(self, *args, **kwargs)

    def av_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            counts["opens"][os.path.realpath(os.fsdecode(file))] += 1
        return real_av_open(file, *args, **kwargs)

    def segment_file(source, *args, **kwargs):
        counts["decodes"][(str(getattr(source, "path", source)), kwargs.get("modality"))] += 1
        return real_segment(source, *args, **kwargs)

    def read_parquet(path, *args, **kwargs):
        counts["parquet_reads"][str(path)] += 1
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(MediaSource, "scan", scan)
    monkeypatch.setattr(av, "open", av_open)
    monkeypatch.setattr(segments_module, "segment_file", segment_file)
    monkeypatch.setattr(pd, "read_parquet", read_parquet)
    _OPENS.clear()
    _COUNTING[0] = True
    yield counts
    _COUNTING[0] = False


def data_files(repo: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in (repo / "data").rglob("*") if p.is_file() and "online_store" not in p.name}


def test_one_materialize_scans_once_decodes_once_per_modality_and_reads_each_parquet_once(repo: Path, counters) -> None:
    import importlib.util

    store = FeatureStore(repo_path=str(repo))
    spec = importlib.util.spec_from_file_location("one_pass_defs", repo / "definitions.py")
    defs = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(defs)  # type: ignore[union-attr]
    store.apply([item, segment, defs.clip_blocks, defs.minilm_blocks, defs.minilm_docs, defs.clip_docs,
                 defs.images, defs.frames, defs.windows])
    now = datetime.now(timezone.utc)
    store.materialize(now - timedelta(days=1), now + timedelta(minutes=1))

    media = sorted(str(p.resolve()) for p in (repo / "docs").iterdir())
    assert counters["scans"] == Counter({"notes": 1})
    # one open per file for its hash, its type, its probe and its decode, shared by all its views
    assert {p: n for p, n in counters["opens"].items() if p in media} == {p: 1 for p in media}
    modality = {".txt": "text", ".png": "image", ".mp4": "video", ".wav": "audio"}
    assert counters["decodes"] == Counter({(p, modality[Path(p).suffix]): 1 for p in media}), "two text views, one decode per file"
    assert all(n <= 1 for n in counters["parquet_reads"].values()), counters["parquet_reads"]
    for view, rows in {"clip_blocks": 6, "minilm_blocks": 6, "minilm_docs": 3, "clip_docs": 3, "images": 1, "frames": 2, "windows": 2}.items():
        frame = pd.read_parquet(repo / "data" / "embeddings" / f"{view}_source.parquet")
        assert len(frame) == rows, view

    # a training set only reads: nothing scanned, decoded or written
    for counter in counters.values():
        counter.clear()
    before = data_files(repo)
    blocks = pd.read_parquet(repo / "data" / "embeddings" / "minilm_blocks_source.parquet")
    counters["parquet_reads"].clear()
    entity_df = pd.DataFrame({"segment_id": blocks["segment_id"], "event_timestamp": [now + timedelta(minutes=1)] * len(blocks)})
    training = store.get_historical_features(entity_df=entity_df, features=["minilm_blocks:text", "minilm_blocks:embedding"]).to_df()
    assert list(training["text"]) == list(blocks["text"])
    assert not counters["scans"] and not counters["decodes"]
    assert not any(p in media for p in counters["opens"]), "a training set opens no media file"
    assert data_files(repo) == before, "get_historical_features must not write anything"
