"""Correct under change, through the real `feast` CLI on Milvus Lite: a user edits, adds and
deletes files and re-runs materialize; what is served (and stored offline, and marked current in
lineage) must then match what is on disk. A stale or orphaned row is data loss, even when every
count adds up.

One repo per module: a directory source and a manifest source (timestamps two years old), one
MiniLM text view each. The tests run in order, each changing the files and checking all stores.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from mm_feast.stores.quarantine import load_records
from mm_feast.lineage import LineageDB
from mm_feast.pipeline.checkpoint import Spool, spooled_items
from mm_feast.pipeline.stage import Work
from mm_feast.sources import ManifestRow
from mm_feast.plugin.milvus.store import close_connections

from feast_repo import assert_stores_match_disk, feast, offline, write_feature_store_yaml

pytestmark = pytest.mark.slow

VIEWS = {"dir_blocks": "notes", "man_blocks": "catalog"}
OLD = "2024-06-01T00:00:00"  # over a year before now: outside materialize-incremental's default window


def now_arg(delta: timedelta = timedelta(minutes=1)) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%S")


def write_manifest(repo: Path, items: dict[str, str]) -> None:
    lines = ["item_id,uri,event_timestamp"] + [f"{item},{uri},{OLD}" for item, uri in items.items()]
    (repo / "catalog" / "manifest.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("change") / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "docs").mkdir()
    (repo / "catalog").mkdir()
    (repo / "docs" / "a.txt").write_text("Alpha one.\n\nAlpha two.\n")
    (repo / "docs" / "b.txt").write_text("Bravo one.\n")
    (repo / "docs" / "speech.txt").write_text("A speech in plain text.\n")
    (repo / "docs" / "speech.md").write_text("A speech in *markdown*.\n")  # same stem: a second item
    (repo / "catalog" / "m1.txt").write_text("Manifest one, first paragraph.\n\nManifest one, second paragraph.\n")
    (repo / "catalog" / "m2.txt").write_text("Manifest two.\n")
    write_manifest(repo, {"m1": "m1.txt", "m2": "m2.txt"})
    (repo / "definitions.py").write_text(textwrap.dedent("""\
        from mm_feast.sources import MediaSource
        from mm_feast.plugin.views import segment, segment_embedding_view

        MINILM = "sentence-transformers/all-MiniLM-L6-v2"
        notes = MediaSource(name="notes", root="docs")
        catalog = MediaSource(name="catalog", manifest="catalog/manifest.csv")
        dir_blocks = segment_embedding_view("dir_blocks", notes, "text", MINILM)
        man_blocks = segment_embedding_view("man_blocks", catalog, "text", MINILM)
        """))
    write_feature_store_yaml(repo, "change")
    feast(repo, "apply")
    feast(repo, "materialize-incremental", now_arg())
    return repo


def test_first_materialize_serves_every_file_even_with_old_manifest_timestamps(repo: Path) -> None:
    assert_stores_match_disk(repo, "man_blocks", {
        "m1": ["Manifest one, first paragraph.", "Manifest one, second paragraph."], "m2": ["Manifest two."]})
    assert_stores_match_disk(repo, "dir_blocks", {
        "a": ["Alpha one.", "Alpha two."], "b": ["Bravo one."],
        "speech.txt": ["A speech in plain text."], "speech.md": ["A speech in *markdown*."]})


def test_edited_files_replace_their_old_segments_everywhere_incremental(repo: Path) -> None:
    (repo / "docs" / "a.txt").write_text("Alpha rewritten.\n")
    (repo / "catalog" / "m1.txt").write_text("Manifest one, edited.\n")  # its manifest timestamp stays old
    result = feast(repo, "materialize-incremental", now_arg())
    assert "changed" in result.stderr
    assert_stores_match_disk(repo, "man_blocks", {"m1": ["Manifest one, edited."], "m2": ["Manifest two."]})
    assert_stores_match_disk(repo, "dir_blocks", {
        "a": ["Alpha rewritten."], "b": ["Bravo one."],
        "speech.txt": ["A speech in plain text."], "speech.md": ["A speech in *markdown*."]})


def test_removed_files_leave_the_stores_on_a_full_materialize_and_the_summary_says_so(repo: Path) -> None:
    (repo / "docs" / "b.txt").unlink()
    write_manifest(repo, {"m1": "m1.txt"})
    (repo / "docs" / "speech.md").write_text("A speech in *markdown*, edited.\n")
    feast(repo, "materialize", (datetime.now(timezone.utc) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S"), now_arg())
    assert_stores_match_disk(repo, "man_blocks", {"m1": ["Manifest one, edited."]})
    assert_stores_match_disk(repo, "dir_blocks", {
        "a": ["Alpha rewritten."], "speech.txt": ["A speech in plain text."], "speech.md": ["A speech in *markdown*, edited."]})
    runs = pd.read_json(repo / "data" / "runs" / "dir_blocks_source.jsonl", lines=True)
    last = runs.iloc[-1]
    assert (last.removed, last.changed) == (1, 1)
    assert last.seen == last.ingested + last.unchanged + last.quarantined


def test_a_window_that_selects_nothing_fails_with_a_reason_and_leaves_the_store_served(repo: Path) -> None:
    result = feast(repo, "materialize", "2001-01-01T00:00:00", "2001-01-02T00:00:00", check=False)
    assert result.returncode != 0
    assert "none of its" in result.stderr and "materialize up to a later time" in result.stderr, result.stderr[-3000:]
    assert_stores_match_disk(repo, "man_blocks", {"m1": ["Manifest one, edited."]})


def test_a_rerun_with_nothing_changed_writes_nothing(repo: Path) -> None:
    result = feast(repo, "materialize-incremental", now_arg())
    table = result.stderr[result.stderr.index("online view"):]
    written = {line.split()[0]: int(line.split()[2]) for line in table.splitlines()[1:] if line.strip() and line.split()[0] in VIEWS}
    assert written == {"dir_blocks": 0, "man_blocks": 0}


def test_erasing_a_file_erases_every_copy_of_its_content_and_redacts_its_metadata(repo: Path) -> None:
    speech = repo / "docs" / "speech.txt"
    (repo / "docs" / "copy.txt").write_bytes(speech.read_bytes())  # the same bytes under another name
    feast(repo, "materialize-incremental", now_arg())
    rows = offline(repo, "dir_blocks")
    copies = rows[rows.item_id.isin(["speech.txt", "copy"])]
    assert len(copies) == 2 and copies.sha256.nunique() == 1
    assert copies.lineage_id.is_unique, "two rows never share a lineage id, even with the same bytes"
    sha, uris = copies.sha256.iloc[0], set(copies.uri)
    assert LineageDB.for_repo(repo).safety_for([sha])[sha].verdict == "allow"  # checked before embedding

    # an interrupted run's spool holding the content (and an unrelated item that stays)
    sink = repo / "data" / "embeddings" / "dir_blocks_source.parquet"
    held = rows[rows.sha256 == sha].iloc[0]
    other = rows[rows.sha256 != sha].iloc[0]
    for item, item_sha in [(held.item_id, sha), (other.item_id, other.sha256)]:
        Spool(sink, "interrupted").add([Work(ManifestRow(item, "/x", "text", datetime.now(timezone.utc), sha256=item_sha))], [])

    close_connections()
    cli = Path(sys.executable).with_name("mm-feast")
    result = subprocess.run([str(cli), "impacted", str(speech.resolve()), "--delete", "--reason", "gdpr", "--repo", str(repo)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_stores_match_disk(repo, "dir_blocks", {"a": ["Alpha rewritten."], "speech.md": ["A speech in *markdown*, edited."]})
    manifest = pd.read_parquet(repo / "data" / "manifests" / "notes.parquet")
    assert sha not in set(manifest.sha256) and not uris & set(manifest.uri), "the item view must not list erased content"
    for path in (repo / "data" / "quality").rglob("*"):
        if path.is_file() and path.suffix in {".json", ".html"}:
            text = path.read_text(errors="replace")
            assert sha not in text and not any(u in text for u in uris), f"{path} still names the erased file"
    [audit] = LineageDB.for_repo(repo).erasures()
    assert audit.sha256s == [sha] and audit.reason == "gdpr" and audit.offline_rows == 2
    assert LineageDB.for_repo(repo).safety_for([sha]) == {}, "the filters' verdict quotes the content: it goes too"
    assert spooled_items(sink) == {(other.item_id, other.sha256)}, "an interrupted run's spool of the content goes too"

    feast(repo, "materialize-incremental", now_arg())  # the files are still on disk: nothing comes back
    assert_stores_match_disk(repo, "dir_blocks", {"a": ["Alpha rewritten."], "speech.md": ["A speech in *markdown*, edited."]})
    quarantine = load_records(repo, "dir_blocks_source")
    erased = quarantine[quarantine.stage == "erased"]
    assert set(erased.item_id) == {"speech.txt", "copy"} and not uris & set(quarantine.uri)
