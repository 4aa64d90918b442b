"""The lineage database on its own (no models, no Milvus): where it lives, and how records,
parents, erasures and their queries behave."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from mm_feast.stores.lineage import URL_ENV, LineageDB, LineageTarget, lineage_target, resolve_sqlite_url
from mm_feast.core.records import RAW, EncoderInfo, ErasureRecord, LineageRecord, ParentRef
from mm_feast.services.lineage import build_tree

YAML = "project: {project}\nprovider: local\nregistry:\n{registry}\nentity_key_serialization_version: 3\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def lineage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same tests on both databases a registry can live in."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'l.db'}"
    return request.getfixturevalue("postgres_url")


def _repo(tmp_path: Path, registry: str, project: str = "p") -> Path:
    (tmp_path / "feature_store.yaml").write_text(YAML.format(project=project, registry=registry))
    return tmp_path


def test_the_database_is_the_registry_database_resolved_against_the_repo(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    repo = _repo(tmp_path, "  registry_type: sql\n  path: sqlite:///data/registry.sqlite", project="demo")
    assert lineage_target(repo) == LineageTarget(f"sqlite:///{tmp_path / 'data' / 'registry.sqlite'}", "demo")
    # absolute paths, other databases and in-memory SQLite are left alone
    assert resolve_sqlite_url("sqlite:////abs/r.db", tmp_path) == "sqlite:////abs/r.db"
    assert resolve_sqlite_url("sqlite://", tmp_path) == "sqlite://"
    (tmp_path / "pg").mkdir()
    pg = _repo(tmp_path / "pg", "  registry_type: sql\n  path: postgresql://u:pw@db:5432/feast")
    assert lineage_target(pg).url == "postgresql+psycopg://u:pw@db:5432/feast"  # as Feast rewrites it


def test_a_file_registry_gets_a_sqlite_file_beside_it_and_the_env_var_overrides(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    (tmp_path / "r").mkdir()
    repo = tmp_path / "r"
    (repo / "feature_store.yaml").write_text("project: f\nregistry: data/registry.db\nprovider: local\n")
    assert lineage_target(repo).url == f"sqlite:///{repo / 'data' / 'lineage.db'}"
    assert lineage_target(tmp_path / "no_yaml_here").url.endswith("no_yaml_here/data/lineage.db")
    monkeypatch.setenv(URL_ENV, "sqlite:///elsewhere.db")
    assert lineage_target(repo) == LineageTarget(f"sqlite:///{repo / 'elsewhere.db'}", "f")


def _record(lineage_id: str, key: str, parents: list[ParentRef], kind: str = "segment", source: str = "s_source") -> LineageRecord:
    return LineageRecord(
        lineage_id=lineage_id, project="p", source=source, view=source.removesuffix("_source"), entity_key=key,
        kind=kind, item_id=key.split("#")[0], uri="/m/a.txt", sha256="a" * 64, modality="text", position="c=0-5",
        encoder=EncoderInfo("m", None, "v1", "h", "0.1.0+x"), run_id="r1", created_at=datetime.now(timezone.utc), parents=parents,
    )


def _raw(sha: str, start: int, end: int) -> ParentRef:
    return ParentRef(0, RAW, "/m/a.txt", sha, "text", f"c={start}-{end}", char_start=start, char_end=end)


def test_records_are_written_once_and_trees_and_files_resolve_through_parents(lineage_url: str):
    db = LineageDB(LineageTarget(lineage_url, "p"))
    seg = _record("L1", "a#c=0-5", [_raw("a" * 64, 0, 5)])
    other = _record("L2", "b#c=0-3", [ParentRef(0, RAW, "/m/b.txt", "b" * 64, "text", "c=0-3", char_start=0, char_end=3)])
    fused = _record(
        "F1", "a#c=0-5",
        [ParentRef(0, "anchor", "/m/a.txt", "a" * 64, "text", "c=0-5", 0, None, 0, 5, parent_lineage_id="L1", parent_source="s_source", parent_entity_key="a#c=0-5")],
        kind="fused", source="f_source",
    )
    assert db.write([seg, other, fused], {"h": "{}"}) == 3
    assert db.write([seg, other, fused], {"h": "{}"}) == 0  # a re-run writes nothing twice

    tree = build_tree(db, db.by_lineage_ids(["F1"])[0])
    assert [p.char_end for p in tree.raw_parents()] == [5] and tree.children[0][1].record.lineage_id == "L1"
    assert {r.lineage_id for r in db.derived_from_file(uri="/m/a.txt")} == {"L1"}
    assert {r.lineage_id for r in db.children_of(["L1"])} == {"F1"}
    assert db.model_for_version("v1") == ("m", None)

    erasure = ErasureRecord("e1", "p", "/m/a.txt", ["a" * 64], "test", datetime.now(timezone.utc), 2, 2, 2, ["s", "f"])
    db.mark_deleted([seg.key, fused.key], erasure)
    assert {r.lineage_id: r.erasure_id for r in db.by_entity_key("a#c=0-5")} == {"L1": "e1", "F1": "e1"}
    assert db.by_entity_key("b#c=0-3")[0].deleted_at is None
    assert db.erased_sha256s() == {"a" * 64} and db.erasures()[0].reason == "test"
    # another project in the same database sees none of it
    assert LineageDB(LineageTarget(db.target.url, "q")).by_entity_key("a#c=0-5") == []


@pytest.mark.parametrize("value, expected", [(-1, None), (float("nan"), None), (2.5, 2.5), (0, 0.0)])
def test_absent_locator_values_become_none(value, expected):
    from mm_feast.pipeline.lineage import raw_parent

    row = {"uri": "/x.wav", "sha256": "s", "modality": "audio", "position": "t", "start_s": value, "end_s": value}
    assert raw_parent(row, sample_rate=16000).start_s == expected


def test_a_recheck_replaces_the_stored_verdict_and_erasure_by_file_reaches_every_copy(lineage_url: str):
    from mm_feast.core.records import SafetyRecord

    db = LineageDB(LineageTarget(lineage_url, "p"))

    def verdict(uri: str, sha: str, level: str, at: int) -> SafetyRecord:
        return SafetyRecord("p", sha, "image", uri, level, [f"{level} reason"], [], [], "t1", datetime(2026, 1, 1, at, tzinfo=timezone.utc))

    db.write_safety([verdict("/a.png", "s1", "allow", 1), verdict("/copy.png", "s1", "allow", 1), verdict("/b.png", "s2", "flag", 1)])
    db.write_safety([verdict("/a.png", "s1", "flag", 2)])  # re-checked, e.g. now that OCR runs
    assert {k: v.verdict for k, v in db.safety_for(["s1", "s2"]).items()} == {"s1": "flag", "s2": "flag"}
    assert db.safety_for(["s1"])["s1"].reasons == ["flag reason"]
    assert db.erase_safety(["/a.png"], []) == 1  # by file: its content's one verdict (the copy shares the hash)
    assert set(db.safety_for(["s1", "s2"])) == {"s2"}


def test_processes_starting_at_once_on_an_empty_database_all_get_the_tables(lineage_url: str):
    """``create_all`` checks then creates: unguarded, one of the racing CREATEs fails (1 run in 3 on PostgreSQL)."""
    import subprocess
    import sys

    script = "import sys; from mm_feast.stores.lineage import engine_for; engine_for(sys.argv[1]); print('ok')"
    starts = [subprocess.Popen([sys.executable, "-c", script, lineage_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in starts]
    assert all(code == 0 and out.strip() == "ok" for out, _, code in results), [err[-1500:] for _, err, _ in results]
    db = LineageDB(LineageTarget(lineage_url, "p"))
    assert db.by_entity_key("nothing") == []


def _quarantine_record(item: str, stage: str = "decode", reason: str = "truncated", sha: str = "") -> dict:
    return {"run_id": "r1", "source": "s_source", "item_id": item, "uri": f"/m/{item}.jpg", "sha256": sha or item * 8,
            "modality": "image", "stage": stage, "reason": reason, "at": datetime.now(timezone.utc),
            "expectations": "decodable", "observed": "{}", "locator": f"/m/{item}.jpg", "model_version": "v1"}


def test_quarantine_records_and_releases_live_in_the_database(lineage_url: str, tmp_path: Path, monkeypatch):
    from mm_feast.stores.quarantine import QuarantineBook, append_records, entries, load_records, load_releases, redact
    from mm_feast.stores.quarantine import release as release_records

    monkeypatch.setenv(URL_ENV, lineage_url)
    repo = _repo(tmp_path, "  registry_type: sql\n  path: sqlite:///data/registry.sqlite", project="q")
    assert append_records(repo, [_quarantine_record("a"), _quarantine_record("b")]) == 2
    assert append_records(repo, [_quarantine_record("a"), _quarantine_record("a", reason="another")]) == 1, \
        "the same file failing the same way again is one record"
    assert sorted(load_records(repo, "s_source").item_id) == ["a", "a", "b"]
    assert QuarantineBook(repo, "s_source", "v1").is_held("a", "a" * 8)

    release = {"qid": "x", "source": "s_source", "item_id": "a", "sha256": "a" * 8, "mode": "admit",
               "expectations": ["decodable"], "note": "fixed", "at": "2026-12-02T00:00:00+00:00"}
    assert release_records(repo, "s_source", "a", "a" * 8, release) == 2
    assert release_records(repo, "s_source", "a", "a" * 8, release) == 0, "released already: nothing moves, nothing logged"
    assert list(load_records(repo).item_id) == ["b"]
    assert set(load_records(repo, released=True).release_mode) == {"admit"}
    assert [(r["item_id"], r["mode"], r["expectations"]) for r in load_releases(repo)] == [("a", "admit", ["decodable"])]
    assert QuarantineBook(repo, "s_source", "v1").admitted("a", "a" * 8) == {"decodable"}
    assert {e.status for e in entries(repo, include_closed=True)} == {"open", "admitted"}

    assert redact(repo, ["b" * 8], [], "[erased]") == 1
    assert list(load_records(repo).uri) == ["[erased]"] and list(load_records(repo).locator) == ["[erased]"]
    (tmp_path / "other").mkdir()
    other = _repo(tmp_path / "other", "  registry_type: sql\n  path: sqlite:///data/registry.sqlite", project="elsewhere")
    assert load_records(other).empty, "records are per project"


def test_quarantine_parquet_of_an_older_version_is_imported_once(tmp_path: Path, monkeypatch):
    import json

    import pandas as pd

    from mm_feast.stores.quarantine import load_records, load_releases

    monkeypatch.delenv(URL_ENV, raising=False)
    repo = _repo(tmp_path, "  registry_type: sql\n  path: sqlite:///data/registry.sqlite", project="old")
    folder = repo / "data" / "quarantine"
    (folder / "released").mkdir(parents=True)
    pd.DataFrame([_quarantine_record("a")]).to_parquet(folder / "s_source.parquet")
    pd.DataFrame([{**_quarantine_record("b"), "release_mode": "retry", "released_at": "t", "release_note": ""}]).to_parquet(
        folder / "released" / "s_source.parquet")
    (folder / "releases.jsonl").write_text(json.dumps({"source": "s_source", "item_id": "b", "sha256": "b" * 8, "mode": "retry",
                                                       "expectations": [], "note": "", "at": "t"}) + "\n")

    assert list(load_records(repo).item_id) == ["a"]
    assert list(load_records(repo, released=True).item_id) == ["b"]
    assert [r["item_id"] for r in load_releases(repo)] == ["b"]
    assert not list(folder.rglob("*.parquet")) and not (folder / "releases.jsonl").exists(), \
        "in the database now: the files go (an erasure reaches the records there)"
    from mm_feast.stores import quarantine

    quarantine._imported.clear()  # a new process: nothing to import, nothing doubled
    assert list(load_records(repo).item_id) == ["a"] and len(load_releases(repo)) == 1


def test_two_processes_importing_the_same_legacy_file_import_it_once(tmp_path: Path, monkeypatch):
    """The marker row is keyed by the file's content: the second import conflicts and rolls back."""
    import pandas as pd

    from mm_feast.stores import quarantine
    from mm_feast.stores.quarantine import load_records

    monkeypatch.delenv(URL_ENV, raising=False)
    repo = _repo(tmp_path, "  registry_type: sql\n  path: sqlite:///data/registry.sqlite", project="old")
    folder = repo / "data" / "quarantine"
    folder.mkdir(parents=True)
    legacy = folder / "s_source.parquet"
    pd.DataFrame([_quarantine_record("a")]).to_parquet(legacy)
    kept = legacy.read_bytes()
    assert list(load_records(repo).item_id) == ["a"]
    legacy.write_bytes(kept)  # the other process had read the same file before this one deleted it
    quarantine._imported.clear()
    assert list(load_records(repo).item_id) == ["a"], "imported once"
    assert not legacy.exists()
