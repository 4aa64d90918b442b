"""`mm-feast validate`: the repo's suites on demand, over its media and its stored embeddings; the
exit status is non-zero exactly when a blocking expectation fails, and results plus GE Data Docs
are stored per run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from feast import FeatureStore

from mm_feast.cli import main
from mm_feast.pipeline.ingest import ensure_embeddings
from mm_feast.quality.reports import read_reports
from mm_feast.sources import MediaSource
from mm_feast.plugin.views import item, item_embedding_view, segment, segment_embedding_view

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("validate_repo")
    docs = repo / "docs"
    docs.mkdir()
    for i, text in enumerate(["A red circle.\n\nA blue square.", "A green triangle.", "A purple cross.\n\nAn orange circle."]):
        (docs / f"d{i}.txt").write_text(text + "\n")
    (repo / "feature_store.yaml").write_text(
        "project: quality_validate\nprovider: local\nregistry: data/registry.db\n"
        "online_store:\n  type: mm_feast.online_store.MmMilvusOnlineStore\n  path: data/online_store.db\n"
        "offline_store:\n  type: mm_feast.offline_store.MmFileOfflineStore\nbatch_engine:\n  type: mm_feast.plugin.engine.MmLocalComputeEngine\nentity_key_serialization_version: 3\n"
    )
    blocks = segment_embedding_view("doc_blocks", MediaSource(name="docs", root="docs"), "text", MINILM)
    pooled = item_embedding_view("doc_items", blocks)
    FeatureStore(repo_path=str(repo)).apply([segment, item, blocks, pooled])
    ensure_embeddings(pooled.batch_source, repo, show_progress=False)
    return repo


def _suite(repo: Path, text: str) -> None:
    (repo / "quality").mkdir(exist_ok=True)
    (repo / "quality" / "doc_blocks.yaml").write_text(text)


def test_clean_repo_passes_and_stores_results_and_data_docs(repo: Path, capsys):
    _suite(repo, "")
    assert main(["validate", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "doc_blocks (doc_blocks_source" in out and "doc_items (doc_items_source" in out
    assert "validation passed" in out
    [report] = [r for r in read_reports(repo, "doc_blocks_source") if r["run_id"].startswith("validate-")]
    stages = {v["stage"]: v for v in report["validations"]}
    assert stages["media"]["rows"] == 3 and stages["embeddings"]["rows"] == 5 and report["success"]
    assert Path(stages["embeddings"]["result_path"]).is_file() and Path(stages["embeddings"]["docs_path"]).is_file()
    assert Path(report["data_docs"]).is_file()


def test_a_blocking_failure_exits_non_zero_through_the_real_cli(repo: Path):
    _suite(repo, "embeddings:\n  - name: embedding_norm\n    min_value: 1.5\n    max_value: 2.0\n")
    cli = Path(sys.executable).with_name("mm-feast")
    result = subprocess.run([str(cli), "validate", "--repo", str(repo), "--views", "doc_blocks", "--no-docs"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "block embedding_norm: 5 row(s)" in result.stdout and "validation FAILED" in result.stdout
    assert "doc_items" not in result.stdout  # --views narrows it


def test_warnings_alone_pass(repo: Path, capsys):
    _suite(repo, "media:\n  text:\n    - name: text_not_empty\n      min_value: 30\n      severity: warn\n")
    assert main(["validate", "--repo", str(repo), "--views", "doc_blocks", "--stage", "media", "--no-docs"]) == 0
    out = capsys.readouterr().out
    assert "warn  text_not_empty: 2 row(s)" in out and "validation passed" in out


def test_show_suite_prints_the_effective_suite(repo: Path, capsys):
    _suite(repo, "media:\n  text:\n    - name: text_max_length\n      max_value: 123\n")
    assert main(["validate", "--repo", str(repo), "--show-suite", "doc_blocks"]) == 0
    out = capsys.readouterr().out
    assert str(repo / "quality" / "doc_blocks.yaml") in out and "max_value: 123" in out and "embedding_drift" in out
