"""The Feast SQL registry and mm-feast's lineage tables on a real PostgreSQL, through the real
`feast` CLI: apply, then two `feast materialize` processes at once (different views) against the
one registry. Every served row must have exactly one current lineage row: none lost, none doubled.
The online store is the Milvus server, because Milvus Lite lets one process open its file."""

from __future__ import annotations

import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mm_feast.lineage import LineageDB
from mm_feast.plugin.milvus.store import close_connections
from mm_feast.stores.lineage import lineage_target

from feast_repo import FEAST, assert_stores_match_disk, feast

pytestmark = pytest.mark.slow

TEXTS = {
    "dir_blocks": {"a": ["Alpha one.", "Alpha two."], "b": ["Bravo one."]},
    "man_blocks": {"m1": ["Manifest one, first paragraph.", "Manifest one, second paragraph."], "m2": ["Manifest two."]},
}


def _write_repo(repo: Path, project: str, registry_url: str, milvus_uri: str) -> None:
    (repo / "data").mkdir(parents=True)
    (repo / "docs").mkdir()
    (repo / "catalog").mkdir()
    (repo / "docs" / "a.txt").write_text("Alpha one.\n\nAlpha two.\n")
    (repo / "docs" / "b.txt").write_text("Bravo one.\n")
    (repo / "docs" / "latin1.txt").write_bytes("Caf\u00e9 cr\u00e8me.\n".encode("latin-1"))  # quarantined: not UTF-8
    (repo / "catalog" / "m1.txt").write_text("Manifest one, first paragraph.\n\nManifest one, second paragraph.\n")
    (repo / "catalog" / "m2.txt").write_text("Manifest two.\n")
    (repo / "catalog" / "manifest.csv").write_text(
        "item_id,uri,event_timestamp\nm1,m1.txt,2024-06-01T00:00:00\nm2,m2.txt,2024-06-01T00:00:00\n")
    (repo / "definitions.py").write_text(textwrap.dedent("""\
        from mm_feast.sources import MediaSource
        from mm_feast.plugin.views import segment, segment_embedding_view

        MINILM = "sentence-transformers/all-MiniLM-L6-v2"
        notes = MediaSource(name="notes", root="docs")
        catalog = MediaSource(name="catalog", manifest="catalog/manifest.csv")
        dir_blocks = segment_embedding_view("dir_blocks", notes, "text", MINILM)
        man_blocks = segment_embedding_view("man_blocks", catalog, "text", MINILM)
        """))
    (repo / "feature_store.yaml").write_text(textwrap.dedent(f"""\
        project: {project}
        provider: local
        registry:
          registry_type: sql
          path: {registry_url}
          cache_ttl_seconds: 0
        online_store:
          type: mm_feast.online_store.MmMilvusOnlineStore
          uri: {milvus_uri}
          consistency_level: Strong
        offline_store:
          type: mm_feast.offline_store.MmFileOfflineStore
        batch_engine:
          type: mm_feast.plugin.engine.MmLocalComputeEngine
        entity_key_serialization_version: 3
        """))


def test_two_materialize_processes_on_one_postgres_registry_lose_and_double_no_lineage(
    tmp_path: Path, postgres_url: str, milvus_server_uri: str
) -> None:
    repo = tmp_path / "repo"
    project = f"pg_{uuid.uuid4().hex[:8]}"
    _write_repo(repo, project, postgres_url, milvus_server_uri)
    assert lineage_target(repo).url == postgres_url  # lineage lives in the registry's database
    runs: dict[str, subprocess.Popen] = {}
    try:
        feast(repo, "apply")
        close_connections()
        window = ["2020-01-01T00:00:00", "2030-01-01T00:00:00"]
        for view in TEXTS:  # output to files: a full pipe would stall a process mid-run
            with open(tmp_path / f"{view}.log", "w") as log:
                runs[view] = subprocess.Popen([str(FEAST), "materialize", *window, "--views", view], cwd=repo,
                                              stdout=log, stderr=subprocess.STDOUT)
        for view, process in runs.items():
            process.wait(timeout=900)
            output = (tmp_path / f"{view}.log").read_text()
            assert process.returncode == 0, f"materialize --views {view} failed:\n{output[-4000:]}"
        for view, texts in TEXTS.items():
            assert_stores_match_disk(repo, view, texts)
        engine = create_engine(postgres_url)
        try:
            with engine.connect() as conn:
                doubled = conn.execute(text(
                    "SELECT record_key FROM mm_lineage_records GROUP BY record_key HAVING count(*) > 1")).all()
                tables = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
                quarantined = conn.execute(text("SELECT source, uri FROM mm_quarantine WHERE project = :p"), {"p": project}).all()
        finally:
            engine.dispose()
        assert doubled == []
        assert {"feature_views", "entities", "mm_lineage_records", "mm_lineage_parents", "mm_quarantine"} <= tables
        assert [(source, Path(uri).name) for source, uri in quarantined] == [("dir_blocks_source", "latin1.txt")], \
            "the quarantine record is in PostgreSQL, once"
        listed = feast(repo, "feature-views", "list").stdout
        assert "dir_blocks" in listed and "man_blocks" in listed
        segments = [r for r in LineageDB.for_repo(repo).by_view("dir_blocks") if r.deleted_at is None]
        assert len(segments) == 3
    finally:
        for process in runs.values():  # a failed assert must not leave the other one running
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)
        feast(repo, "teardown", check=False)
        close_connections()
