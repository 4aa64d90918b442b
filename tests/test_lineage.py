"""Lineage end to end on the demo repo: real feast CLI (SQL registry), Milvus Lite, trained models.

One repo is built per module (feast apply + materialize through the CLI); the tests then read
it, change one file, erase one file and upgrade one model, each checking only what it changed.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from mm_feast.stores.quarantine import load_records
from mm_feast.cli.demo import DemoCorpus, apply_and_materialize, write_demo_media
from mm_feast.encoders import get_encoder
from mm_feast.lineage import LineageDB, open_store
from mm_feast.services.lineage import verify_segments
from mm_feast.plugin.milvus.store import close_connections
from mm_feast.cli.report import all_runs, latest_runs
from mm_feast.services.search import CrossModalSearch

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIP, CLAP, MINILM = "mm-feast/clip-shapes", "mm-feast/clap-sounds", "sentence-transformers/all-MiniLM-L6-v2"
SEGMENT_VIEWS = ["image_embeddings", "video_frame_embeddings", "audio_window_embeddings", "text_block_embeddings", "text_block_minilm"]

pytestmark = pytest.mark.slow


def make_repo(parent: Path, project: str) -> Path:
    """A copy of the demo repo's definitions and feature_store.yaml under its own project name."""
    repo = parent / "repo"
    (repo / "data").mkdir(parents=True)  # SQLite and Milvus Lite files go there; neither creates it
    shutil.copy(REPO_ROOT / "feature_repo" / "definitions.py", repo)
    yaml = (REPO_ROOT / "feature_repo" / "feature_store.yaml").read_text()
    (repo / "feature_store.yaml").write_text(re.sub(r"project: \w+", f"project: {project}", yaml))
    return repo


def mm_feast_cli(*args: str) -> str:
    """Run the real `mm-feast` console script; fails the test with its output on error."""
    close_connections()  # Milvus Lite: one process per database file
    cli = Path(sys.executable).with_name("mm-feast")
    result = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mm-feast {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


@dataclass
class Demo:
    repo: Path
    corpus: DemoCorpus
    store: object

    @property
    def db(self) -> LineageDB:
        return LineageDB.for_repo(self.repo)

    def rows(self, view: str) -> pd.DataFrame:
        return pd.read_parquet(self.repo / "data" / "embeddings" / f"{view}_source.parquet")

    def online(self, view: str, keys: list[str], features: list[str]) -> dict:
        join_key = "item_id" if view in ("video_embeddings", "audio_embeddings") else "segment_id"
        return self.store.get_online_features(  # type: ignore[attr-defined]
            features=[f"{view}:{f}" for f in features], entity_rows=[{join_key: k} for k in keys]
        ).to_dict()

    def materialize(self, views: list[str] | None = None) -> None:
        now = datetime.now(timezone.utc)
        self.store.materialize(now - timedelta(days=2), now + timedelta(minutes=1), feature_views=views)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    repo = make_repo(tmp_path_factory.mktemp("lineage"), f"lineage_{uuid.uuid4().hex[:8]}")
    corpus = write_demo_media(repo)
    apply_and_materialize(repo)  # the real `feast apply` and `feast materialize-incremental`
    yield Demo(repo, corpus, open_store(repo))
    close_connections()


def test_every_segment_has_a_record_whose_locator_reproduces_the_stored_vector(demo: Demo):
    db = demo.db
    for view in SEGMENT_VIEWS:
        rows = demo.rows(view)
        records = db.by_view(view)
        assert {(r.entity_key, r.lineage_id) for r in records} == set(zip(rows.segment_id, rows.lineage_id)), view
        by_id = rows.set_index("lineage_id")
        for record in records:
            row = by_id.loc[record.lineage_id]
            [raw] = record.parents
            assert raw.is_raw and (raw.uri, raw.sha256) == (row.uri, row.sha256)
            assert (record.run_id, record.encoder.model_version) == (row.run_id, row.model_version)
            assert record.encoder.preprocess_hash and record.encoder.code_version.startswith("0.")
            assert db.preprocess_config(record.encoder.preprocess_hash)["modality"] == row.modality
            if row.modality == "text":
                assert (raw.char_start, raw.char_end) == (row.char_start, row.char_end)
            elif row.modality in ("audio", "video"):
                assert raw.start_s == pytest.approx(row.start_s) and raw.end_s == pytest.approx(row.end_s)
            if row.modality == "audio":
                assert raw.sample_rate == get_encoder(CLAP).sample_rate
        # decode each raw file at the recorded locator (independently of the segmenter) and re-encode
        checks = verify_segments(db, records, demo.repo / "data" / "embeddings" / f"{view}_source.parquet")
        worst = min(checks, key=lambda c: c.cosine)
        assert len(checks) == len(rows) and worst.cosine >= 0.999, (view, worst.record.entity_key, worst.cosine)

    # a pooled item lists every frame it was pooled from, each with its presentation time
    frames = demo.rows("video_frame_embeddings")
    for record in db.by_view("video_embeddings"):
        expected = frames[(frames.item_id == record.item_id) & (frames.sha256 == record.sha256)]
        assert sorted(p.parent_lineage_id for p in record.parents) == sorted(expected.lineage_id)
        assert sorted(p.start_s for p in record.parents) == sorted(expected.start_s)


def test_the_lineage_id_comes_back_from_milvus_with_hits_and_online_features(demo: Demo):
    rows = demo.rows("image_embeddings").set_index("segment_id")
    keys = list(rows.index[:5])
    online = demo.online("image_embeddings", keys, ["lineage_id"])
    assert online["lineage_id"] == list(rows.loc[keys, "lineage_id"])
    hits = CrossModalSearch(demo.store).search("a red circle", views=["image_embeddings"], top_k=5)
    assert hits and all(h.lineage_id == rows.loc[h.entity_key, "lineage_id"] for h in hits)
    # and the CLI resolves a lineage id from a hit back to the raw file
    out = mm_feast_cli("lineage", hits[0].lineage_id, "--repo", str(demo.repo))
    assert rows.loc[hits[0].entity_key, "uri"] in out and "whole file" in out


def test_a_fused_feature_lists_all_its_parents_with_their_own_locators(demo: Demo):
    fused = demo.rows("report_context").set_index("segment_id").loc["txt_0#c=0-13"]
    [record] = [r for r in demo.db.by_entity_key("txt_0#c=0-13", view="report_context") if r.deleted_at is None]
    assert record.kind == "fused" and [p.role for p in record.parents] == ["anchor", "context"]
    anchor, context = record.parents
    assert (anchor.parent_source, anchor.parent_entity_key) == ("text_block_embeddings_source", "txt_0#c=0-13")
    assert (anchor.char_start, anchor.char_end) == (0, 13) and anchor.uri.endswith("doc_0.txt")
    assert (context.parent_source, context.parent_entity_key) == ("image_embeddings_source", "img_blue_cross#whole")
    assert context.uri.endswith("blue_cross.png") and context.position == "whole"
    # the row carries the same parents, online too, and is the normalised mean of their vectors
    parents = [anchor.parent_lineage_id, context.parent_lineage_id]
    assert list(fused.parent_lineage_ids) == parents
    assert demo.online("report_context", ["txt_0#c=0-13"], ["parent_lineage_ids"])["parent_lineage_ids"][0] == parents
    text = demo.rows("text_block_embeddings").set_index("lineage_id").loc[anchor.parent_lineage_id, "embedding"]
    image = demo.rows("image_embeddings").set_index("lineage_id").loc[context.parent_lineage_id, "embedding"]
    expected = np.asarray(text) + np.asarray(image)
    assert np.allclose(fused.embedding, expected / np.linalg.norm(expected), atol=1e-5)
    [top] = CrossModalSearch(demo.store).search("a blue cross", views=["report_context"], top_k=1)
    assert top.entity_key == "txt_0#c=0-13"
    # the printed tree reaches both raw files and their positions
    out = mm_feast_cli("lineage", "txt_0#c=0-13", "--view", "report_context", "--repo", str(demo.repo))
    assert "doc_0.txt" in out and "chars [0, 13)" in out and "blue_cross.png" in out and "whole file" in out


def _run_totals(repo: Path, since: str) -> dict[str, tuple[int, int]]:
    """(items ingested, encoder calls) per source, summed over the runs recorded since ``since``."""
    totals: dict[str, tuple[int, int]] = {}
    for run in (r for r in all_runs(repo) if r["at"] >= since):
        ingested, calls = totals.get(run["source"], (0, 0))
        totals[run["source"]] = (ingested + run["ingested"], calls + run["encoder_calls"])
    return totals


def test_changing_one_file_keeps_the_old_record_adds_a_new_one_and_reencodes_only_that_file(demo: Demo):
    doc = demo.repo / "data" / "media" / "text" / "doc_1.txt"
    old = {r.entity_key: r for r in demo.db.by_view("text_block_embeddings") if r.item_id == "txt_1"}
    calls = {m: get_encoder(m).calls for m in (CLIP, CLAP, MINILM)}
    started = datetime.now(timezone.utc).isoformat()
    doc.write_text(doc.read_text().replace("green", "black"))  # same length: same block offsets
    demo.materialize()

    assert {m: get_encoder(m).calls - calls[m] for m in calls} == {CLIP: 1, CLAP: 0, MINILM: 1}
    totals = _run_totals(demo.repo, since=started)  # a source may run more than once (fusion reads it too)
    for source in ("text_block_embeddings_source", "text_block_minilm_source"):
        assert totals[source] == (1, 1), source
    for source in ("image_embeddings_source", "video_frame_embeddings_source", "audio_window_embeddings_source"):
        assert totals[source] == (0, 0), source
    now = {r.entity_key: r for r in demo.db.by_view("text_block_embeddings") if r.item_id == "txt_1" and r.sha256 != old[next(iter(old))].sha256}
    assert set(now) == set(old)  # a new record per block...
    still = demo.db.by_lineage_ids([r.lineage_id for r in old.values()])
    assert {r.lineage_id for r in still} == {r.lineage_id for r in old.values()}  # ...and the old ones kept
    online = demo.online("text_block_embeddings", sorted(now), ["lineage_id"])
    assert online["lineage_id"] == [now[k].lineage_id for k in sorted(now)]
    # the fused rows of that report follow the new text, with the unchanged image as context
    fused = {r.entity_key: r for r in demo.db.by_view("report_context") if r.item_id == "txt_1" and r.sha256 == now[next(iter(now))].sha256}
    assert set(fused) == set(now) and all(r.parents[0].parent_lineage_id == now[k].lineage_id for k, r in fused.items())
    out = mm_feast_cli("lineage", sorted(now)[0], "--view", "text_block_embeddings", "--repo", str(demo.repo))
    assert out.count("[current]") == 1 and out.count("[superseded]") == 1


def test_impacted_delete_removes_exactly_the_derived_rows_online_and_offline(demo: Demo):
    image = demo.repo / "data" / "media" / "images" / "blue_cross.png"
    report_blocks = sorted(demo.rows("text_block_embeddings").query("item_id == 'txt_0'").segment_id)
    before = {v: len(demo.rows(v)) for v in [*SEGMENT_VIEWS, "report_context", "video_embeddings", "audio_embeddings", "image_captions"]}

    listing = mm_feast_cli("impacted", str(image), "--repo", str(demo.repo))
    assert "img_blue_cross#whole" in listing and all(k in listing for k in report_blocks)
    out = mm_feast_cli("impacted", str(image), "--delete", "--reason", "test erasure", "--repo", str(demo.repo))
    assert "erased: 7 records, 7 offline rows, 7 online rows" in out, out  # its vector, its caption, 5 fused blocks

    after = {v: len(demo.rows(v)) for v in before}
    assert after == {**before, "image_embeddings": before["image_embeddings"] - 1, "report_context": before["report_context"] - 5,
                     "image_captions": before["image_captions"] - 1}
    assert "img_blue_cross" not in set(demo.rows("image_captions").item_id)  # erasing an image erases its caption
    assert "img_blue_cross" not in set(demo.rows("image_embeddings").item_id)
    assert demo.online("image_embeddings", ["img_blue_cross#whole"], ["lineage_id"])["lineage_id"] == [None]
    assert demo.online("report_context", report_blocks, ["lineage_id"])["lineage_id"] == [None] * 5
    assert None not in demo.online("text_block_embeddings", report_blocks, ["lineage_id"])["lineage_id"]  # not derived
    search = CrossModalSearch(demo.store)
    assert "img_blue_cross" not in {h.item_id for h in search.search("a blue cross", views=["image_embeddings"], top_k=30)}
    assert "txt_0" not in {h.item_id for h in search.search("a blue cross", views=["report_context"], top_k=30)}
    [audit] = demo.db.erasures()
    assert (audit.records, audit.offline_rows, audit.online_rows, audit.reason) == (7, 7, 7, "test erasure")
    assert all(r.erasure_id == audit.erasure_id for r in demo.db.derived_from_file(uri=str(image.resolve())))

    # materializing again must not bring the erased content back
    demo.materialize(["image_embeddings", "report_context"])
    assert "img_blue_cross" not in set(demo.rows("image_embeddings").item_id)
    assert demo.online("image_embeddings", ["img_blue_cross#whole"], ["lineage_id"])["lineage_id"] == [None]
    quarantine = load_records(demo.repo, "image_embeddings_source")
    assert "erased" in set(quarantine[quarantine.item_id == "img_blue_cross"].stage)


def _retrained_copy(model_dir: Path, dest: Path) -> Path:
    """The same architecture with slightly different weights: a new model version, same dim."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, dest)
    weights = load_file(dest / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    for name in ("visual_projection.weight", "text_projection.weight"):
        weights[name] = weights[name] + 0.05 * weights[name].std() * torch.randn(weights[name].shape, generator=generator)
    save_file(weights, dest / "model.safetensors", metadata={"format": "pt"})
    return dest


def _definitions(repo: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"defs_{uuid.uuid4().hex[:6]}", repo / "definitions.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_model_upgrade_new_version_switch_rollback_and_cross_version_refusal(demo: Demo, tmp_path: Path):
    from mm_feast.services import versions
    from mm_feast.encoders.base import resolve_model_path
    from mm_feast.plugin.views import item_embedding_view, segment_embedding_view

    view = "video_frame_embeddings"
    v2_dir = _retrained_copy(Path(resolve_model_path(CLIP)), tmp_path / "clip-shapes-v2")
    v1, v2 = get_encoder(CLIP).version, get_encoder(str(v2_dir)).version
    assert v1 != v2
    defs = _definitions(demo.repo)
    frames = segment_embedding_view(view, defs.demo_media, "video", str(v2_dir), defs.segmentation)
    demo.store.apply([frames, item_embedding_view("video_embeddings", frames)])  # type: ignore[attr-defined]

    calls = get_encoder(str(v2_dir)).calls
    demo.materialize([view, "video_embeddings"])
    assert get_encoder(str(v2_dir)).calls > calls  # every video re-encoded under the new version
    demo.materialize([view, "video_embeddings"])
    runs = {r["source"]: r for r in latest_runs(demo.repo)}
    assert runs[f"{view}_source"]["encoder_calls"] == 0 and runs[f"{view}_source"]["unchanged"] == 4  # skipped
    rows = demo.rows(view)
    assert sorted(rows.groupby("model_version").size().items()) == sorted([(v1, 24), (v2, 24)])
    by_version = {r.encoder.model_version for r in demo.db.by_view(view)}
    assert by_version == {v1, v2}  # lineage tells which vectors came from which model
    keys = sorted(set(rows.segment_id))

    def served_online() -> set[str]:
        return set(demo.online(view, keys, ["model_version"])["model_version"])

    search = CrossModalSearch(demo.store)
    assert versions.served_version(demo.store, view) == v2 and served_online() == {v2}
    assert {h.model_version for h in search.search("a red circle", views=[view], top_k=5)} == {v2}

    switched = versions.switch(demo.store, view, v1)
    assert (switched.from_version, switched.to_version, switched.rows_written) == (v2, v1, 24)
    assert served_online() == {v1}
    assert {h.model_version for h in search.search("a red circle", views=[view], top_k=5)} == {v1}
    with pytest.raises(versions.CrossVersionQueryError, match="never compared"):
        search.search("a red circle", views=[view], top_k=5, model_version=v2)
    demo.materialize([view])  # the pinned version is not overwritten by the view's newer encoder
    assert served_online() == {v1}

    back = versions.rollback(demo.store, view)
    assert (back.action, back.to_version) == ("rollback", v2) and served_online() == {v2}
    assert {h.model_version for h in search.search("a red circle", views=[view], top_k=5)} == {v2}
    assert [h["action"] for h in versions.history(demo.store, view)] == ["switch", "rollback"]
