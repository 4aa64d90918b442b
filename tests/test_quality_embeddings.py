"""The embedding gate: per-row vector statistics validated by real GE 1.x, on Feast's own write
path (``write_to_online_store`` bypasses ingest) into a real Milvus Lite store, with drift measured
against the reference centroid stored by the first ingest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore

from mm_feast.cli import main
from mm_feast.pipeline.ingest import ensure_embeddings
from mm_feast.quality.embedding_gates import embedding_stats, load_reference
from mm_feast.quality.gate import decide
from mm_feast.quality.ge import ge_run_name, validate
from mm_feast.services.push import PushResult, gated_write_to_online_store
from mm_feast.quality.reports import read_reports
from mm_feast.quality.suites import load_suite
from mm_feast.stores.quarantine import entries
from mm_feast.sources import MediaSource
from mm_feast.plugin.views import segment, segment_embedding_view

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
VIEW = "blocks"


def _unit(rng: np.random.Generator, dim: int = DIM) -> list[float]:
    v = rng.normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


def test_each_broken_vector_is_caught_by_its_own_expectation_and_nan_needs_its_own():
    rng = np.random.default_rng(0)
    good = _unit(rng)
    nan = list(good)
    nan[3] = float("nan")
    vectors = {"good": good, "nan": nan, "short": good[:-1], "zero": [0.0] * DIM, "long": (np.array(good) * 3).tolist(),
               "inf": [float("inf")] + good[1:]}
    stats = embedding_stats(list(vectors), list(vectors.values()), DIM)
    suite = load_suite(None, [])
    result = validate(stats.frame, suite.embeddings, suite_name="unit.embeddings", stage="embeddings", run_name="unit",
                      variables={"expected_dim": DIM}, unavailable=stats.unavailable)

    decisions = decide(result, "embedding_gate", {k: [k] for k in vectors}, {})
    assert set(decisions.blocked) == {"nan", "short", "zero", "long", "inf"}
    failed = {k: f.expectations for k, f in decisions.blocked.items()}
    assert failed["short"] == ["embedding_dim"] and decisions.blocked["short"].observed == {"embedding_dim": DIM - 1}
    assert failed["long"] == ["embedding_norm"] and decisions.blocked["long"].observed["embedding_norm"] == pytest.approx(3.0)
    assert "embedding_not_constant" in failed["zero"]
    # GE's range check skips NaN: the NaN row passes embedding_norm and is caught by the two checks made for it
    assert failed["nan"] == ["embedding_finite", "embedding_norm_present"] and failed["inf"][0] == "embedding_finite"
    assert decisions.blocked["nan"].observed["embedding_finite"] == 1
    assert "drift" in " ".join(result.skipped)  # no reference yet: reported as skipped, not passed


@pytest.mark.parametrize("run_id", ["039208192316", "0a8679395089"])
def test_run_ids_that_read_as_dates_keep_their_data_docs_and_do_not_crash_ge(tmp_path: Path, run_id: str):
    """GE 1.x parses a run name as a date when no run time is given: "039208192316" became year
    392 and its data docs went to another path (a CI flake), "0a8679395089" raised OverflowError."""
    rng = np.random.default_rng(0)
    stats = embedding_stats(["a", "b"], [_unit(rng), _unit(rng)], DIM)
    suite = load_suite(None, [])
    before = datetime.now(timezone.utc).replace(microsecond=0)
    result = validate(stats.frame, suite.embeddings, suite_name="unit.embeddings", stage="embeddings", run_name=run_id,
                      repo_path=tmp_path, variables={"expected_dim": DIM}, unavailable=stats.unavailable)
    after = datetime.now(timezone.utc)
    assert result.success and result.docs_path and Path(result.docs_path).is_file(), result.docs_path
    stored = json.loads(Path(result.result_path).read_text())["meta"]["run_id"]
    assert stored["run_name"] == ge_run_name(run_id)
    assert before <= datetime.fromisoformat(stored["run_time"]) <= after, stored["run_time"]  # the run's own time, not the id read as a date


def test_a_blocking_batch_level_expectation_quarantines_the_whole_batch(tmp_path: Path):
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality" / "default.yaml").write_text(
        "embeddings:\n  - name: embedding_duplicate_rate\n    severity: block\n    max_value: 0.2\n")
    rng = np.random.default_rng(1)
    same = _unit(rng)
    vectors = [same, same, same, _unit(rng)]
    ids = ["a", "b", "c", "d"]
    stats = embedding_stats(ids, vectors, DIM)
    result = validate(stats.frame, load_suite(tmp_path, []).embeddings, suite_name="dup.embeddings", stage="embeddings",
                      run_name="dup", variables={"expected_dim": DIM}, unavailable=stats.unavailable)

    blocked = decide(result, "embedding_gate", {i: [i] for i in ids}, {}).blocked
    assert set(blocked) == set(ids)  # a rate concerns every row of the batch
    assert blocked["d"].observed["embedding_duplicate_rate"] == pytest.approx(0.5)
    assert "(batch-level)" in blocked["d"].reason


@pytest.fixture(scope="module")
def pushed_repo(tmp_path_factory) -> tuple[Path, FeatureStore, pd.DataFrame]:
    """A Feast repo on Milvus Lite with one 384-d view whose offline rows were ingested (and so
    whose drift reference exists)."""
    repo = tmp_path_factory.mktemp("push_repo")
    docs = repo / "docs"
    docs.mkdir()
    topics = ["a red circle", "a blue square", "a green triangle", "a purple cross", "a yellow circle", "an orange square"]
    for i, topic in enumerate(topics):
        (docs / f"d{i}.txt").write_text(f"The picture shows {topic}.\n\nIt is {topic} on a dark background.\n")
    (repo / "feature_store.yaml").write_text(
        "project: quality_push\nprovider: local\nregistry: data/registry.db\n"
        "online_store:\n  type: mm_feast.online_store.MmMilvusOnlineStore\n  path: data/online_store.db\n"
        "offline_store:\n  type: mm_feast.offline_store.MmFileOfflineStore\nbatch_engine:\n  type: mm_feast.plugin.engine.MmLocalComputeEngine\nentity_key_serialization_version: 3\n"
    )
    view = segment_embedding_view(VIEW, MediaSource(name="docs", root="docs"), "text", MINILM)
    store = FeatureStore(repo_path=str(repo))
    store.apply([segment, view])
    summary = ensure_embeddings(view.batch_source, repo, show_progress=False)
    assert summary.ingested == len(topics) and summary.segments == 2 * len(topics)
    offline = pd.read_parquet(view.batch_source.resolved_path(repo))
    return repo, store, offline


def _online(store: FeatureStore, keys: list[str]) -> list:
    return store.get_online_features(features=[f"{VIEW}:embedding"], entity_rows=[{"segment_id": k} for k in keys]).to_dict()["embedding"]


@dataclass
class Pushed:
    """One gated push of a good and four bad rows, with what it left right after it: the tests
    that change the quarantine later (release, retry) then still run alone or in any order."""

    good: list[float]
    result: PushResult
    vectors: list
    held: dict


@pytest.fixture(scope="module")
def pushed(pushed_repo) -> Pushed:
    repo, store, offline = pushed_repo
    template = offline.iloc[0]
    rows = []
    good = list(template.embedding)
    for key, vector in {"good": good, "nan": [float("nan")] + good[1:], "short": good[:-1],
                        "doubled": (np.array(good) * 2).tolist(), "flat": [0.05] * DIM}.items():
        rows.append({**template.to_dict(), "segment_id": f"push#{key}", "embedding": vector})
    frame = pd.DataFrame(rows)
    result = gated_write_to_online_store(store, VIEW, frame)
    return Pushed(good, result, _online(store, list(frame.segment_id)), {e.item_id: e for e in entries(repo, VIEW)})


def test_push_writes_good_rows_and_quarantines_bad_ones_with_their_payload(pushed_repo, pushed):
    repo, store, offline = pushed_repo
    result, held = pushed.result, pushed.held

    assert (result.seen, result.written, result.quarantined) == (5, 1, 4)
    assert np.allclose(pushed.vectors[0], pushed.good, atol=1e-6) and pushed.vectors[1:] == [None] * 4  # nothing bad reached Milvus
    assert set(held) == {"push#nan", "push#short", "push#doubled", "push#flat"}
    assert held["push#short"].expectations == ["embedding_dim"] and held["push#short"].observed == {"embedding_dim": DIM - 1}
    assert held["push#nan"].observed["embedding_finite"] == 1
    assert held["push#doubled"].observed["embedding_norm"] == pytest.approx(2.0, rel=1e-4)
    assert all(e.stage == "push_gate" and e.locator.startswith(offline.iloc[0].uri) for e in held.values())
    run = [r for r in read_reports(repo, VIEW) if r["run_id"] == result.run_id]
    assert run and not run[0]["success"]


def test_release_admit_writes_a_pushed_row_and_retry_revalidates(pushed_repo, pushed, capsys):
    repo, store, offline = pushed_repo
    held = pushed.held

    assert main(["quarantine", "release", held["push#doubled"].qid[:8], "--admit", "--repo", str(repo), "--note", "scaled on purpose"]) == 0
    assert main(["quarantine", "release", held["push#flat"].qid, "--repo", str(repo)]) == 0

    assert "written=1" in capsys.readouterr().out
    doubled, flat = _online(store, ["push#doubled", "push#flat"])
    assert np.linalg.norm(doubled) == pytest.approx(2.0, rel=1e-4) and flat is None
    still_open = {e.item_id for e in entries(repo, VIEW)}
    assert "push#flat" in still_open  # retried under the same suite: quarantined again
    closed = {(e.item_id, e.status) for e in entries(repo, VIEW, include_closed=True) if e.status != "open"}
    assert closed == {("push#doubled", "admitted"), ("push#flat", "released")} and "push#doubled" not in still_open
    admitted_run = [r for r in read_reports(repo, VIEW) if r["overridden"]][-1]
    assert admitted_run["overridden"][0]["expectation"] == "embedding_norm"


def test_drift_from_the_stored_reference_warns_but_writes(pushed_repo):
    repo, store, offline = pushed_repo
    reference = load_reference(repo, f"{VIEW}_source", offline.model_version.iloc[0])
    assert reference is not None and reference.n == len(offline) and reference.dim == DIM
    rng = np.random.default_rng(7)
    template = offline.iloc[0].to_dict()
    strangers = pd.DataFrame([{**template, "segment_id": f"random#{i}", "embedding": _unit(rng)} for i in range(4)])
    familiar = offline.head(4).assign(segment_id=[f"again#{i}" for i in range(4)])

    drifted = gated_write_to_online_store(store, VIEW, strangers)
    steady = gated_write_to_online_store(store, VIEW, familiar)

    assert (drifted.written, drifted.quarantined) == (4, 0) and (steady.written, steady.quarantined) == (4, 0)
    assert drifted.validation["stages"]["push"]["warned"] == ["embedding_drift"]
    assert steady.validation["stages"]["push"]["warned"] == []
    [report] = [r for r in read_reports(repo, VIEW) if r["run_id"] == drifted.run_id]
    [drift] = [f for f in report["validations"][0]["failures"] if f["expectation"] == "embedding_drift"]
    assert drift["observed"] > 0.25 and drift["rows"] is None  # mean cosine drop over the batch
